"""Exploring one scenario family: hypothesis draws schedules, the executor runs them, the judge compares.

Hypothesis only ever sees data (a Schedule in, a pass/fail out), so it shrinks a crash or a hang like any other
failure. The minimal failing schedule is replayed once more to check that the failure is deterministic.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from hypothesis import HealthCheck, given, seed, settings

from ..outcomes import HarnessFault
from .judge import Verdict, describe, judge
from .params import ModelParams
from .schedule import Schedule, Trace
from .families import FAMILIES, Family
from .planning import Planner
from .strategies import pinned_elsewhere, schedules, step_key


class Runner(Protocol):
    """What runs a schedule against the real module and returns what happened (executor/parent.py's Executor)."""

    def run(self, schedule: Schedule) -> Trace: ...


class ScheduleFailed(AssertionError):
    """Raised inside the hypothesis test so it shrinks; carries the data of the failing example."""

    def __init__(self, schedule: Schedule, trace: Trace, verdict: Verdict) -> None:
        super().__init__(describe(schedule, trace, verdict))
        self.schedule, self.trace, self.verdict = schedule, trace, verdict


@dataclass
class Exploration:
    family: str
    examples: int = 0
    observed: dict[str, set[str]] = field(default_factory=dict)
    failure: ScheduleFailed | None = None
    deterministic: bool | None = None
    hypothesis_note: str | None = None
    reset_us: list[float] = field(default_factory=list)

    over_budget: bool = False

    @property
    def passed(self) -> bool:
        return self.failure is None and not self.over_budget


def _run_one(executor: Runner, schedule: Schedule, family: Family, params: ModelParams, found: Exploration) -> None:
    try:
        trace = executor.run(schedule)
    except HarnessFault as fault:
        raise _Broke(schedule, fault) from None
    found.examples += 1
    if trace.reset_us:
        found.reset_us.append(trace.reset_us)
    verdict = judge(schedule, trace, family.new_model(params))
    for point, values in verdict.observed.items():
        found.observed.setdefault(point, set()).update(values)
    if verdict.failed:
        raise ScheduleFailed(schedule, trace, verdict)


class _Broke(BaseException):
    """The harness broke on an example (conformance.outcomes.HarnessFault): not a failing example to shrink (each try
    would restart the module's process for our own bug); hypothesis lets a BaseException through at once."""

    def __init__(self, schedule: Schedule, fault: Exception) -> None:
        super().__init__(str(fault))
        self.schedule, self.fault = schedule, fault


class OverBudget(BaseException):
    """The exploration ran past its time budget. A BaseException, so hypothesis lets it through at once instead
    of treating it as a failing example to shrink."""


def explore(executor: Runner, family_name: str, params: ModelParams, replay: Iterable[Schedule] = (),
            budget_s: float | None = None) -> Exploration:
    """Run the replays, then hypothesis-drawn schedules; stop at the first finding (minimal schedule), or when
    `budget_s` seconds have passed (found.over_budget; the examples run so far are counted)."""
    family = FAMILIES[family_name]
    found = Exploration(family_name)
    deadline = time.monotonic() + budget_s if budget_s else None
    try:
        return _explore(executor, family, params, replay, deadline, found)
    except _Broke as broke:  # ours: said with the schedule it broke on, so it can be replayed and fixed
        raise HarnessFault(f"{broke.fault}\nthe schedule it broke on ({family_name}):\n{broke.schedule.program()}") from None


def _explore(executor: Runner, family: Family, params: ModelParams, replay: Iterable[Schedule],
             deadline: float | None, found: Exploration) -> Exploration:
    for schedule in [*regressions(family, params), *replay]:  # explicit ones first, like @example
        try:
            _run_one(executor, schedule, family, params, found)
        except ScheduleFailed as failure:
            found.failure = failure
            found.deterministic = _replays_the_same(executor, failure)
            return found

    # One finding per check, the minimal one: with several distinct failures hypothesis would raise them as a group.
    @settings(deadline=None, suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(schedules(family, params))
    def scenario(schedule: Schedule) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise OverBudget()
        _run_one(executor, schedule, family, params, found)

    if settings().derandomize:
        # Derandomised profiles (dev, ci) draw from a seed of the family's name, not of this function's source:
        # the same schedules run from one harness version to the next unless the menus change (stable for the gate).
        scenario = seed(zlib.crc32(family.name.encode()))(scenario)

    try:
        scenario()
    except OverBudget:
        found.over_budget = True
    except (ScheduleFailed, ExceptionGroup) as raised:  # hypothesis re-raises the minimal example last
        # A failure that did not happen again on hypothesis's last replay comes wrapped (FlakyFailure): the finding
        # is the same; _replays_the_same below says it is not deterministic.
        failure = _failure_in(raised)
        if failure is None:
            raise
        found.failure = failure
        notes = getattr(failure, "__notes__", None) or []
        found.hypothesis_note = "\n".join(n for n in notes if "reproduce_failure" in n or "Falsifying" in n) or None
        found.deterministic = _replays_the_same(executor, failure)
    return found


def _failure_in(raised: BaseException) -> ScheduleFailed | None:
    if isinstance(raised, ScheduleFailed):
        return raised
    if isinstance(raised, BaseExceptionGroup):
        return next((f for e in raised.exceptions if (f := _failure_in(e)) is not None), None)
    return None


def regressions(family: Family, params: ModelParams) -> list[Schedule]:
    """The family's regression schedules this token can run: one with a step the token lacks the capability for,
    or a step exploration leaves out (a declared finding pinned by a scripted check), is left out."""
    out = []
    for steps in family.examples:
        planner = Planner(family, params)
        for step in steps:
            if step_key(step) in params.unsupported_steps or pinned_elsewhere(planner.model, step):
                break
            planner.add(step)
        else:
            out.append(planner.schedule())
    return out


def _replays_the_same(executor: Runner, failure: ScheduleFailed) -> bool:
    """Determinism self-check: the minimal schedule, run again, must give the same outcomes."""
    again = executor.run(failure.schedule)
    return again.outcomes() == failure.trace.outcomes()
