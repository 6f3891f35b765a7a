"""The forked-child instrument of the fork checks (conformance/live/forking.py), on plain Python steps: every step's
outcome comes back in order, a child that dies is crashed with its signal (the steps before it kept), one that stops
answering is hung and killed, and both ways of forking a worker behave alike."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import pytest

from conformance.live import forking
from conformance.live.forking import in_forked_child


@dataclass(frozen=True)
class Limits:
    step_timeout: float = 1.0


@pytest.mark.parametrize("how", ["fork", "multiprocessing"])
def test_each_step_is_reported_in_order(how: str) -> None:
    def steps(step):
        step("first", lambda: None)
        step("refused", lambda: (_ for _ in ()).throw(ValueError("x")))
        step("last", lambda: None)
    result = in_forked_child(steps, Limits(), how=how)
    assert result.steps == (("first", "ok"), ("refused", "ValueError"), ("last", "ok")) and result.ended == "ok"


@pytest.mark.parametrize("how", ["fork", "multiprocessing"])
def test_a_child_that_dies_is_crashed_with_its_signal(how: str) -> None:
    def steps(step):
        step("before", lambda: None)
        step("dies", lambda: os.kill(os.getpid(), signal.SIGSEGV))
    result = in_forked_child(steps, Limits(), how=how)
    assert result.steps == (("before", "ok"),) and result.ended == "crashed:SIGSEGV"
    assert result.summary() == {"before": "ok", "ended": "crashed:SIGSEGV"}


def test_a_child_that_stops_answering_is_hung_and_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forking, "STEP_FLOOR_S", 0.5)
    started = time.monotonic()
    result = in_forked_child(lambda step: step("sleeps", lambda: time.sleep(60)), Limits(step_timeout=0.1))
    assert result.ended == "hung" and result.steps == ()
    assert time.monotonic() - started < 30


def test_the_floor_and_the_vendors_step_timeout_bound_each_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step slower than the floor but within the vendor's (derived) step timeout is waited for."""
    monkeypatch.setattr(forking, "STEP_FLOOR_S", 0.2)
    result = in_forked_child(lambda step: step("slow", lambda: time.sleep(0.6)), Limits(step_timeout=3.0))
    assert result.steps == (("slow", "ok"),) and result.ended == "ok"
