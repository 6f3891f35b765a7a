"""Schedules and traces as data: dict and JSON round trips, reproducer parsing, readable programs, outcomes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.engine.schedule import STATUSES, Schedule, Step, StepResult, Trace

ENGINE = settings(max_examples=50, deadline=None, database=None)

texts = st.text(max_size=12)
names = st.text(min_size=1, max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
# to_dict keeps durations to 0.1 µs: draw values already on that grid so the round trip is exact.
tenths = st.integers(0, 10**9).map(lambda n: n / 10)
indices = st.integers(0, 40)

steps = st.builds(
    Step,
    actor=st.integers(0, 4),
    op=st.sampled_from(["open", "close", "state", "search", "next", "consume", "drop", "digest", "acquire", "use"]),
    args=st.dictionaries(names, json_values, max_size=4),
    expect_block=st.booleans(),
    unblocks=st.lists(indices, max_size=3).map(tuple),
)
schedules = st.builds(
    Schedule, family=names, actors=st.integers(1, 5), steps=st.lists(steps, max_size=6).map(tuple)
)
step_results = st.builds(
    StepResult,
    index=indices,
    status=st.sampled_from(STATUSES),
    error=st.none() | names,
    value=json_values,
    duration_us=tenths,
    completed_after=st.none() | indices,
    ignored=st.lists(names, max_size=3).map(tuple),
)
traces = st.builds(
    Trace,
    results=st.lists(step_results, max_size=5).map(tuple),
    crashed=st.none() | st.sampled_from(["SIGSEGV", "SIGABRT", "exit 3", "unresponsive"]),
    stacks=st.none() | names,
    invariant_failures=st.lists(names, max_size=3).map(tuple),
    reset_us=tenths,
    final=st.dictionaries(names, json_values, max_size=4),
)


def _via_json(data: dict) -> dict:
    return json.loads(json.dumps(data))


# --- round trips -----------------------------------------------------------------------------------------------


@ENGINE
@given(steps)
def test_step_round_trips_through_dict(step: Step) -> None:
    """Step.from_dict(step.to_dict()) is the same step, timing hints included."""
    assert Step.from_dict(step.to_dict()) == step


@ENGINE
@given(schedules)
def test_schedule_round_trips_through_dict(schedule: Schedule) -> None:
    """Schedule.from_dict(schedule.to_dict()) is the same schedule."""
    assert Schedule.from_dict(schedule.to_dict()) == schedule


@ENGINE
@given(schedules)
def test_schedule_round_trips_through_json(schedule: Schedule) -> None:
    """A schedule survives json.dumps/json.loads between to_dict and from_dict (what the executor child receives)."""
    assert Schedule.from_dict(_via_json(schedule.to_dict())) == schedule


@ENGINE
@given(step_results)
def test_step_result_round_trips_through_dict(result: StepResult) -> None:
    """StepResult.from_dict(result.to_dict()) is the same result, optional fields included."""
    assert StepResult.from_dict(result.to_dict()) == result


@ENGINE
@given(step_results)
def test_step_result_round_trips_through_json(result: StepResult) -> None:
    """A step result survives JSON (the child's 'step' event)."""
    assert StepResult.from_dict(_via_json(result.to_dict())) == result


@ENGINE
@given(traces)
def test_trace_round_trips_through_dict(trace: Trace) -> None:
    """Trace.from_dict(trace.to_dict()) is the same trace: crashed, stacks, invariant failures, final."""
    assert Trace.from_dict(trace.to_dict()) == trace


@ENGINE
@given(traces)
def test_trace_round_trips_through_json(trace: Trace) -> None:
    """A trace survives JSON (results files)."""
    assert Trace.from_dict(_via_json(trace.to_dict())) == trace


def test_unset_optional_fields_are_left_out_of_the_dict() -> None:
    """Defaults are omitted from to_dict, so reproducers in results files stay short."""
    assert Step(0, "drop", {"iterator": "it0"}).to_dict() == {"actor": 0, "op": "drop", "args": {"iterator": "it0"}}
    assert StepResult(3, "ok").to_dict() == {"index": 3, "status": "ok", "duration_us": 0.0}
    assert Trace(()).to_dict() == {"results": [], "reset_us": 0.0, "run_us": 0.0}


def test_duration_is_kept_to_a_tenth_of_a_microsecond() -> None:
    """to_dict rounds duration_us and reset_us to 0.1 µs."""
    assert StepResult(0, "ok", duration_us=12.3456).to_dict()["duration_us"] == 12.3
    assert Trace((), reset_us=99.96).to_dict()["reset_us"] == 100.0


def test_from_dict_fills_in_defaults() -> None:
    """A minimal dict (only the required keys) parses, with every optional field at its default."""
    assert Step.from_dict({"actor": 1, "op": "acquire"}) == Step(1, "acquire", {})
    assert StepResult.from_dict({"index": 2, "status": "blocked"}) == StepResult(2, "blocked")
    assert Trace.from_dict({"results": []}) == Trace(())


# --- reproducers -----------------------------------------------------------------------------------------------


def test_from_steps_infers_actors_from_the_highest_actor() -> None:
    """Schedule.from_steps: actors = highest actor + 1."""
    schedule = Schedule.from_steps("release", [
        {"actor": 0, "op": "open", "args": {"ref": "s0", "login": False}},
        {"actor": 2, "op": "find_all", "args": {"session": "s0"}, "expect_block": True},
        {"actor": 1, "op": "drop", "args": {"iterator": "it0"}, "unblocks": [1]},
    ])
    assert schedule.family == "release"
    assert schedule.actors == 3
    assert schedule.steps[1].expect_block and schedule.steps[2].unblocks == (1,)


def test_from_steps_of_an_empty_list_has_one_actor() -> None:
    """An empty reproducer still names one actor (the default of max() is 0)."""
    assert Schedule.from_steps("sessions", []) == Schedule("sessions", 1, ())


@ENGINE
@given(schedules)
def test_from_steps_reads_back_a_schedules_own_steps(schedule: Schedule) -> None:
    """from_steps on to_dict()['steps'] gives back the steps, with actors covering every actor that acts."""
    again = Schedule.from_steps(schedule.family, schedule.to_dict()["steps"])
    assert again.steps == schedule.steps
    assert again.actors == max((s.actor for s in schedule.steps), default=0) + 1


# --- readable programs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "line"),
    [
        (Step(1, "search", {"ref": "it0", "session": "s0", "batch": 2}), "actor1: it0 = search(s0, batch=2)"),
        (Step(0, "open", {"ref": "s1", "login": True}), "actor0: s1 = open(login=True)"),
        (Step(2, "next", {"iterator": "it3"}), "actor2: next(it3)"),
        (Step(0, "use", {"what": "digest"}), "actor0: use(what='digest')"),
        (Step(1, "acquire", {}), "actor1: acquire()"),
    ],
)
def test_program_line_reads_like_a_call(step: Step, line: str) -> None:
    """Step.program_line: `actorN: ref = op(session-or-iterator, key=value...)`."""
    assert step.program_line() == line


