"""Instructions per call, counted by valgrind's callgrind: a figure that does not move with the machine's load.

Timed figures of one variant move by a third between processes on a shared VM; the
number of instructions a call executes does not. A benchmark that offers counts
runs itself again as a child under callgrind, in one interpreter with a fixed hash
seed, and the child calls :func:`counted`: every variant runs ``calls`` times
between two ``os.getresgid()`` marks (a call nothing else in the process makes), and
``--dump-before=getresgid`` makes callgrind write the count since the previous mark at
each one. Dumps 2, 4, 6, ... are then
the variants' blocks, in order.

Counts include the span processor's export (use the simple processor: a batch
processor's thread would land in whichever block it happens to run) and exclude
the interpreter's start-up and each variant's warm-up. Without valgrind
(``apt-get install valgrind``) the rows say skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _timing import Row, child_env, nothing

HERE = Path(__file__).resolve().parent
_TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


def available() -> bool:
    return shutil.which("valgrind") is not None


def counted(
    variants: dict[str, Callable[[], Any]],
    calls: int,
    switches: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] | None = None,
) -> None:
    """Child side: each variant is warmed, then run between two marks, one variant after the other."""
    switches = switches or {}
    for name, fn in variants.items():
        on, off = switches.get(name, (nothing, nothing))
        on()
        for _ in range(max(calls // 4, 50)):
            fn()
        os.getresgid()
        for _ in range(calls):
            fn()
        os.getresgid()
        off()


def count(python: str, script: Path, args: Sequence[str], names: Sequence[str], calls: int,
          timeout: float = 1800) -> dict[str, float]:
    """Parent side: run ``python script *args`` under callgrind; instructions per call of each variant,
    in the order the child ran them (``names``)."""
    with tempfile.TemporaryDirectory(prefix="llm-otel-callgrind-") as folder:
        out = Path(folder) / "counts"
        command = ["valgrind", "--tool=callgrind", "--dump-before=getresgid", f"--callgrind-out-file={out}",
                   _real_executable(python), str(script), *args]
        env = {**child_env(), "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE.parent)
        if done.returncode != 0:
            raise RuntimeError(f"{script.name} under callgrind failed:\n{done.stderr[-2000:]}")
        dumps = sorted(Path(folder).glob("counts.*"), key=lambda path: int(path.suffix[1:]))
        totals = [_total(path) for path in dumps]
    if len(totals) != 2 * len(names):  # a stray mark would shift every block after it
        raise RuntimeError(f"{script.name}: {len(totals)} marks under callgrind for {len(names)} variants")
    blocks = totals[1::2]
    return {name: blocks[index] / calls for index, name in enumerate(names)}


def _total(path: Path) -> int:
    found = _TOTALS.search(path.read_bytes())
    return int(found.group(1)) if found else 0


def _real_executable(python: str) -> str:
    """The interpreter binary: valgrind does not follow the exec of a wrapper script (pyenv shims). A
    venv's link is kept as it is, since the venv is found from the path the interpreter was started by."""
    with open(python, "rb") as binary:
        if binary.read(2) != b"#!":
            return python
    probe = subprocess.run([python, "-c", "import sys; print(sys.executable)"],
                           capture_output=True, text=True, timeout=60, check=True)
    return probe.stdout.strip()


def fmt_instructions(value: float) -> str:
    return f"{value / 1e6:.3f} M"


def unavailable_row(section: str) -> Row:
    return Row(section, "instructions per call", "-", verdict="skipped",
               note="valgrind not installed (apt-get install valgrind)")
