"""The runtime programs of the greenlet and asyncio checks (conformance/runtimes): their data round-trips, the model
says what the docs promise, and the program on a real SoftHSM token gives what each runtime really does — with a
crash, a hang, a missing library and a wrong module reported as such, and the PIN never in what comes back."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from conformance.runtimes import launch
from conformance.runtimes.launch import RuntimeNotInstalled, RuntimeProcess, RuntimeUnavailable
from conformance.runtimes.model import EXAMPLES, Expect, closed, draw_job, judge, predict, smaller
from conformance.runtimes.plan import GREENLET_RUNTIMES, Act, ActResult, Job, Outcome, Runtime, Start

from faults import build_shim

PIN = "1234"
WAIT = Job((Act(0, "start", 0, "it0"), Act(1, "all", 0), Act(0, "rest", it="it0")), label="t-wait")
DROP = Job((Act(0, "start", 0, "it0"), Act(1, "all", 0), Act(0, "drop", it="it0")), label="t-drop")


def test_every_boundary_type_round_trips() -> None:
    job = Job((Act(0, "start", 1, "it0"), Act(1, "keygen", 0, offload=True), Act(1, "hold")), sessions=2,
              objects=4, label="x", tick=True, block_s=0.5, token_keys=True, private=True)
    assert Job.from_dict(job.to_dict()) == job
    for runtime in (*GREENLET_RUNTIMES, Runtime("asyncio")):
        assert Runtime.from_dict(runtime.to_dict()) == runtime == Runtime.parse(runtime.id)
    start = Start(Runtime("gevent", "after_import"), "/lib.so", "tok")
    assert Start.from_dict(start.to_dict()) == start
    outcome = Outcome((ActResult(0, "ok", duration_ms=1.5, gap_ms=1.0, ticks=0), ActResult(1, "blocked", 2, "ok:3")),
                      ("ok:3",), "crashed:SIGSEGV", "detail", 1)
    assert Outcome.from_dict(outcome.to_dict()) == outcome


def test_a_runtime_names_a_known_kind_and_a_patch_point_only_for_greenlets() -> None:
    for bad in (("trio", None), ("gevent", None), ("asyncio", "before_import"), ("gevent", "later")):
        with pytest.raises(ValueError):
            Runtime(*bad)


def test_the_model_makes_a_second_holder_wait_until_the_search_is_consumed_or_collected() -> None:
    for job in (WAIT, DROP):
        expected, after = predict(job)
        assert expected[1] == Expect("blocked", 2, "ok:3") and after == ("ok:3",)
    assert predict(WAIT)[0][2] == Expect("ok:2") and predict(DROP)[0][2] == Expect("ok")


def test_the_model_lets_another_sessions_search_proceed() -> None:
    job = Job((Act(0, "start", 0, "it0"), Act(1, "all", 1), Act(0, "rest", it="it0")), sessions=2)
    assert [e.outcome for e in predict(job)[0]] == ["ok", "ok:3", "ok:2"]


def test_a_walk_through_is_judged_act_by_act() -> None:
    seen = Outcome((ActResult(0, "ok"), ActResult(1, "raises:OperationActive"),
                    ActResult(2, "raises:OperationNotInitialized")), ("ok:3",))
    wrong = judge(WAIT, seen)
    assert len(wrong) == 2 and "expected blocked, then ok:3 after act 2, got raises:OperationActive" in wrong[0]
    assert judge(WAIT, Outcome(seen.results[:1], ended="crashed:SIGSEGV"))[0].startswith(
        "the runtime program ended crashed:SIGSEGV after 1 of 3 acts")


@settings(max_examples=200)
@given(st.data())
def test_drawn_schedules_end_with_every_search_consumed_and_no_one_parked(data) -> None:
    """What draw_job hands out is always runnable: no actor gets an act while parked, nobody waits for good."""
    job = draw_job(data)
    expected, after = predict(job)
    assert after == ("ok:3",) * job.sessions
    assert all(e.outcome != "blocked" or e.late is not None for e in expected)


def test_the_regression_examples_are_schedules_the_model_allows() -> None:
    """Each regression example is runnable as drawn schedules are (no one parked for good) and ends free."""
    for acts in EXAMPLES:
        job = closed(list(acts), 2, 3, "x")
        assert job is not None and job.acts == acts and predict(job)[1] == ("ok:3", "ok:3")


def test_the_smallest_failing_schedule_keeps_only_what_the_failure_needs() -> None:
    """Greedy deletion after hypothesis: every act not needed for "actor1's search on s0 while actor0's is live"
    goes, and the schedule is still ended by consuming each live search."""
    noisy = closed([Act(0, "start", 0, "it0"), Act(0, "start", 1, "it1"), Act(1, "all", 1), Act(0, "rest", it="it1"),
                    Act(1, "start", 0, "it2")], 2, 3, "x")
    assert noisy is not None

    def fails(job: Job) -> bool:  # the walk-through: actor 1 reaches s0 while actor 0's search there is live
        live: set[str] = set()
        for act in job.acts:
            live = live | {act.it} if (act.op, act.session) == ("start", 0) and act.actor == 0 else live - {act.it}
            if act.actor == 1 and act.session == 0 and act.op in ("start", "all") and live:
                return True
        return False
    assert [a.line() for a in smaller(noisy, fails).acts] == [
        "actor0: it0 = start(s0)", "actor1: it2 = start(s0)", "actor0: rest(it0)", "actor1: rest(it2)"]


def test_only_what_python_pkcs11_raises_is_an_outcome() -> None:
    """A refusal (or the binding's own error) is an act's outcome; an exception of the program's own code is not —
    it propagates, and the driver reports it as the harness's (RuntimeBroken)."""
    import pkcs11

    from conformance.runtimes.acts import perform

    class Refusing:  # a fake session whose search the module refuses
        def get_objects(self, template):
            raise pkcs11.exceptions.OperationActive()

    class Fixture:
        template: dict = {}
        iterators: dict = {}

        def __init__(self, session) -> None:
            self.sessions = [session]
    assert perform(Fixture(Refusing()), Act(0, "all", 0), None, None) == "raises:OperationActive"
    with pytest.raises(AttributeError):  # object() has no get_objects: the program's own bug, not an outcome
        perform(Fixture(object()), Act(0, "all", 0), None, None)


@pytest.fixture
def program(other_token: Path, softhsm_module: str):
    """A runtime program on the 'other' SoftHSM token, for one runtime."""
    made: list[RuntimeProcess] = []

    def make(runtime: str, module: str = softhsm_module) -> RuntimeProcess:
        made.append(RuntimeProcess(Runtime.parse(runtime), module, "other", PIN))
        return made[-1]
    yield make
    for process in made:
        process.close()


@pytest.mark.parametrize("runtime, second", [
    ("gevent_before_import", "blocked"), ("gevent_after_import", "blocked"),
    ("gevent_after_sessions", "raises:OperationActive"), ("eventlet_before_import", "blocked"),
    ("eventlet_after_import", "raises:OperationActive"), ("eventlet_after_sessions", "raises:OperationActive"),
    ("asyncio", "raises:OperationActive"),
])
def test_the_program_shows_which_runtimes_give_a_session_a_lock_that_excludes_them(program, runtime, second) -> None:
    """Measured on SoftHSM with python-pkcs11 0.10.1 (the declared findings of greenlet.second_search_waits_* and
    asyncio.second_search_waits): the second actor parks where the lock is cooperative and walks through where it
    is a native RLock of the one OS thread."""
    outcome = program(runtime).run(WAIT)
    assert outcome.ended == "ok" and outcome.results[1].outcome == second
    assert (judge(WAIT, outcome, after=runtime != "asyncio") == []) == (second == "blocked")


def test_one_program_runs_job_after_job(program) -> None:
    process = program("gevent_before_import")
    assert [process.run(WAIT).finals() for _ in range(3)] == [("ok", "ok:3", "ok:2")] * 3


def test_a_ticked_keygen_shows_the_hub_held_and_the_threadpool_freeing_it(program) -> None:
    job = Job((Act(0, "keygen", 0), Act(0, "keygen", 0, offload=True)), objects=0, tick=True)
    outcome = program("gevent_before_import").run(job)
    held, offloaded = outcome.results
    assert outcome.finals() == ("ok", "ok") and outcome.offload_threads == 1
    assert held.ticks == 0 and held.gap_ms >= held.duration_ms and offloaded.ticks > 0


@pytest.fixture
def shimmed(tmp_path: Path, softhsm_module: str, monkeypatch: pytest.MonkeyPatch):
    shim = build_shim(tmp_path)
    monkeypatch.setenv("CONFORMANCE_FAULT_MODULE", softhsm_module)
    return lambda faults: (monkeypatch.setenv("CONFORMANCE_FAULTS", faults), str(shim))[1]


def test_a_program_that_dies_is_crashed_with_its_signal_and_keeps_what_came_before(program, shimmed) -> None:
    job = Job((Act(0, "all", 0), Act(0, "random", 0), Act(0, "all", 0)))
    outcome = program("gevent_before_import", shimmed("C_GenerateRandom=segv")).run(job)
    assert outcome.ended == f"crashed:{signal.SIGSEGV.name}" and outcome.finals() == ("ok:3",)


def test_a_program_that_stops_answering_is_hung_and_killed(program, shimmed, monkeypatch) -> None:
    monkeypatch.setattr(launch, "STEP_FLOOR_S", 1.0)
    process = program("eventlet_before_import", shimmed("C_GenerateRandom=hang"))
    outcome = process.run(Job((Act(0, "random", 0),)))
    assert outcome.ended == "hung" and outcome.results == ()
    assert process.run(WAIT).finals() == ("ok", "ok:3", "ok:2")  # the next job gets a new program


def test_a_runtime_that_is_not_installed_is_unavailable_naming_the_extra(program, tmp_path, monkeypatch) -> None:
    (tmp_path / "gevent").mkdir()
    (tmp_path / "gevent" / "__init__.py").write_text("raise ImportError('not here')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(RuntimeNotInstalled, match=r"gevent is not installed: pip install 'pkcs11-conformance\[runtimes\]'"):
        program("gevent_before_import").start()


def test_a_module_the_program_cannot_load_is_said_without_the_pin(program, tmp_path) -> None:
    with pytest.raises(RuntimeUnavailable) as raised:
        program("asyncio", str(tmp_path / "missing.so")).start()
    assert "could not use the module" in str(raised.value) and PIN not in str(raised.value)
