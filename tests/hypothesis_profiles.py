"""Hypothesis profiles: thorough in CI, quick for the edit-test loop.

The profile is chosen by ``HYPOTHESIS_PROFILE`` (``ci``, ``dev`` or ``quick``); without it, ``CI=true``
selects ``ci`` and anything else ``dev``. Property tests state the example count they need in CI with
``examples(n)``; the other profiles run a fixed share of it, so a local run stays short while CI keeps
the full search.
"""

from __future__ import annotations

import os

from hypothesis import settings

# share of each test's CI example count a profile runs
_SHARE = {"ci": 1.0, "dev": 0.2, "quick": 0.02}
_FLOOR = 10  # even the quick loop tries a handful of shapes

settings.register_profile("ci", max_examples=1000, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("quick", max_examples=_FLOOR, deadline=None)


def chosen_profile(env: dict[str, str] | os._Environ[str] = os.environ) -> str:
    explicit = env.get("HYPOTHESIS_PROFILE", "").strip()
    if explicit in _SHARE:
        return explicit
    return "ci" if env.get("CI", "").strip().lower() == "true" else "dev"


PROFILE = chosen_profile()
settings.load_profile(PROFILE)


def examples(in_ci: int) -> int:
    """The example count for a property test that needs ``in_ci`` examples in CI."""
    return max(_FLOOR, round(in_ci * _SHARE[PROFILE]))
