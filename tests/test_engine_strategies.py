"""Properties of drawn schedules, for every family: serialisable, consistent timing hints, agreeing with the judge."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from conformance.engine.families import FAMILIES
from conformance.engine.judge import judge
from conformance.engine.model import BLOCKED, Expectation
from conformance.engine.params import ModelParams
from conformance.engine.schedule import Schedule, Step, StepResult, Trace
from conformance.engine.strategies import schedules

ENGINE = settings(max_examples=50, deadline=None, database=None)

PARAMS = {
    "documented": ModelParams(),
    "declared": ModelParams(refused_search_ends_active_search=True, failed_login_leaks_session=True,
                            nonowner_finish_keeps_lock=True),
}
CASES = pytest.mark.parametrize(("family", "params"), [(f, p) for f in FAMILIES for p in PARAMS])


def _first(allowed: frozenset[str] | None) -> str:
    return "ok" if allowed is None else sorted(allowed)[0]


def _result(index: int, outcome: str, completed_after: int | None = None) -> StepResult:
    if outcome.startswith("raises:"):
        return StepResult(index, "raised", error=outcome.split(":", 1)[1], completed_after=completed_after)
    if outcome.startswith("ok:"):
        return StepResult(index, "ok", value=outcome.split(":", 1)[1], completed_after=completed_after)
    return StepResult(index, outcome, completed_after=completed_after)


@dataclass(frozen=True)
class Replayed:
    """One step of a schedule replayed through a fresh model, with the model's state just before it."""

    step: Step
    expectation: Expectation
    blocked_actors: frozenset[int]
    waited_on: frozenset[str]  # session locks that already have a waiter
    stuck: frozenset[str]  # sessions whose lock is held for good
    target: str | None  # the session lock a block would wait on
    resumed: tuple[int, ...]  # earlier blocked steps this one releases (transitively)


def replay(schedule: Schedule, params: ModelParams) -> tuple[list[Replayed], Trace]:
    """Run the schedule through a fresh family model with its own first-allowed predictions, as the generator does;
    also build the trace a module behaving exactly so would give."""
    model = FAMILIES[schedule.family].new_model(params)
    out: list[Replayed] = []
    results: dict[int, StepResult] = {}
    for i, step in enumerate(schedule.steps):
        exp = model.expect(step.actor, step)
        before = (frozenset(model.blocked_actors()), frozenset(model.waiters),
                  frozenset(r for r, s in model.sessions.items() if s.stuck), model.lock_target(step.actor, step))
        outcome = BLOCKED if exp.blocks else _first(exp.allowed)
        results[i] = _result(i, outcome)
        queue = model.advance(i, step.actor, step, outcome)
        resumed: list[int] = []
        while queue:
            j, actor, waiting, exp_j = queue.pop(0)
            resumed.append(j)
            results[j] = _result(j, _first(exp_j.allowed), completed_after=i)
            queue += model.advance(j, actor, waiting, _first(exp_j.allowed))
        out.append(Replayed(step, exp, *before, tuple(resumed)))
    trace = Trace(tuple(results[i] for i in sorted(results)), final=model.final_expectations())
    return out, trace


@CASES
@ENGINE
@given(data=st.data())
def test_drawn_schedules_round_trip(family: str, params: str, data: st.DataObject) -> None:
    """Every drawn schedule survives to_dict/from_dict unchanged (it is all the executor and results files see)."""
    schedule = data.draw(schedules(FAMILIES[family], PARAMS[params]))
    assert Schedule.from_dict(schedule.to_dict()) == schedule
    assert schedule.family == family and 1 <= schedule.actors <= FAMILIES[family].max_actors
    assert len(schedule.steps) <= FAMILIES[family].max_steps
    assert all(0 <= s.actor < schedule.actors for s in schedule.steps)


@CASES
@ENGINE
@given(data=st.data())
def test_at_most_one_waiter_per_session_lock(family: str, params: str, data: st.DataObject) -> None:
    """Never two steps at once expected to block on the same session lock (which waiter wakes first is the OS's)."""
    schedule = data.draw(schedules(FAMILIES[family], PARAMS[params]))
    for r in replay(schedule, PARAMS[params])[0]:
        if r.step.expect_block:
            assert r.target is not None and r.target not in r.waited_on


