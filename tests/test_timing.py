"""Timing from the module, not from constants (conformance/executor/timing.py; issue 11: "Derive the step timeout,
the block window, the end-of-schedule watch, per-example and per-check budgets from it; explicit options still
override, and on a local SoftHSM the defaults stay as fast as today")."""

from __future__ import annotations

import pytest

from conformance.executor.protocol import Latency
from conformance.executor.timing import (
    BLOCK_WINDOW_S, CHECK_TIMEOUT_S, STEP_TIMEOUT_S, STRESS_TIMEOUT_S, Explicit, derive,
)

LOCAL = Latency(login=(0.0008,), open=(0.00001,), close=(0.00001,), search=(0.00004,))
FAR = Latency(login=(0.02,), open=(0.02,), close=(0.02,), search=(0.06,))  # every call 20 ms away
SLOW_LOGIN = Latency(login=(1.5, 1.4), open=(0.0001,), close=(0.0001,), search=(0.0003,))


@pytest.mark.parametrize("latency", [None, LOCAL], ids=["unmeasured", "local"])
def test_a_local_module_keeps_the_floors(latency: Latency | None) -> None:
    """On a local soft token every wait stays where it was before the harness measured (as fast as today)."""
    timing = derive(latency)
    assert (timing.limits.block_window, timing.limits.step_timeout, timing.limits.end_watch) == \
        (BLOCK_WINDOW_S, STEP_TIMEOUT_S, BLOCK_WINDOW_S)
    assert timing.check_budget() == CHECK_TIMEOUT_S
    assert timing.stress_budget(4, 150) == STRESS_TIMEOUT_S


def test_a_module_far_away_waits_longer_for_what_it_does() -> None:
    """20 ms per call: a call expected to block is watched long enough for one that does not to come back, and a
    call released by the last steps is watched long enough to make its own calls."""
    timing = derive(FAR)
    assert timing.per_call == pytest.approx(0.02)
    assert timing.limits.block_window >= 6 * 0.02  # a typical step's calls
    assert timing.limits.end_watch >= 12 * 0.02  # the most calls a step makes
    assert timing.limits.step_timeout >= 12 * 0.02


def test_a_slow_login_is_given_its_time() -> None:
    """A 1.5 s C_Login: a step that logs in is not hung, login rounds of several processes are not stalled."""
    timing = derive(SLOW_LOGIN)
    assert timing.limits.step_timeout >= 1.5 * 2
    assert timing.applications_budget(200) >= 200 * 1.5


def test_budgets_grow_with_the_latency() -> None:
    """An exploration's and a stress round's bounds scale with the module's latency."""
    assert derive(FAR).exploration_budget(300, 12) > derive(LOCAL).exploration_budget(300, 12)
    assert derive(FAR).stress_budget(4, 150) > derive(LOCAL).stress_budget(4, 150)


def test_explicit_options_win() -> None:
    """--block-window, --step-timeout and --check-timeout override what the latency gives."""
    timing = derive(FAR, Explicit(block_window=0.01, step_timeout=9.0, check_timeout=30.0))
    assert (timing.limits.block_window, timing.limits.step_timeout) == (0.01, 9.0)
    assert timing.check_budget() == 30.0 and timing.exploration_budget(300, 12) == 30.0
    assert timing.to_dict()["explicit"] == ["block_window", "check_timeout", "step_timeout"]
