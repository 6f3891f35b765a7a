"""Judging a trace against the model: the first step whose outcome the model does not allow is the finding."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from ..outcomes import MODULE
from .model import BLOCKED, Expectation, Model
from .params import OK
from .schedule import Schedule, Step, StepResult, Trace


@dataclass(frozen=True)
class Mismatch:
    index: int
    expected: tuple[str, ...]
    actual: str
    layer: str
    rule: str

    def describe(self, schedule: Schedule) -> str:
        step = schedule.steps[self.index] if 0 <= self.index < len(schedule.steps) else None
        where = f"step {self.index} ({step.program_line()})" if step else "end of example"
        return f"{where}: expected {' or '.join(self.expected)}, got {self.actual}  [{self.layer}: {self.rule}]"


@dataclass(frozen=True)
class Verdict:
    mismatches: tuple[Mismatch, ...] = ()
    status: str = "passed"  # passed | failed | crashed | hung
    observed: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status != "passed"

    @property
    def layer(self) -> str:
        return self.mismatches[0].layer if self.mismatches else "module"


RELEASE_RULE = "python-pkcs11 docs, Concurrency: the lock is released when the iterator is consumed or collected"


def _resumed_in_time(result: StepResult, waiter: int, step_index: int, step: Step) -> bool:
    """The waiter returned after the step that released it. Where the plan foresaw the release (the step's
    `unblocks`), the executor waited for it and the step must match exactly; where the plan did not (it assumed
    another allowed outcome of an implementation-defined point), the executor raced on, so any later step will do."""
    if result.completed_after is None:
        return False
    if waiter in step.unblocks:
        return result.completed_after == step_index
    return result.completed_after >= step_index


def _initial(result: StepResult) -> str:
    """What the step did when it was issued: blocked (even if it completed later), or its outcome."""
    if result.status == "blocked" or result.completed_after is not None:
        return BLOCKED
    return result.outcome()


def judge(schedule: Schedule, trace: Trace, model: Model) -> Verdict:
    """Run a fresh model along the trace (advanced with actual outcomes) and report where they part."""
    results = {r.index: r for r in trace.results}
    mismatches: list[Mismatch] = []
    observed: dict[str, set[str]] = {}
    resumed_at: dict[int, int] = {}
    died: str | None = None

    def check(index: int, exp: Expectation, actual: str) -> None:
        if exp.point is not None:
            # What the module allowed (ok, or the refusal), not what the call returned: "ok:item" and "ok" are one
            # answer (a search starting at get_objects() or at its first next() returns differently).
            observed.setdefault(exp.point, set()).add(OK if actual.startswith(OK) else actual)
        if exp.allowed is not None and actual not in exp.allowed:
            mismatches.append(Mismatch(index, tuple(sorted(exp.allowed)), actual, exp.layer, exp.rule))

    for i, step in enumerate(schedule.steps):
        result = results.get(i, StepResult(i, "not_run"))
        # A call that never returned, waiting above the module where the model (advanced with what really
        # happened) has it wait on a lock: blocked — whether it was due to resume is judged where the model
        # releases that lock (a lock held for good, after an allowed outcome the plan did not assume, never is).
        waits_above = result.status == "hung" and result.inside is None and model.expect(step.actor, step).blocks
        if result.status in ("crashed", "hung") and not waits_above:  # a step's status (schedule.STATUSES)
            status = result.status
            cause = trace.crashed or (result.evidence or "no return within the step timeout" if status == "hung" else "")
            # Blamed on the layer that step exercises (a provider call that dies is the provider's finding) —
            # unless the tap saw the call held inside the module: then the module holds it, whatever called it.
            layer = MODULE if result.inside is not None else model.expect(step.actor, step).layer
            mismatches.append(Mismatch(i, ("a return",), f"{status} ({cause})" if cause else status,
                                       "module" if layer == "harness" else layer, "the call must return"))
            return Verdict(tuple(mismatches), status, _freeze(observed))
        if result.status == "not_run":
            if result.error == "ActorBusy":  # the executor found the actor still inside an earlier call
                mismatches.append(Mismatch(i, ("the actor free",), "actor still inside an earlier call", "binding", RELEASE_RULE))
            break
        exp = model.expect(step.actor, step)
        actual = BLOCKED if waits_above else _initial(result)
        check(i, exp, actual)
        queue = deque(model.advance(i, step.actor, step, actual))
        while queue:
            j, actor, waiting, exp_j = queue.popleft()
            resumed_at[j] = i
            r_j = results.get(j, StepResult(j, "not_run"))
            if r_j.status in ("blocked", "hung") or not _resumed_in_time(r_j, j, i, step):
                actual = ("still blocked at the end" if r_j.status == "blocked" else "never returned (hung)"
                          if r_j.status == "hung" else f"resumed after step {r_j.completed_after}")
                mismatches.append(Mismatch(j, (f"resumes after step {i}",), actual, "binding", RELEASE_RULE))
                if r_j.status == "hung":
                    died = "hung"  # the call never came back: a hang, whichever step should have released it
                continue
            final = r_j.outcome()
            check(j, exp_j, final)
            queue.extend(model.advance(j, actor, waiting, final))
        if mismatches:
            break
    if not mismatches:
        for r in trace.results:
            if r.completed_after is not None and r.index not in resumed_at:
                mismatches.append(Mismatch(r.index, ("stays blocked",), f"resumed after step {r.completed_after}",
                                           "binding", "python-pkcs11 docs, Concurrency: the session lock serialises threads"))
                break
    if not mismatches and trace.final:
        expected = model.final_expectations()
        actual = trace.final
        if actual.get("alive_refs") is not None and list(actual["alive_refs"]) != expected["alive_refs"]:
            mismatches.append(Mismatch(len(schedule.steps), (f"open sessions {expected['alive_refs']}",),
                                       f"open sessions {list(actual['alive_refs'])}", "module", "v3.0 §5.6.2 C_CloseSession"))
        elif actual.get("leaked") is not None and actual["leaked"] != expected["leaked"]:
            mismatches.append(Mismatch(len(schedule.steps), (f"{expected['leaked']} unaccounted session(s)",),
                                       f"{actual['leaked']} unaccounted session(s) open", "binding",
                                       "every session a call opened is closed or handed to the caller"))
        elif "provider_open" in actual and actual["provider_open"] != expected["provider_open"]:
            mismatches.append(Mismatch(len(schedule.steps), (f"{expected['provider_open']} provider session(s) open",),
                                       f"{actual['provider_open']} open", "provider",
                                       "python-pkcs11 docs, Reenterant Sessions: one session while held, none after the last release"))
    return Verdict(tuple(mismatches), (died or "failed") if mismatches else "passed", _freeze(observed))


def _freeze(observed: dict[str, set[str]]) -> dict[str, tuple[str, ...]]:
    return {k: tuple(sorted(v)) for k, v in sorted(observed.items())}


def describe(schedule: Schedule, trace: Trace, verdict: Verdict) -> str:
    lines = [f"{verdict.status}: {verdict.mismatches[0].describe(schedule)}" if verdict.mismatches else verdict.status,
             "", "minimal schedule:", schedule.program(), "", "trace:"]
    for r in trace.results:
        extra = f" (returned after step {r.completed_after})" if r.completed_after is not None else ""
        swallowed = f"  swallowed: {', '.join(r.ignored)}" if r.ignored else ""
        lines.append(f"{r.index:>3}  {r.outcome()}{extra}{swallowed}")
    if trace.stacks:
        lines += ["", "thread stacks at the hang:", trace.stacks]
    return "\n".join(lines)