def test_program_line_notes_an_expected_block() -> None:
    """A step the model expects to block says so in its program line."""
    line = Step(1, "find_all", {"session": "s0"}, expect_block=True).program_line()
    assert line == "actor1: find_all(s0)   # expected to block"


def test_program_line_does_not_show_unblocks() -> None:
    """unblocks is an executor timing hint, not part of the readable call."""
    assert Step(0, "consume", {"iterator": "it0"}, unblocks=(3,)).program_line() == "actor0: consume(it0)"


def test_program_numbers_each_step() -> None:
    """Schedule.program: one numbered line per step, in order."""
    schedule = Schedule("operations", 2, (
        Step(0, "open", {"ref": "s0", "login": False}),
        Step(0, "search", {"ref": "it0", "session": "s0", "batch": 2}),
        Step(1, "find_all", {"session": "s0"}, expect_block=True),
    ))
    assert schedule.program().splitlines() == [
        "  0  actor0: s0 = open(login=False)",
        "  1  actor0: it0 = search(s0, batch=2)",
        "  2  actor1: find_all(s0)   # expected to block",
    ]


# --- outcomes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        (StepResult(0, "ok"), "ok"),
        (StepResult(0, "ok", value=4), "ok:4"),
        (StepResult(0, "ok", value="p0"), "ok:p0"),
        (StepResult(0, "ok", value=0), "ok:0"),
        (StepResult(0, "raised", error="OperationActive"), "raises:OperationActive"),
        (StepResult(0, "blocked"), "blocked"),
        (StepResult(0, "hung"), "hung"),
        (StepResult(0, "not_run"), "not_run"),
    ],
)
def test_outcome_is_the_comparable_summary(result: StepResult, outcome: str) -> None:
    """StepResult.outcome(): 'ok', 'ok:value' (even a falsy value), 'raises:Name', or the status."""
    assert result.outcome() == outcome


def test_trace_outcomes_are_in_step_order() -> None:
    """Trace.outcomes() lists each result's outcome."""
    trace = Trace((StepResult(0, "ok"), StepResult(1, "raised", error="SessionClosed"),
                   StepResult(2, "ok", value="item")))
    assert trace.outcomes() == ("ok", "raises:SessionClosed", "ok:item")
