"""Import cost: ``import llm_otel`` against ``import opentelemetry.sdk``, each in fresh interpreters.

    python benchmarks/imports.py

Each figure is the median of several fresh ``python -c`` runs: wall time of the
import statement alone and the growth of the process's resident memory over a bare
interpreter (resident set from /proc, so Linux only). The llm_otel run also reports any web or LLM framework that the
import pulled in (there must be none).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from _timing import Row

FRAMEWORKS = ("langchain", "langchain_core", "llama_index", "starlette", "fastapi", "django", "openai", "anthropic")

PROBE = """
import json, os, sys, time
def rss_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
before = rss_kib()
start = time.perf_counter()
{statement}
elapsed = time.perf_counter() - start
after = rss_kib()
frameworks = sorted({{m.split('.')[0] for m in sys.modules}} & set({frameworks!r}))
print(json.dumps({{"ms": elapsed * 1e3, "rss_kib": after - before, "frameworks": frameworks,
                  "modules": len(sys.modules)}}))
"""

SUBJECTS = {
    "import opentelemetry.sdk": "import opentelemetry.sdk",
    "import opentelemetry.sdk.trace + .metrics": "import opentelemetry.sdk.trace, opentelemetry.sdk.metrics",
    "import llm_otel": "import llm_otel",
}


def probe(statement: str) -> dict[str, object]:
    code = PROBE.format(statement=statement, frameworks=FRAMEWORKS)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def rows(runs: int = 7) -> list[Row]:
    measured: dict[str, dict[str, float]] = {}
    frameworks: list[str] = []
    for _ in range(runs):  # interleaved fresh processes
        for name, statement in SUBJECTS.items():
            result = probe(statement)
            entry = measured.setdefault(name, {"ms": [], "rss": []})  # type: ignore[dict-item]
            entry["ms"].append(float(result["ms"]))  # type: ignore[attr-defined, arg-type]
            entry["rss"].append(float(result["rss_kib"]) / 1024)  # type: ignore[attr-defined, arg-type]
            if name == "import llm_otel":
                frameworks = list(result["frameworks"])  # type: ignore[call-overload]
    base = measured["import opentelemetry.sdk.trace + .metrics"]
    base_ms = statistics.median(base["ms"])  # type: ignore[arg-type]
    out = []
    for name, entry in measured.items():
        ms = statistics.median(entry["ms"])  # type: ignore[arg-type]
        rss = statistics.median(entry["rss"])  # type: ignore[arg-type]
        ratio = f"{ms / base_ms:.2f}x sdk trace+metrics" if name == "import llm_otel" else ""
        note = ""
        verdict = ""
        if name == "import llm_otel":
            verdict = "ok" if not frameworks else "MISSED"
            note = "frameworks imported: " + (", ".join(frameworks) if frameworks else "none")
        elif name == "import opentelemetry.sdk":
            note = "the bare package imports next to nothing; trace + metrics is what an SDK user loads"
        out.append(Row("import", name, f"{ms:.0f} ms, +{rss:.1f} MiB", ratio,
                       "no framework" if name == "import llm_otel" else "", verdict, note))
    return out


if __name__ == "__main__":
    for row in rows():
        print(row)
