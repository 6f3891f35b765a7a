"""Schedules and traces: plain, frozen, serialisable data — all hypothesis ever sees of a scenario.

A Schedule is what to do (actor, operation, arguments, and the executor's timing hints drawn from the model);
a Trace is what happened (outcome, exception class, value summary, timing), step by step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# What a step did. "blocked": still inside its call when the executor moved on (expected, or a finding);
# "hung": did not return within the step timeout; "crashed": the executor process died during it;
# "not_run": never started because an earlier step hung or crashed.
STATUSES = ("ok", "raised", "blocked", "hung", "crashed", "not_run")


@dataclass(frozen=True)
class Step:
    """One PKCS#11-level action by one actor (a pinned thread). Arguments name refs made by earlier steps."""

    actor: int
    op: str
    args: Mapping[str, Any] = field(default_factory=dict)
    # Timing hints from the model at generation time: wait only a block window for this call, and after it
    # returns wait for these earlier blocked steps to complete.
    expect_block: bool = False
    unblocks: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"actor": self.actor, "op": self.op, "args": dict(self.args)}
        if self.expect_block:
            out["expect_block"] = True
        if self.unblocks:
            out["unblocks"] = list(self.unblocks)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        return cls(
            actor=int(data["actor"]),
            op=str(data["op"]),
            args=dict(data.get("args", {})),
            expect_block=bool(data.get("expect_block", False)),
            unblocks=tuple(int(i) for i in data.get("unblocks", ())),
        )

    def program_line(self) -> str:
        """The step as one line of a readable program: `actor1: it0 = search(s0, batch=2)`."""
        args = dict(self.args)
        result = args.pop("ref", None)
        target = [str(args.pop(k)) for k in ("session", "iterator") if k in args]
        rest = [f"{k}={v!r}" for k, v in sorted(args.items())]
        call = f"{self.op}({', '.join(target + rest)})"
        lhs = f"{result} = " if result else ""
        note = "   # expected to block" if self.expect_block else ""
        return f"actor{self.actor}: {lhs}{call}{note}"


@dataclass(frozen=True)
class Schedule:
    family: str
    actors: int
    steps: tuple[Step, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "actors": self.actors, "steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        return cls(str(data["family"]), int(data["actors"]), tuple(Step.from_dict(s) for s in data["steps"]))

    @classmethod
    def from_steps(cls, family: str, steps: list[Mapping[str, Any]]) -> Schedule:
        """A schedule from a results file's reproducer (a list of steps); actors = highest actor + 1."""
        parsed = tuple(Step.from_dict(s) for s in steps)
        return cls(family, max((s.actor for s in parsed), default=0) + 1, parsed)

    def program(self) -> str:
        return "\n".join(f"{i:>3}  {s.program_line()}" for i, s in enumerate(self.steps))


@dataclass(frozen=True)
class StepResult:
    index: int
    status: str
    error: str | None = None  # exception class name when status == "raised"
    value: Any = None  # small JSON summary of the return value
    duration_us: float = 0.0
    completed_after: int | None = None  # for a blocked step: the step after which it returned
    ignored: tuple[str, ...] = ()  # exceptions Python swallowed during the step ("Exception ignored in __del__")
    # How "blocked" or "hung" was decided: the tap's evidence ("tap: ...") or, without a tap, timing ("timing: ...").
    evidence: str | None = None
    inside: str | None = None  # hung: the PKCS#11 function the actor was inside (the module holds the call)

    def outcome(self) -> str:
        """The comparable outcome: 'ok', 'ok:value', 'raises:Name', or the status."""
        if self.status == "raised":
            return f"raises:{self.error}"
        if self.status == "ok" and self.value is not None:
            return f"ok:{self.value}"
        return self.status

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": self.status, "duration_us": round(self.duration_us, 1)}
        if self.error is not None:
            out["error"] = self.error
        if self.value is not None:
            out["value"] = self.value
        if self.completed_after is not None:
            out["completed_after"] = self.completed_after
        if self.ignored:
            out["ignored"] = list(self.ignored)
        if self.evidence is not None:
            out["evidence"] = self.evidence
        if self.inside is not None:
            out["inside"] = self.inside
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepResult:
        return cls(
            index=int(data["index"]),
            status=str(data["status"]),
            error=data.get("error"),
            value=data.get("value"),
            duration_us=float(data.get("duration_us", 0.0)),
            completed_after=data.get("completed_after"),
            ignored=tuple(data.get("ignored", ())),
            evidence=data.get("evidence"),
            inside=data.get("inside"),
        )


@dataclass(frozen=True)
class Trace:
    results: tuple[StepResult, ...]
    crashed: str | None = None  # signal name when the executor died
    stacks: str | None = None  # every thread's stack when a step hung
    invariant_failures: tuple[str, ...] = ()
    reset_us: float = 0.0
    run_us: float = 0.0  # from the first step's hand-off to the last step's return, inside the executor child
    # End-of-example ground truth: alive_refs (session refs still open), leaked (live sessions no step accounts
    # for; None when the module gives no way to tell), open_calls (times the provider's opener ran).
    final: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"results": [r.to_dict() for r in self.results], "reset_us": round(self.reset_us, 1),
                               "run_us": round(self.run_us, 1)}
        if self.crashed:
            out["crashed"] = self.crashed
        if self.stacks:
            out["stacks"] = self.stacks
        if self.invariant_failures:
            out["invariant_failures"] = list(self.invariant_failures)
        if self.final:
            out["final"] = dict(self.final)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trace:
        return cls(
            results=tuple(StepResult.from_dict(r) for r in data["results"]),
            crashed=data.get("crashed"),
            stacks=data.get("stacks"),
            invariant_failures=tuple(data.get("invariant_failures", ())),
            reset_us=float(data.get("reset_us", 0.0)),
            run_us=float(data.get("run_us", 0.0)),
            final=dict(data.get("final", {})),
        )

    def outcomes(self) -> tuple[str, ...]:
        return tuple(r.outcome() for r in self.results)