@CASES
@ENGINE
@given(data=st.data())
def test_no_waiter_on_a_lock_held_for_good(family: str, params: str, data: st.DataObject) -> None:
    """No step is scheduled to wait on a session the model knows is stuck (it would only cost a restart)."""
    schedule = data.draw(schedules(FAMILIES[family], PARAMS[params]))
    for r in replay(schedule, PARAMS[params])[0]:
        if r.step.expect_block:
            assert r.target not in r.stuck


@CASES
@ENGINE
@given(data=st.data())
def test_unblocks_refer_to_earlier_expected_blocks(family: str, params: str, data: st.DataObject) -> None:
    """A step with unblocks=(j,) names an earlier step j that had expect_block=True, and each j is released once."""
    schedule = data.draw(schedules(FAMILIES[family], PARAMS[params]))
    released: list[int] = []
    for i, step in enumerate(schedule.steps):
        for j in step.unblocks:
            assert 0 <= j < i and schedule.steps[j].expect_block
        released += step.unblocks
    assert len(released) == len(set(released))


@CASES
@ENGINE
@given(data=st.data())
def test_timing_hints_are_the_models_predictions(family: str, params: str, data: st.DataObject) -> None:
    """expect_block and unblocks are exactly what a fresh model, replayed with its own predictions, says."""
    schedule = data.draw(schedules(FAMILIES[family], PARAMS[params]))
    for r in replay(schedule, PARAMS[params])[0]:
        assert r.step.expect_block == r.expectation.blocks
        assert r.step.unblocks == r.resumed


@CASES
@ENGINE
@given(data=st.data())
def test_no_step_for_a_blocked_actor(family: str, params: str, data: st.DataObject) -> None:
    """No step is scheduled for an actor the model says is blocked at that point."""
    schedule = data.draw(schedules(FAMILIES[family], PARAMS[params]))
    for r in replay(schedule, PARAMS[params])[0]:
        assert r.step.actor not in r.blocked_actors


@CASES
@ENGINE
@given(data=st.data())
def test_judge_passes_the_models_own_behaviour(family: str, params: str, data: st.DataObject) -> None:
    """A trace built from the model's first-allowed predictions passes the judge: generator and judge agree."""
    schedule = data.draw(schedules(FAMILIES[family], PARAMS[params]))
    trace = replay(schedule, PARAMS[params])[1]
    verdict = judge(schedule, trace, FAMILIES[family].new_model(PARAMS[params]))
    assert verdict.mismatches == () and verdict.status == "passed"


@CASES
@ENGINE
@given(data=st.data())
def test_judge_reports_a_changed_outcome(family: str, params: str, data: st.DataObject) -> None:
    """Replacing one judged step's outcome with one the model does not allow makes the judge fail at that step."""
    schedule = data.draw(schedules(FAMILIES[family], PARAMS[params]))
    replayed, trace = replay(schedule, PARAMS[params])
    judged = [i for i, r in enumerate(replayed) if r.expectation.allowed is not None and not r.expectation.blocks]
    if not judged:
        return
    i = data.draw(st.sampled_from(judged), label="changed step")
    results = list(trace.results)
    results[i] = StepResult(i, "raised", error="FakeUnexpectedError")
    verdict = judge(schedule, Trace(tuple(results), final=trace.final), FAMILIES[family].new_model(PARAMS[params]))
    assert verdict.status == "failed" and verdict.mismatches[0].index == i


@pytest.mark.parametrize("family", ["operations", "release", "provider"])
def test_lock_families_reach_a_block_and_its_release(family: str) -> None:
    """The properties above are not vacuous: each lock-taking family draws a schedule with a block it releases."""
    found = find(schedules(FAMILIES[family], ModelParams()), lambda s: any(s.unblocks for s in s.steps),
                 settings=settings(max_examples=2000, database=None, derandomize=True, phases=[Phase.generate]))
    assert any(step.expect_block for step in found.steps)


def _planned(family: str, params: ModelParams, *steps: Step):
    from conformance.engine.planning import Planner

    planner = Planner(FAMILIES[family], params)
    for step in steps:
        planner.add(step)
    return planner.model


@pytest.mark.parametrize("declared", [False, True])
def test_declared_concurrent_searches_are_not_drawn(declared):
    """With concurrent_searches declared (a module that runs two searches on one session; the scripted check
    pins it), exploration does not start a search where one is active; undeclared, it does (the model expects
    OperationActive)."""
    from conformance.engine.strategies import pinned_elsewhere

    params = ModelParams(concurrent_searches=declared)
    model = _planned("operations", params, Step(0, "open", {"ref": "s0", "login": False}),
                     Step(0, "search", {"ref": "it0", "session": "s0", "batch": 1}), Step(0, "next", {"iterator": "it0"}))
    assert pinned_elsewhere(model, Step(0, "find_all", {"session": "s0"})) is declared
    assert pinned_elsewhere(model, Step(0, "digest", {"session": "s0"})) is False


