"""Marker names and their help text, registered once so --strict-markers holds."""

from __future__ import annotations

import pytest

CHECK = "check"
SUT = "sut"
CONCURRENCY = "concurrency"
DESTRUCTIVE = "destructive"
RISKY = "risky"

HELP = {
    CHECK: "check(id, *, layer, spec): a conformance check with a stable id (the gate keys on it; a parametrized "
    "check names its arguments in it, e.g. 'keygen.aes_{bits}'), the layer it judges (module|binding|provider) "
    "and the spec section or doc sentence it cites",
    SUT: "exercises the session provider under test (--sut); -m sut selects exactly these",
    CONCURRENCY: "exercises more than one thread or session at once",
    DESTRUCTIVE: "needs a disposable token (creates, destroys or re-initialises state); skipped elsewhere",
    RISKY: "can crash the module or cost PIN tries (free-running concurrent calls, logins racing from several "
    "processes); on tokens that are not disposable it runs only with --allow-risky",
}


def register(config: pytest.Config) -> None:
    for name, text in HELP.items():
        config.addinivalue_line("markers", f"{name}: {text}")
