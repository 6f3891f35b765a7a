"""Hypothesis profiles for scenario exploration, selected with --hypothesis-profile=dev|ci|deep.

Without the option, `ci` is used when the CI environment variable is set and `dev` otherwise. `dev` and `ci` are
derandomised: the same harness explores the same schedules every time, so two runs of an unchanged setup record the
same `observed` values and the gate compares like with like. `deep` draws new schedules on every run (nightly).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Scenario examples run real PKCS#11 calls in a child process: deadlines are meaningless (the executor bounds
# every step instead), and "slow" or "large" data is the point, not a problem.
# Every setting that matters is explicit, on hypothesis' built-in defaults: `settings(...)` would otherwise inherit
# whatever profile is loaded at import time (with CI set, hypothesis loads its own derandomised "ci" profile).
_COMMON = dict(parent=settings.get_profile("default"), deadline=None, suppress_health_check=list(HealthCheck))

PROFILES = {
    "dev": settings(max_examples=40, derandomize=True, database=None, print_blob=False, **_COMMON),
    "ci": settings(max_examples=300, derandomize=True, database=None, print_blob=True, **_COMMON),
    "deep": settings(max_examples=1500, derandomize=False, print_blob=True, **_COMMON),
}


def register() -> None:
    for name, profile in PROFILES.items():
        settings.register_profile(name, profile)


def choose(explicit: str | None) -> str:
    """Load the profile the user named, else ci/dev by environment; returns the name in force."""
    name = explicit or ("ci" if os.environ.get("CI") else "dev")
    settings.load_profile(name)
    return name
