"""The judge on hand-made traces: passes, first mismatches, blocks and resumptions, hangs, crashes, final invariants."""

from __future__ import annotations

from typing import Any


from conformance.engine.families import FAMILIES
from conformance.engine.judge import Mismatch, Verdict, describe, judge
from conformance.engine.params import ModelParams
from conformance.engine.schedule import Schedule, Step, StepResult, Trace


def result(index: int, outcome: str, completed_after: int | None = None) -> StepResult:
    """The StepResult whose outcome() is `outcome` ('ok', 'ok:value', 'raises:Name' or a bare status)."""
    if outcome.startswith("raises:"):
        return StepResult(index, "raised", error=outcome.split(":", 1)[1], completed_after=completed_after)
    if outcome.startswith("ok:"):
        return StepResult(index, "ok", value=outcome.split(":", 1)[1], completed_after=completed_after)
    return StepResult(index, outcome, completed_after=completed_after)


def trace_of(*outcomes: str | StepResult, **kwargs: Any) -> Trace:
    return Trace(tuple(o if isinstance(o, StepResult) else result(i, o) for i, o in enumerate(outcomes)), **kwargs)


def run(schedule: Schedule, trace: Trace, params: ModelParams = ModelParams()) -> Verdict:
    return judge(schedule, trace, FAMILIES[schedule.family].new_model(params))


OPEN = Step(0, "open", {"ref": "s0", "login": False})
SEARCH = Step(0, "search", {"ref": "it0", "session": "s0", "batch": 10})
NEXT = Step(0, "next", {"iterator": "it0"})
# actor 1's find_all waits for actor 0's search iterator; actor 0's consume releases the lock.
LOCKED = Schedule("operations", 2, (
    OPEN, SEARCH, NEXT,
    Step(1, "find_all", {"session": "s0"}, expect_block=True),
    Step(0, "consume", {"iterator": "it0"}, unblocks=(3,)),
))
LOCKED_OK = ("ok", "ok", "ok:item", result(3, "ok:4", completed_after=4), "ok:3")
# actor 1's digest waits for actor 0's encrypt generator, which releases the lock with its 4th item (step 6).
ENCRYPTING = Schedule("operations", 2, (
    OPEN, Step(0, "encrypt_gen", {"ref": "it0", "session": "s0"}), NEXT,
    Step(1, "digest", {"session": "s0"}, expect_block=True),
    NEXT, NEXT, Step(0, "next", {"iterator": "it0"}, unblocks=(3,)),
))
LOGINS = Schedule("sessions", 2, (Step(0, "open", {"ref": "s0", "login": True}),
                                  Step(1, "open", {"ref": "s1", "login": True})))
PROVIDER = Schedule("provider", 1, (Step(0, "acquire", {}), Step(0, "release", {})))


# --- passing traces --------------------------------------------------------------------------------------------


def test_a_trace_the_model_allows_passes() -> None:
    """A trace matching every prediction (the block and its resumption included) passes with no mismatches."""
    verdict = run(LOCKED, trace_of(*LOCKED_OK, final={"alive_refs": ["s0"], "leaked": 0}))
    assert verdict == Verdict((), "passed", {})
    assert not verdict.failed


def test_characterised_points_are_collected_as_observed() -> None:
    """Outcomes at implementation-defined points are recorded in Verdict.observed, under the point's name."""
    verdict = run(LOGINS, trace_of("ok", "raises:UserAlreadyLoggedIn"))
    assert verdict.status == "passed"
    assert verdict.observed == {"second_login": ("raises:UserAlreadyLoggedIn",)}


def test_the_model_follows_the_actual_choice() -> None:
    """After an allowed refusal the refused ref does not exist, so steps on it are not judged (ANY)."""
    schedule = Schedule("sessions", 2, (*LOGINS.steps, Step(1, "state", {"session": "s1"})))
    assert run(schedule, trace_of("ok", "raises:UserAlreadyLoggedIn", "raises:Whatever")).status == "passed"


def test_an_accepted_second_login_keeps_the_session_in_final_checks() -> None:
    """After an accepted second login, s1 is expected open at the end."""
    verdict = run(LOGINS, trace_of("ok", "ok", final={"alive_refs": ["s0", "s1"], "leaked": 0}))
    assert verdict.status == "passed" and verdict.observed == {"second_login": ("ok",)}


def test_unknown_leak_count_is_not_judged() -> None:
    """final leaked=None means the module gives no way to tell: no mismatch."""
    assert run(LOGINS, trace_of("ok", "ok", final={"alive_refs": ["s0", "s1"], "leaked": None})).status == "passed"


# --- mismatches ------------------------------------------------------------------------------------------------


