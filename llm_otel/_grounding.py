"""Lexical groundedness: which checkable claims of an answer appear nowhere in the retrieved context.

Pure Python, no model: numbers, dates, named entities and quoted spans are the
parts of an answer an LLM most often invents, and each can be looked up in the
context text directly. A second, softer signal is the share of the answer's
content words that the context never uses, which catches answers about
something else entirely. Neither signal understands meaning: a sentence that
reuses the context's words to say the opposite ("did not", "fell" for "rose")
passes. docs/quality.md gives the measured precision and recall.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Weight of invented claims against unfamiliar words when both are present: an invented
# number or name is strong evidence, unfamiliar wording alone is weaker.
_CLAIM_WEIGHT = 0.65
_MAX_CLAIMS_LISTED = 5

_NUMBER = re.compile(r"(?<![\w.])[-+]?\$?\d(?:[\d,]*\d)?(?:\.\d+)?%?")
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_DATE = re.compile(rf"\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTHS})\b",
                   re.IGNORECASE)
_MONTH_WORD = re.compile(rf"(?:{_MONTHS})", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“”«»]([^\"“”«»]{3,200})[\"“”«»]")
_ENTITY = re.compile(r"\b[A-Z][\w'\u2019-]*(?:\s+(?:of|de|van|von|the|and|&)?\s*[A-Z][\w'\u2019-]*)*")
_WORD = re.compile(r"[a-z0-9]+(?:['\u2019][a-z]+)?")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n]\s*)$")

# Function words and the words every answer uses: their absence from the context says nothing.
_STOP_WORDS = """
a about above after again against all also am an and any are aren as at be because been before being below
between both but by can cannot could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just let me more most my
myself no nor not of off on once only or other ought our ours ourselves out over own same she should so some
such than that the their theirs them themselves then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your yours yourself yourselves
yes according answer based context document documents given information provided says said state states stated
text there's it's i'm can't don't doesn't didn't won't isn't wasn't weren't also however therefore thus
"""
_STOP = frozenset(_STOP_WORDS.split())
_ENTITY_STOP = frozenset({"The", "A", "An", "In", "On", "At", "It", "This", "That", "These", "Those", "There",
                          "He", "She", "They", "We", "I", "You", "Yes", "No", "According", "Based", "As", "For",
                          "However", "Its", "Their", "His", "Her", "Our", "If", "When", "While", "After",
                          "Before", "During", "By", "From", "To", "With", "And", "But", "Or", "So"})


@dataclass(frozen=True)
class LexicalResult:
    score: float  # 0 = every checkable part found in the context, 1 = nothing found
    claims: int
    unsupported: tuple[str, ...]
    novel_word_share: float

    def summary(self) -> str:
        """The explanation without any text of the answer (exported when content capture is off)."""
        return (f"{len(self.unsupported)} of {self.claims} checkable claims not in the context; "
                f"{self.novel_word_share:.0%} of content words unseen")

    def explanation(self) -> str:
        if self.unsupported:
            listed = ", ".join(repr(c) for c in self.unsupported[:_MAX_CLAIMS_LISTED])
            more = len(self.unsupported) - _MAX_CLAIMS_LISTED
            suffix = f" and {more} more" if more > 0 else ""
            return (f"{len(self.unsupported)} of {self.claims} checkable claims not in the context: "
                    f"{listed}{suffix}; {self.novel_word_share:.0%} of content words unseen")
        if self.claims:
            return f"all {self.claims} checkable claims found in the context; " \
                   f"{self.novel_word_share:.0%} of content words unseen"
        return f"no checkable claims; {self.novel_word_share:.0%} of content words unseen"


def _normal_number(text: str) -> str:
    return text.replace(",", "").replace("$", "").lstrip("+").rstrip("%").rstrip(".")


def _numbers(text: str) -> set[str]:
    return {_normal_number(m.group(0)) for m in _NUMBER.finditer(text)}


def _entities(text: str) -> list[str]:
    """Capitalised word runs, minus a lone capitalised word that only starts a sentence."""
    found = []
    for match in _ENTITY.finditer(text):
        words = match.group(0).split()
        while words and words[0] in _ENTITY_STOP:
            words = words[1:]
        if not words:
            continue
        phrase = " ".join(words)
        at_sentence_start = _SENTENCE_START.search(text[: match.start()]) is not None
        if len(words) == 1 and ((at_sentence_start and match.group(0) == phrase) or len(phrase) < 2):
            continue
        if phrase.lower() in _STOP:
            continue
        found.append(phrase)
    return found


def claims_of(answer: str) -> list[tuple[str, str]]:
    """(kind, text) of every checkable claim: numbers, dates, quoted spans, named entities."""
    claims: list[tuple[str, str]] = []
    dates = list(_DATE.finditer(answer))
    claims += [("date", d.group(0)) for d in dates]
    for match in _NUMBER.finditer(answer):
        if not any(d.start() <= match.start() < d.end() for d in dates):  # a date's day is not a second claim
            claims.append(("number", match.group(0)))
    claims += [("quote", q.strip()) for q in _QUOTED.findall(answer)]
    claims += [("entity", e) for e in _entities(answer) if not _MONTH_WORD.fullmatch(e)]
    return claims


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and not w.isdigit()]


def _stem(word: str) -> str:
    """Crude suffix folding so 'opened'/'opens'/'opening' meet; enough for a presence check."""
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _supported(kind: str, claim: str, context_lower: str, context_numbers: set[str]) -> bool:
    if kind == "number":
        return _normal_number(claim) in context_numbers
    if kind == "date":
        day = re.search(r"\d{1,2}", claim)
        month = re.search(_MONTHS, claim, re.IGNORECASE)
        return bool(day and month and day.group(0) in context_numbers
                    and month.group(0).lower()[:3] in context_lower)
    return claim.lower() in context_lower


def score_lexical(answer: str, passages: Sequence[str]) -> LexicalResult | None:
    """Hallucination risk of ``answer`` against ``passages`` (None when the answer has no words)."""
    context = "\n".join(passages)
    context_lower = context.lower()
    words = _content_words(answer)
    if not words:
        return None
    context_stems = {_stem(w) for w in _content_words(context)}
    novel = sum(1 for w in words if _stem(w) not in context_stems) / len(words)
    context_numbers = _numbers(context)
    claims = claims_of(answer)
    unsupported = tuple(text for kind, text in claims if not _supported(kind, text, context_lower, context_numbers))
    if claims:
        share = len(unsupported) / len(claims)
        score = _CLAIM_WEIGHT * share + (1 - _CLAIM_WEIGHT) * novel
        if unsupported:  # one invented number or name is enough to doubt the answer
            score = max(score, 0.5 + 0.5 * share)
    else:
        score = novel
    return LexicalResult(min(1.0, max(0.0, score)), len(claims), unsupported, novel)
