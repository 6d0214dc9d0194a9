"""The test loop itself: hypothesis profiles by environment, slow tests marked, CI runs everything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import hypothesis_profiles
from tests.hypothesis_profiles import chosen_profile

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "profile"),
    [
        ({}, "dev"),
        ({"CI": "true"}, "ci"),
        ({"CI": "TRUE "}, "ci"),
        ({"CI": "false"}, "dev"),
        ({"CI": "true", "HYPOTHESIS_PROFILE": "quick"}, "quick"),
        ({"HYPOTHESIS_PROFILE": "ci"}, "ci"),
        ({"HYPOTHESIS_PROFILE": "nonsense"}, "dev"),
    ],
)
def test_profile_follows_the_environment(env: dict[str, str], profile: str) -> None:
    assert chosen_profile(env) == profile


def test_ci_runs_the_full_example_count_and_the_quick_loop_a_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hypothesis_profiles, "PROFILE", "ci")
    assert hypothesis_profiles.examples(1500) == 1500
    monkeypatch.setattr(hypothesis_profiles, "PROFILE", "dev")
    assert hypothesis_profiles.examples(1500) == 300
    monkeypatch.setattr(hypothesis_profiles, "PROFILE", "quick")
    assert hypothesis_profiles.examples(1500) == 30
    assert hypothesis_profiles.examples(60) == 10


def _collected(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    return [line for line in out.stdout.splitlines() if "::" in line]


@pytest.mark.slow  # collects in a subprocess (imports every framework)
def test_stack_tests_and_known_slow_ones_are_left_out_of_the_quick_loop() -> None:
    quick = _collected("-m", "not slow", "tests/e2e", "tests/faults/test_cardinality_attack.py",
                       "tests/stack/test_native_stack.py", "tests/cli/test_layout.py")
    assert quick and all("test_layout.py" in test for test in quick)  # only layout's fast checks remain


def test_scripts_test_sh_runs_every_test() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    pytest_line = next(line for line in script.splitlines() if "-m pytest" in line and not line.startswith("#"))
    arguments = pytest_line.split("-m pytest", 1)[1]
    assert " -m " not in arguments and "slow" not in arguments