def test_a_wrong_outcome_is_a_mismatch_at_its_step() -> None:
    """An outcome the model does not allow gives a Mismatch at that index, carrying the model's layer and rule."""
    second = Step(0, "search", {"ref": "it1", "session": "s0", "batch": 10})
    schedule = Schedule("operations", 1, (OPEN, SEARCH, NEXT, second, Step(0, "next", {"iterator": "it1"})))
    verdict = run(schedule, trace_of("ok", "ok", "ok:item", "ok", "ok:item"))
    assert verdict.status == "failed" and verdict.failed
    [mismatch] = verdict.mismatches
    assert (mismatch.index, mismatch.expected, mismatch.actual) == (4, ("raises:OperationActive",), "ok:item")
    assert mismatch.layer == "module" and "§5.7.7" in mismatch.rule
    assert verdict.layer == "module"


def test_the_first_mismatch_is_the_finding() -> None:
    """Judging stops at the first step whose outcome is not allowed; later wrong steps are not reported."""
    schedule = Schedule("operations", 1, (OPEN, Step(0, "digest", {"session": "s0"}),
                                          Step(0, "random", {"session": "s0"})))
    verdict = run(schedule, trace_of("ok", "raises:OperationActive", "raises:Nope"))
    assert [m.index for m in verdict.mismatches] == [1]


def test_an_unexpected_block_is_a_mismatch() -> None:
    """A call the model expects to return at once but that blocked is a finding."""
    verdict = run(LOCKED, trace_of("ok", "ok", "blocked"))
    [mismatch] = verdict.mismatches
    assert (mismatch.index, mismatch.expected, mismatch.actual) == (2, ("ok:item",), "blocked")


def test_a_blocked_step_still_blocked_after_its_release_is_a_mismatch() -> None:
    """A step the model resumes after step i but that never returned: 'still blocked at the end' (binding)."""
    verdict = run(LOCKED, trace_of("ok", "ok", "ok:item", "blocked", "ok:3"))
    [mismatch] = verdict.mismatches
    assert (mismatch.index, mismatch.expected) == (3, ("resumes after step 4",))
    assert mismatch.actual == "still blocked at the end"
    assert mismatch.layer == "binding" and "Concurrency" in mismatch.rule


def test_a_step_blocked_to_the_end_as_the_model_expects_passes() -> None:
    """A waiter nothing releases, recorded still blocked, is what the model predicts: no mismatch."""
    schedule = Schedule("operations", 2, LOCKED.steps[:4])
    assert run(schedule, trace_of("ok", "ok", "ok:item", "blocked")).status == "passed"


def test_a_step_that_returns_while_the_lock_is_held_is_a_mismatch() -> None:
    """A step recorded as returning (completed_after set) that the model never resumes: 'stays blocked'."""
    schedule = Schedule("operations", 2, LOCKED.steps[:4])
    verdict = run(schedule, trace_of("ok", "ok", "ok:item", result(3, "ok:4", completed_after=3)))
    [mismatch] = verdict.mismatches
    assert (mismatch.index, mismatch.expected, mismatch.actual) == (3, ("stays blocked",), "resumed after step 3")


def test_a_waiter_released_before_the_model_releases_it_is_a_mismatch() -> None:
    """A waiter the model resumes after step 6 (4th encrypt item) but that returned after step 4 is a finding."""
    trace = trace_of("ok", "ok", "ok:item", result(3, "ok", completed_after=4), "ok:item", "ok:item", "ok:item")
    verdict = run(ENCRYPTING, trace)
    assert [m.index for m in verdict.mismatches] == [3]


def test_a_waiter_released_when_the_model_releases_it_passes() -> None:
    """The same encrypt schedule passes when the waiter returned after step 6 (ENDS_WITH_LAST_ITEM)."""
    trace = trace_of("ok", "ok", "ok:item", result(3, "ok", completed_after=6), "ok:item", "ok:item", "ok:item")
    assert run(ENCRYPTING, trace).status == "passed"


def test_a_wrong_outcome_of_a_resumed_waiter_is_a_mismatch() -> None:
    """A resumed waiter's final outcome is judged against its expectation at resumption."""
    verdict = run(LOCKED, trace_of("ok", "ok", "ok:item", result(3, "ok:2", completed_after=4), "ok:3"))
    [mismatch] = verdict.mismatches
    assert (mismatch.index, mismatch.expected, mismatch.actual) == (3, ("ok:4",), "ok:2")


# --- hangs and crashes -----------------------------------------------------------------------------------------


def test_a_hung_step_makes_the_verdict_hung() -> None:
    """A 'hung' StepResult gives Verdict.status hung and a mismatch 'the call must return' at that step."""
    verdict = run(LOCKED, trace_of("ok", "ok", "hung", "not_run", "not_run", stacks="Thread 0x1 ..."))
    assert verdict.status == "hung" and verdict.failed
    [mismatch] = verdict.mismatches
    assert (mismatch.index, mismatch.rule) == (2, "the call must return")
    assert mismatch.actual == "hung (no return within the step timeout)"


def test_a_crashed_step_makes_the_verdict_crashed() -> None:
    """A 'crashed' StepResult gives Verdict.status crashed, naming the signal from Trace.crashed."""
    verdict = run(LOCKED, trace_of("ok", "crashed", "not_run", "not_run", "not_run", crashed="SIGSEGV"))
    assert verdict.status == "crashed"
    assert [(m.index, m.actual) for m in verdict.mismatches] == [(1, "crashed (SIGSEGV)")]