@pytest.mark.parametrize("declared", [False, True])
def test_declared_stale_session_handles_are_not_drawn(declared):
    """With stale_session_handles declared (handles reused; release.*_of_closed_session and
    release.call_on_closed_session pin it), exploration makes no call through a closed session: no iterator of it
    started, advanced or dropped once started, no one-shot on it. Its state (ground truth, not the binding), a
    drop of an iterator that never started, and everything on open sessions are still drawn."""
    from conformance.engine.strategies import pinned_elsewhere

    params = ModelParams(stale_session_handles=declared)
    model = _planned("release", params, Step(0, "open", {"ref": "s0", "login": False}),
                     Step(0, "search", {"ref": "it0", "session": "s0", "batch": 10}),
                     Step(0, "search", {"ref": "it1", "session": "s0", "batch": 10}), Step(0, "next", {"iterator": "it1"}),
                     Step(0, "consume", {"iterator": "it1"}), Step(0, "search", {"ref": "it2", "session": "s0", "batch": 10}),
                     Step(0, "next", {"iterator": "it2"}), Step(0, "close", {"session": "s0"}),
                     Step(0, "open", {"ref": "s1", "login": False}))
    for step in (Step(0, "next", {"iterator": "it0"}), Step(0, "next", {"iterator": "it2"}),
                 Step(0, "consume", {"iterator": "it2"}), Step(0, "drop", {"iterator": "it2"}),
                 Step(0, "find_all", {"session": "s0"})):
        assert pinned_elsewhere(model, step) is declared, step
    for step in (Step(0, "drop", {"iterator": "it0"}), Step(0, "find_all", {"session": "s1"}),
                 Step(0, "state", {"session": "s0"})):
        assert pinned_elsewhere(model, step) is False, step


@pytest.mark.parametrize("declared", [False, True])
def test_declared_stale_session_handles_keep_a_waited_on_session_open(declared):
    """... nor a close of a session whose lock a blocked call waits on (the call would run after the close)."""
    from conformance.engine.strategies import pinned_elsewhere

    params = ModelParams(stale_session_handles=declared)
    model = _planned("release", params, Step(0, "open", {"ref": "s0", "login": False}),
                     Step(0, "search", {"ref": "it0", "session": "s0", "batch": 10}), Step(0, "next", {"iterator": "it0"}),
                     Step(1, "find_all", {"session": "s0"}))
    assert model.waiters, "find_all should wait on s0's lock"
    assert pinned_elsewhere(model, Step(0, "close", {"session": "s0"})) is declared


def test_family_regression_examples_run_first_where_they_can():
    """Hypothesis' @example for scenario families: every family's regression schedules are planned (timing hints
    included) and run on a token that can run them; one using a step the token lacks is left out."""
    from conformance.engine.families import FAMILIES
    from conformance.engine.explore import regressions

    for family in FAMILIES.values():
        planned = regressions(family, ModelParams())
        assert [tuple((s.actor, s.op, dict(s.args)) for s in p.steps) for p in planned] == \
            [tuple((s.actor, s.op, dict(s.args)) for s in steps) for steps in family.examples], family.name
    operations = FAMILIES["operations"]
    assert regressions(operations, ModelParams(unsupported_steps=frozenset({"encrypt_gen"}))) == []
    assert any(s.expect_block for s in regressions(operations, ModelParams())[0].steps)


@pytest.mark.parametrize(("missing", "use"), [({}, "digest"), ({"sha256_digest": "not listed"}, "random"),
                                              ({"sha256_digest": "x", "aes_keygen": "y"}, "random")])
def test_one_shot_use_is_what_the_token_can_do(missing, use):
    """Checks that only need a use of a session take the token's own (a digest, else C_GenerateRandom), and the
    scenario step they make is never one the token's menu leaves out."""
    from conformance.live.capabilities import one_shot_use, unsupported_steps

    class FakeVendor:  # the facts a VendorRuntime carries, nothing else
        facts = {"capabilities_missing": missing}

    chosen = one_shot_use(FakeVendor())
    assert chosen == use
    assert f"use:{chosen}" not in unsupported_steps(missing)
