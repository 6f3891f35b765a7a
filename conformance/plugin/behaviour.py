"""What a check's system under test did, whatever was declared about it (results.records.Behaviour), read off each
phase's report and exception on the process that ran the check — before a declared xfail turns a failure into
`xfailed`. The gate compares it to tell a behaviour change from a change in what was declared."""

from __future__ import annotations

from typing import Any

import pytest

from ..outcomes import ours
from ..results.records import Behaviour
from .meta import CheckMeta


def behaviour_of(meta: CheckMeta, report: pytest.TestReport, call: pytest.CallInfo[Any]) -> Behaviour | None:
    """The behaviour one phase shows, or None when the phase adds nothing (a passing setup or teardown)."""
    exc = call.excinfo.value if call.excinfo is not None else None
    if exc is None:
        return Behaviour("passed") if call.when == "call" else None  # xpassed too: the check passed
    if isinstance(exc, pytest.skip.Exception) and not hasattr(report, "wasxfail"):
        return Behaviour.of_failure("skipped", str(exc.msg))
    if ours(exc) or call.when != "call":
        return Behaviour.of_failure("error", _message(exc))  # ours, or a fixture's: the harness's, not the SUT's
    return Behaviour.of_failure(meta.died or "failed", _message(exc))


def _message(exc: BaseException) -> str:
    if isinstance(exc, pytest.fail.Exception):
        return str(exc.msg)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
