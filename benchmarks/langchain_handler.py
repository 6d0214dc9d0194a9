"""The LangChain handler against ``@traced_llm`` on the same response, and against OpenLLMetry's LangChain instrumentation.

    python benchmarks/langchain_handler.py [--calls 1000] [--repeat 5] [--peers-python /path/to/venv/bin/python]

``model.invoke()`` of a fake chat model (LangChain's own machinery, no network) that
reports usage like ChatOpenAI. Variants, in one process, interleaved round by round:

* ``no callbacks``: the invoke alone;
* ``empty handler``: a handler that does nothing (LangChain's own cost of dispatching callbacks);
* ``handler``: ``callbacks=[LLMOtelCallbackHandler()]``;
* ``@traced_llm``: the invoke inside a decorated function (the same call and response,
  recorded by the decorator instead of the handler);
* ``floor`` / ``semconv floor``: the empty-handler invoke wrapped in the raw-SDK floors of
  ``overhead.py`` (our signals with token sums; the GenAI conventions' span and three
  measurements), each side's least cost of its own signals through LangChain;
* ``openllmetry``: the invoke with ``opentelemetry-instrumentation-langchain`` (OpenLLMetry)
  on — only when installed in the interpreter that runs it. Its ``uninstrument()`` leaves
  its handler in every later invoke, so it is switched on once, after the other variants,
  and its overhead is taken against the bare invoke measured before.

Targets: the handler's overhead is at most 1.30 x the decorator's, and on equal signals
it costs less than OpenLLMetry's: the handler's work beyond our floor against
OpenLLMetry's beyond the semconv floor (OpenLLMetry records no cost, no token totals
and no context utilisation). With valgrind installed the variants are also counted in
instructions per call, and the verdicts are taken from the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _instructions  # noqa: E402
import peers  # noqa: E402
from _timing import EmittedSpans, Row, child_env, fmt_us, interleaved, nothing, ratio_verdict, sdk_providers  # noqa: E402

DECORATOR_TARGET = 1.30
PEER_MODULE, PEER_PACKAGE = "opentelemetry.instrumentation.langchain", "opentelemetry-instrumentation-langchain"
QUESTION = "What is the capital of France?"
Variants = dict[str, Callable[[], Any]]


EMITTED = EmittedSpans()


def fake_chat_model() -> Any:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class FakeUsageChatModel(BaseChatModel):
        """Replies at once, with usage and response metadata shaped like ChatOpenAI's."""

        model_name: str = "gpt-4o-mini"

        @property
        def _llm_type(self) -> str:
            return "bench-fake-chat"

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
            message = AIMessage(
                content="Paris.",
                usage_metadata={"input_tokens": 120, "output_tokens": 30, "total_tokens": 150},
                response_metadata={"model_name": "gpt-4o-mini-2024-07-18", "finish_reason": "stop",
                                   "model_provider": "openai"},
                id="chatcmpl-bench",
            )
            return ChatResult(generations=[ChatGeneration(message=message)])

    return FakeUsageChatModel()


def message_facts(message: Any) -> tuple[str, str, str, int, int]:
    """What the floors record, from the ``AIMessage`` the invoke returns."""
    metadata, usage = message.response_metadata, message.usage_metadata
    return (metadata["model_name"], message.id, metadata["finish_reason"], usage["input_tokens"],
            usage["output_tokens"])


def variants(processor: str, with_peer: bool) -> tuple[Variants, Callable[[], None] | None]:
    from langchain_core.callbacks import BaseCallbackHandler
    from overhead import make_floor

    import llm_otel
    from llm_otel.integrations.langchain import LLMOtelCallbackHandler

    class EmptyHandler(BaseCallbackHandler):
        """Receives every callback and does nothing."""

        run_inline = True

    tracer_provider, meter_provider = sdk_providers(processor)
    tracer_provider.add_span_processor(EMITTED)
    llm_otel.configure(tracer_provider=tracer_provider, meter_provider=meter_provider, set_global=False)
    model = fake_chat_model()
    with_handler = {"callbacks": [LLMOtelCallbackHandler()]}
    with_empty = {"callbacks": [EmptyHandler()]}

    def bare() -> Any:
        return model.invoke(QUESTION)

    def dispatched() -> Any:
        return model.invoke(QUESTION, config=with_empty)

    timed: Variants = {
        "no callbacks": bare,
        "empty handler": dispatched,
        "handler": lambda: model.invoke(QUESTION, config=with_handler),
        "@traced_llm": llm_otel.traced_llm(provider="openai")(bare),
        "floor": make_floor(tracer_provider, meter_provider, dispatched, message_facts, sum_tokens=True),
        "semconv floor": make_floor(tracer_provider, meter_provider, dispatched, message_facts,
                                    product_metrics=False),
    }
    if not with_peer:
        return timed, None
    os.environ["TRACELOOP_TRACE_CONTENT"] = "false"  # OpenLLMetry records prompts unless told not to
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    def peer_on() -> None:
        LangchainInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    return timed, peer_on


# ----------------------------------------------------------------------------- child processes


def child(processor: str, calls: int, repeat: int, with_peer: bool) -> dict[str, Any]:
    import llm_otel

    timed, peer_on = variants(processor, with_peer)
    try:
        best: dict[str, Any] = interleaved(timed, calls, repeat)
        if peer_on is not None:  # on for the rest of the process
            peer_on()
            best["openllmetry"] = interleaved({"openllmetry": timed["no callbacks"]}, calls, repeat)["openllmetry"]
    finally:
        llm_otel.shutdown()
    best["peer spans"] = EMITTED.by(PEER_MODULE)
    return best


