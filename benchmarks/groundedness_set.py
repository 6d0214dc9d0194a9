"""A labelled set of (context, answer, supported?) triples, built by fixed rules with a fixed seed.

No labelled hallucination set ships offline in a package on the index we can use, so this one
is generated. The rules:

* A context is four facts about one fictional company (chosen from eight fact templates with
  random names, cities, people, numbers and dates) plus one fact about another company.
* Supported answers (label True): a fact copied verbatim (``copy``), a fact re-worded by a
  paraphrase template (``paraphrase``), or two facts re-worded into one sentence (``combined``).
* Unsupported answers (label False): a paraphrase with one number changed (``invented_number``),
  with the person or city replaced by one not in the context (``invented_entity``), with the
  date moved (``invented_date``), an answer about something the context never mentions
  (``off_topic``), or a paraphrase that states the opposite using the context's own words
  (``contradiction``: "closed" for "opened", "fell" for "grew", "not" inserted).

Every item is re-derived from ``SEED``; ``triples()`` returns the same list on every run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

SEED = 15
COUNTS = {
    "copy": 50, "paraphrase": 70, "combined": 50,
    "invented_number": 40, "invented_entity": 35, "invented_date": 25, "off_topic": 40, "contradiction": 35,
}
SUPPORTED = frozenset({"copy", "paraphrase", "combined"})

_COMPANIES = ["Acme", "Borealis Labs", "Cinder Systems", "Dunmore Freight", "Elmstead Bank", "Fjordline Media",
              "Granite Health", "Halcyon Foods", "Ironbark Energy", "Juniper Robotics", "Kestrel Air",
              "Lumen Textiles", "Marlow Insurance", "Northgate Logistics", "Orchid Pharma", "Pinecrest Software"]
_CITIES = ["Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Denver", "Krakow", "Auckland", "Valencia",
           "Montreal", "Hamburg", "Seoul", "Dublin", "Austin", "Oslo", "Porto"]
_PEOPLE = ["Maria Keller", "Tomas Ruiz", "Aiko Tanaka", "Samuel Okafor", "Priya Raman", "Lena Novak",
           "David Chen", "Fatima Haddad", "Jonas Berg", "Chloe Martin", "Omar Farouk", "Grace Liu"]
_PRODUCTS = ["Nimbus", "Quill", "Vector Pro", "Harbor", "Atlas Cloud", "Beacon", "Sparrow", "Summit Suite"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_OFF_TOPIC = [
    "Bananas are rich in potassium and grow best in warm tropical climates.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Jupiter is the largest planet in the solar system.",
    "Regular stretching can reduce muscle soreness after long runs.",
    "Chess openings such as the Sicilian Defence favour sharp tactical play.",
    "Most houseplants prefer indirect light and weekly watering.",
    "The violin has four strings tuned in perfect fifths.",
    "Sourdough bread relies on wild yeast and lactic acid bacteria.",
]


@dataclass(frozen=True)
class Triple:
    context: tuple[str, ...]
    answer: str
    supported: bool
    category: str


@dataclass
class _Fact:
    values: dict[str, str]
    text: Callable[[dict[str, str]], str]
    paraphrase: Callable[[dict[str, str]], str]
    contradiction: Callable[[dict[str, str]], str]
    number_key: str | None = None
    entity_key: str | None = None
    has_date: bool = False

    def render(self, how: str, **changes: str) -> str:
        values = {**self.values, **changes}
        return {"text": self.text, "paraphrase": self.paraphrase, "contradiction": self.contradiction}[how](values)


def _facts(rng: random.Random, company: str) -> list[_Fact]:
    city, person, product = rng.choice(_CITIES), rng.choice(_PEOPLE), rng.choice(_PRODUCTS)
    return [
        _Fact({"c": company, "city": city, "m": rng.choice(_MONTHS), "d": str(rng.randint(2, 28)),
               "y": str(rng.randint(2005, 2023))},
              lambda v: f"{v['c']} opened its {v['city']} office on {v['m']} {v['d']}, {v['y']}.",
              lambda v: f"The {v['city']} office of {v['c']} has been open since {v['m']} {v['d']}, {v['y']}.",
              lambda v: f"{v['c']} closed its {v['city']} office on {v['m']} {v['d']}, {v['y']}.",
              entity_key="city", has_date=True),
        _Fact({"city": city, "n": str(rng.randint(12, 900))},
              lambda v: f"The {v['city']} office employs {v['n']} people.",
              lambda v: f"{v['n']} people work at the office in {v['city']}.",
              lambda v: f"The {v['city']} office no longer employs {v['n']} people.",
              number_key="n", entity_key="city"),
        _Fact({"c": company, "p": person},
              lambda v: f"{v['c']} is led by chief executive {v['p']}.",
              lambda v: f"The chief executive of {v['c']} is {v['p']}.",
              lambda v: f"{v['p']} is not the chief executive of {v['c']}.",
              entity_key="p"),
        _Fact({"prod": product, "price": str(rng.randint(5, 99))},
              lambda v: f"A {v['prod']} subscription costs ${v['price']} per month.",
              lambda v: f"The monthly price of a {v['prod']} subscription is ${v['price']}.",
              lambda v: f"A {v['prod']} subscription no longer costs ${v['price']} per month.",
              number_key="price"),
        _Fact({"pct": str(rng.randint(2, 40)), "rev": f"{rng.randint(1, 90)}.{rng.randint(1, 9)}",
               "y": str(rng.randint(2015, 2024))},
              lambda v: f"Revenue grew {v['pct']}% to ${v['rev']} million in {v['y']}.",
              lambda v: f"In {v['y']}, revenue rose by {v['pct']}% and reached ${v['rev']} million.",
              lambda v: f"In {v['y']}, revenue fell by {v['pct']}% to ${v['rev']} million.",
              number_key="pct"),
        _Fact({"h1": str(rng.randint(6, 9)), "h2": str(rng.randint(4, 8))},
              lambda v: f"Customer support is available from {v['h1']} am to {v['h2']} pm on weekdays.",
              lambda v: f"On weekdays you can reach customer support between {v['h1']} am and {v['h2']} pm.",
              lambda v: f"Customer support is unavailable from {v['h1']} am to {v['h2']} pm on weekdays.",
              number_key="h1"),
        _Fact({"prod": product, "k": str(rng.randint(2, 6))},
              lambda v: f"The warranty on {v['prod']} hardware lasts {v['k']} years.",
              lambda v: f"{v['prod']} hardware comes with a {v['k']}-year warranty.",
              lambda v: f"The warranty on {v['prod']} hardware does not last {v['k']} years.",
              number_key="k"),
        _Fact({"days": str(rng.choice([14, 30, 45, 60, 90]))},
              lambda v: f"Refunds are accepted within {v['days']} days of purchase.",
              lambda v: f"You can get a refund up to {v['days']} days after buying.",
              lambda v: f"Refunds are not accepted within {v['days']} days of purchase.",
              number_key="days"),
    ]


def _other_number(rng: random.Random, value: str) -> str:
    if "." in value:
        whole, _, fraction = value.partition(".")
        return f"{int(whole) + rng.randint(3, 20)}.{fraction}"
    number = int(value)
    return str(number + rng.choice([-1, 1]) * rng.randint(max(2, number // 5), max(3, number // 2 + 3)))


def _item(rng: random.Random, category: str) -> Triple:
    company, other = rng.sample(_COMPANIES, 2)
    facts = rng.sample(_facts(rng, company), 4)
    distractor = rng.choice(_facts(rng, other)).render("text")
    context = [f.render("text") for f in facts] + [distractor]
    rng.shuffle(context)
    fact = facts[0]
    if category == "copy":
        answer = fact.render("text")
    elif category == "paraphrase":
        answer = fact.render("paraphrase")
    elif category == "combined":
        second = facts[1].render("paraphrase")
        first_word, _, rest = second.partition(" ")
        if first_word in ("The", "In", "You", "On", "A"):  # a sentence start, not a name
            second = f"{first_word.lower()} {rest}"
        answer = f"{fact.render('paraphrase')[:-1]}, and {second}"
    elif category == "invented_number":
        fact = next((f for f in facts if f.number_key), None) or _facts(rng, company)[1]
        if fact not in facts:
            return _item(rng, category)
        key = fact.number_key
        assert key is not None
        answer = fact.render("paraphrase", **{key: _other_number(rng, fact.values[key])})
    elif category == "invented_entity":
        fact = next((f for f in facts if f.entity_key), None)
        if fact is None:
            return _item(rng, category)
        key = fact.entity_key
        assert key is not None
        pool = _CITIES if key == "city" else _PEOPLE
        used = " ".join(context)
        answer = fact.render("paraphrase", **{key: rng.choice([x for x in pool if x not in used])})
    elif category == "invented_date":
        fact = next((f for f in facts if f.has_date), None)
        if fact is None:
            return _item(rng, category)
        month = rng.choice([m for m in _MONTHS if m != fact.values["m"]])
        answer = fact.render("paraphrase", m=month, d=str(rng.randint(2, 28)))
    elif category == "off_topic":
        answer = rng.choice(_OFF_TOPIC)
    elif category == "contradiction":
        answer = fact.render("contradiction")
    else:
        raise ValueError(category)
    return Triple(tuple(context), answer, category in SUPPORTED, category)


def triples(seed: int = SEED) -> list[Triple]:
    rng = random.Random(seed)
    items = [_item(rng, category) for category, count in COUNTS.items() for _ in range(count)]
    rng.shuffle(items)
    return items


if __name__ == "__main__":
    import json

    for triple in triples():
        print(json.dumps({"context": triple.context, "answer": triple.answer, "supported": triple.supported,
                          "category": triple.category}))
