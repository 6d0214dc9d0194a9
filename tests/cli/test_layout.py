"""``llm_otel.integrations`` resolves to the integrations of the same tree, however the kit is installed.

The top-level ``integrations/`` folder is reached through ``llm_otel/integrations`` (a link inside the
package), so a plain checkout, an editable install and a wheel all find it without a path mapping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import llm_otel
import llm_otel.integrations

ROOT = Path(__file__).resolve().parents[2]
WHERE = (
    "import json, llm_otel, llm_otel.integrations.asgi as a; "
    "print(json.dumps([llm_otel.__file__, a.__file__]))"
)


def _where(python: str, cwd: Path, env: dict[str, str]) -> tuple[Path, Path]:
    out = subprocess.run([python, "-c", WHERE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    core, adapter = json.loads(out.stdout)
    return Path(core).resolve(), Path(adapter).resolve()


def test_installed_here_integrations_come_from_the_same_tree() -> None:
    core = Path(llm_otel.__file__).resolve().parent
    adapters = Path(llm_otel.integrations.__file__).resolve().parent
    assert adapters.parent == core.parent  # <tree>/llm_otel and <tree>/integrations


def test_plain_checkout_on_pythonpath(tmp_path: Path) -> None:
    """A checkout put on PYTHONPATH (no install of its own) imports its own integrations."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    core, adapter = _where(sys.executable, tmp_path, env)
    assert core == ROOT / "llm_otel" / "__init__.py"
    assert adapter == ROOT / "integrations" / "asgi.py"


def test_second_checkout_loads_its_own_integrations(tmp_path: Path) -> None:
    """A copy of the tree imports the copy's integrations, not the installed checkout's."""
    copy = tmp_path / "copy"
    for part in ("llm_otel", "integrations"):
        shutil.copytree(ROOT / part, copy / part, symlinks=True)
    env = {**os.environ, "PYTHONPATH": str(copy)}
    core, adapter = _where(sys.executable, tmp_path, env)
    assert core == copy.resolve() / "llm_otel" / "__init__.py"
    assert adapter == copy.resolve() / "integrations" / "asgi.py"


@pytest.mark.slow
def test_wheel_carries_the_integrations(tmp_path: Path) -> None:
    """A wheel installed (not editable) into a fresh environment imports the integrations from it."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        check=True, timeout=300,
    )
    (wheel,) = wheels.glob("llm_otel-*.whl")
    env_dir = tmp_path / "venv"
    # the environment borrows the dependencies already installed here, but not the kit itself
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = str(env_dir / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, str(wheel)],
        check=True, timeout=300,
    )
    core, adapter = _where(python, tmp_path, {k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert core.is_relative_to(env_dir.resolve()) and adapter.is_relative_to(env_dir.resolve())
    assert adapter.parent == core.parent / "integrations"
    assert not adapter.is_symlink()
