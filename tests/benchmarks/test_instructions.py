"""The benchmarks' instruction counter: valgrind's counts of marked blocks, attributed to the right variant."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.stack._support import missing_tool

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _instructions  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def valgrind() -> None:
    if shutil.which("valgrind") is None:
        missing_tool("valgrind not installed (scripts/setup.sh installs it)")

CHILD = '''
import os, sys
sys.path.insert(0, {benchmarks!r})
import _instructions

def work():
    return sum(range(200))

variants = {{"once": work, "twice": lambda: (work(), work())}}
if {stray}:
    variants["stray"] = os.getresgid  # a mark the counter did not place
_instructions.counted(variants, 100)
'''


def _script(tmp_path: Path, stray: bool = False) -> Path:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(benchmarks=str(BENCHMARKS), stray=stray))
    return script


def test_each_block_is_counted_for_its_variant(tmp_path: Path) -> None:
    per_call = _instructions.count(sys.executable, _script(tmp_path), [], ["once", "twice"], 100)
    # the loop and the lambda add a little to the second; the work itself doubles
    assert 1.8 < per_call["twice"] / per_call["once"] < 2.3
    assert per_call["once"] > 1000


def test_a_stray_mark_fails_instead_of_shifting_the_blocks(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="marks under callgrind"):
        _instructions.count(sys.executable, _script(tmp_path, stray=True), [], ["once", "twice", "stray"], 100)