def test_a_hang_after_a_mismatch_free_prefix_keeps_observed_points() -> None:
    """Points observed before a hang are still reported."""
    schedule = Schedule("sessions", 2, (*LOGINS.steps, Step(0, "close", {"session": "s0"})))
    verdict = run(schedule, trace_of("ok", "ok", "hung"))
    assert verdict.status == "hung" and verdict.observed == {"second_login": ("ok",)}


# --- final invariants ------------------------------------------------------------------------------------------


def test_final_alive_refs_mismatch() -> None:
    """A session the model expects open but the module has closed is a mismatch at the end (v3.0 §5.6.2)."""
    verdict = run(LOCKED, trace_of(*LOCKED_OK, final={"alive_refs": [], "leaked": 0}))
    [mismatch] = verdict.mismatches
    assert mismatch.index == len(LOCKED.steps) and "§5.6.2" in mismatch.rule
    assert (mismatch.expected, mismatch.actual) == (("open sessions ['s0']",), "open sessions []")


def test_final_leaked_mismatch() -> None:
    """A session nobody accounts for (a failed login leaving it open, undeclared) is a binding mismatch."""
    verdict = run(LOGINS, trace_of("ok", "raises:UserAlreadyLoggedIn", final={"alive_refs": ["s0"], "leaked": 1}))
    [mismatch] = verdict.mismatches
    assert (mismatch.index, mismatch.layer) == (2, "binding")
    assert mismatch.actual == "1 unaccounted session(s) open"


def test_final_leaked_passes_when_declared() -> None:
    """With failed_login_leaks_session declared, the same leaked session is expected."""
    trace = trace_of("ok", "raises:UserAlreadyLoggedIn", final={"alive_refs": ["s0"], "leaked": 1})
    assert run(LOGINS, trace, ModelParams(failed_login_leaks_session=True)).status == "passed"


def test_final_provider_open_mismatch() -> None:
    """A provider session still open after the last release is a provider-layer mismatch."""
    verdict = run(PROVIDER, trace_of("ok:p0", "ok:closed", final={"alive_refs": [], "leaked": 0, "provider_open": 1}))
    [mismatch] = verdict.mismatches
    assert (mismatch.index, mismatch.layer, mismatch.actual) == (2, "provider", "1 open")
    assert verdict.layer == "provider"


def test_final_provider_open_passes_when_closed() -> None:
    """No provider session open after the last release passes."""
    trace = trace_of("ok:p0", "ok:closed", final={"alive_refs": [], "leaked": 0, "provider_open": 0})
    assert run(PROVIDER, trace).status == "passed"


def test_final_invariants_are_not_checked_after_a_step_mismatch() -> None:
    """A step mismatch is the finding; end-of-example invariants are then not added."""
    trace = trace_of("ok:p1", "ok:closed", final={"alive_refs": ["zz"], "leaked": 9, "provider_open": 1})
    verdict = run(PROVIDER, trace)
    assert [m.index for m in verdict.mismatches] == [0]


# --- describe --------------------------------------------------------------------------------------------------


def test_describe_shows_the_finding_the_program_and_the_trace() -> None:
    """describe(): the first mismatch, 'minimal schedule:' with the program, and each step's outcome."""
    trace = trace_of("ok", "ok", "ok:item", result(3, "ok:2", completed_after=4), "ok:3")
    verdict = run(LOCKED, trace)
    text = describe(LOCKED, trace, verdict)
    assert text.startswith("failed: step 3 (actor1: find_all(s0)   # expected to block): expected ok:4, got ok:2")
    assert "minimal schedule:\n" + LOCKED.program() in text
    assert "  3  ok:2 (returned after step 4)" in text


def test_describe_a_hang_includes_the_stacks() -> None:
    """describe() of a hang ends with every thread's stack."""
    trace = trace_of("ok", "hung", stacks="Thread 0x7f (most recent call first)")
    text = describe(LOCKED, trace, run(LOCKED, trace))
    assert text.startswith("hung: step 1")
    assert text.endswith("thread stacks at the hang:\nThread 0x7f (most recent call first)")


def test_describe_a_pass_is_its_status_and_program() -> None:
    """describe() of a passing verdict starts with 'passed' and still lists the program."""
    trace = trace_of(*LOCKED_OK)
    text = describe(LOCKED, trace, run(LOCKED, trace))
    assert text.splitlines()[0] == "passed" and LOCKED.program() in text


def test_mismatch_past_the_last_step_describes_the_end_of_example() -> None:
    """Mismatch.describe for a final-invariant mismatch says 'end of example'."""
    mismatch = Mismatch(2, ("0 open",), "1 open", "provider", "rule")
    assert mismatch.describe(PROVIDER) == "end of example: expected 0 open, got 1 open  [provider: rule]"