def counted_child(calls: int, with_peer: bool) -> None:
    import llm_otel

    timed, peer_on = variants("simple", with_peer)
    _instructions.counted(timed, calls)
    if peer_on is not None:  # on for the rest of the process
        _instructions.counted({"openllmetry": timed["no callbacks"]}, calls, {"openllmetry": (peer_on, nothing)})
    llm_otel.shutdown()


def _peer_python(given: list[str]) -> str | None:
    """The first interpreter that has the peer (the same search as the openai peers)."""
    return next((python for python in peers.candidates(given) if peers.installed(python, PEER_MODULE)), None)


def _timed_in(python: str, processor: str, calls: int, repeat: int, with_peer: bool) -> dict[str, Any]:
    command = [python, str(Path(__file__)), "--child", processor, "--calls", str(calls), "--repeat", str(repeat)]
    if with_peer:
        command.append("--with-peer")
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=child_env(), cwd=HERE.parent)
    if done.returncode != 0:
        raise RuntimeError(f"langchain benchmark ({processor}) failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------------------------- parent


def rows(calls: int, repeat: int, peers_python: list[str] | None = None, instructions: bool = True) -> list[Row]:
    try:
        fake_chat_model()
        import llm_otel.integrations.langchain  # noqa: F401
    except ImportError as exc:
        return [Row("langchain", "handler on a fake chat model", "-", verdict="skipped", note=str(exc))]
    peer_python = _peer_python(list(peers_python or []))
    python = peer_python or sys.executable
    out: list[Row] = []
    counts = {}
    if instructions and _instructions.available():
        names = list(variants_names(peer_python is not None))
        args = ["--instructions", "200"] + (["--with-peer"] if peer_python else [])
        counts = _instructions.count(python, Path(__file__), args, names, 200)
    judged_by_counts = bool(counts)
    for processor in ("simple", "batch"):
        best = _timed_in(python, processor, max(calls // 20, 200), repeat, peer_python is not None)
        out += _section_rows(best, processor, fmt_us, judge=not judged_by_counts)
    if counts:
        out += _section_rows(counts, "instructions", _instructions.fmt_instructions, judge=True)
    elif instructions:
        out.append(_instructions.unavailable_row("langchain"))
    if peer_python is None:
        out.append(Row("langchain", "openllmetry", "-", verdict="skipped",
                       note=f"not installed: pip install {PEER_PACKAGE} (or --peers-python)"))
    return out


def variants_names(with_peer: bool) -> tuple[str, ...]:
    names = ("no callbacks", "empty handler", "handler", "@traced_llm", "floor", "semconv floor")
    return (*names, "openllmetry") if with_peer else names


def _section_rows(best: dict[str, Any], label: str, fmt: Callable[[float], str], judge: bool) -> list[Row]:
    base = best["no callbacks"]
    handler, decorator = best["handler"] - base, best["@traced_llm"] - base
    dispatch = best["empty handler"] - base
    ratio = handler / decorator if decorator > 0 else float("inf")
    out = [
        Row("langchain", f"invoke, no callbacks ({label})", fmt(base), "", "", "",
            f"LangChain's callback dispatch to an empty handler +{fmt(dispatch)}"),
        Row("langchain", f"@traced_llm around the invoke ({label})", f"+{fmt(decorator)}"),
        Row("langchain", f"LLMOtelCallbackHandler ({label})", f"+{fmt(handler)}", f"{ratio:.2f} x decorator",
            f"<= {DECORATOR_TARGET:.2f} x", ratio_verdict(ratio, DECORATOR_TARGET) if judge else "",
            "" if judge else "timed; judged by the instruction counts"),
    ]
    if "openllmetry" not in best:
        return out
    theirs = best["openllmetry"] - base
    theirs_own = best["openllmetry"] - best["semconv floor"]
    ours_own = best["handler"] - best["floor"]
    own_ratio = ours_own / theirs_own if theirs_own > 0 else float("inf")
    out += [
        Row("langchain", f"  openllmetry vs handler ({label})", f"+{fmt(theirs)} vs +{fmt(handler)}",
            f"ours is {handler / theirs:.2f}x of it", "", "",
            "raw: ours records cost, token totals and context utilisation too"
            + (f"; openllmetry emitted {', '.join(best['peer spans'])}" if best.get("peer spans") else "")),
        Row("langchain", f"  raw-SDK floors through LangChain ({label})",
            f"+{fmt(best['semconv floor'] - base)} vs +{fmt(best['floor'] - base)}", "", "", "",
            "GenAI semconv's signals (span + 3 measurements) vs ours (span + 5 measurements, token sums)"),
        Row("langchain", f"  own work beyond the floor ({label})", f"+{fmt(theirs_own)} vs +{fmt(ours_own)}",
            f"ours is {own_ratio:.2f}x of it", "ours below", ("ok" if own_ratio < 1 else "MISSED") if judge else "",
            "equal signals: each side over the raw-SDK floor of its own signals"),
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--peers-python", action="append", default=[], help="an interpreter with the peer installed")
    parser.add_argument("--no-instructions", action="store_true", help="skip the callgrind counts")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--with-peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--instructions", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instructions:
        counted_child(args.instructions, args.with_peer)
        return
    if args.child:
        print(json.dumps(child(args.child, args.calls, args.repeat, args.with_peer)))
        return
    for row in rows(args.calls * 20, args.repeat, args.peers_python, not args.no_instructions):
        print(f"{row.variant:52} {row.value:>24} {row.ratio:>22} {row.target:>10} {row.verdict:6} {row.note}")


if __name__ == "__main__":
    main()
