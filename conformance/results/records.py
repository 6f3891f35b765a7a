"""One result per check × vendor: the record and the minimal schedule it may carry (plain data, no pytest)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..engine.schedule import Schedule


@dataclass(frozen=True)
class Reproducer:
    """A failing scenario's minimal schedule: its steps (Step.to_dict), the family and actors it runs with, and
    hypothesis's note. Files written before family/actors were recorded have them as None."""

    schedule: tuple[Any, ...]
    hypothesis: str | None = None
    family: str | None = None
    actors: int | None = None

    @classmethod
    def of(cls, schedule: Schedule, hypothesis: str | None = None) -> Reproducer:
        return cls(tuple(s.to_dict() for s in schedule.steps), hypothesis, schedule.family, schedule.actors)

    def to_schedule(self, family: str | None = None) -> Schedule:
        """The schedule to run or print; `family` where the file did not record one (older results)."""
        steps = Schedule.from_steps(self.family or family or "", list(self.schedule))
        return Schedule(steps.family, self.actors or steps.actors, steps.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"schedule": list(self.schedule), "hypothesis": self.hypothesis, "family": self.family,
                "actors": self.actors}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reproducer:
        actors = data.get("actors")
        return cls(tuple(data.get("schedule") or ()), data.get("hypothesis"), data.get("family"),
                   int(actors) if actors is not None else None)


@dataclass(frozen=True)
class Coverage:
    """How much of a drawn exploration ran: `run` of the `planned` examples (the hypothesis profile's max_examples)
    before a finding, the end, or the time budget (`complete` False: a slow module ran out of budget; no finding
    among those run). The gate says when two runs did not explore the same."""

    run: int
    planned: int
    complete: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"examples_run": self.run, "examples_planned": self.planned, "complete": self.complete}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Coverage:
        return cls(int(data["examples_run"]), int(data["examples_planned"]), bool(data.get("complete", True)))

    def describe(self) -> str:
        return (f"{self.run} of {self.planned} examples" if self.complete else
                f"{self.run} of {self.planned} examples (the rest did not fit the time budget)")


# What the system under test did, as a class, whatever was declared about it (xfailed is a failure; xpassed a pass).
BEHAVIOUR_CLASSES = ("passed", "failed", "crashed", "hung", "error", "skipped")
# What varies from run to run in a failure's text: handles, counts, durations, step numbers, thread ids, and the
# run's tag in the labels of the objects it made (hex words with a digit).
_VARIABLE = re.compile(r"0x[0-9a-fA-F]+|(?<![0-9A-Za-z])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]+(?![0-9A-Za-z])|\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Behaviour:
    """A result's behaviour signature, independent of declarations: the class of what happened and, for a failure,
    its kind (the deviating step's expected/got, the exception class and message — numbers, which vary from run to
    run as handles and counts do, made `#`). With the record's `observed` value, it is what the gate compares to
    tell a behaviour change from a change in what was declared."""

    kind: str  # one of BEHAVIOUR_CLASSES
    detail: str = ""

    @classmethod
    def of_failure(cls, kind: str, message: str) -> Behaviour:
        first = next((line.strip() for line in message.strip().splitlines() if line.strip()), "")
        return cls(kind, _VARIABLE.sub("#", " ".join(first.split()))[:300])

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.kind, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Behaviour:
        return cls(str(data["class"]), str(data.get("detail", "")))


@dataclass(frozen=True)
class Record:
    check: str
    vendor: str
    layer: str
    outcome: str
    observed: Any = None
    reason: str = ""
    spec: str = ""
    duration_s: float = 0.0
    reproducer: Reproducer | None = None
    trace: str | None = None
    # Extension of the contract: the declared deviations that applied to this check × vendor (origin, reason,
    # issue, declared outcome / observed value), so the gate can tell a declared change from a regression.
    deviations: tuple[Mapping[str, Any], ...] = ()
    coverage: Coverage | None = None  # extension: how much of a drawn exploration ran (None: not an exploration)
    behaviour: Behaviour | None = None  # extension: what happened, whatever was declared (None: older files)
    nodeid: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "vendor": self.vendor,
            "layer": self.layer,
            "outcome": self.outcome,
            "observed": self.observed,
            "reason": self.reason,
            "spec": self.spec,
            "duration_s": round(self.duration_s, 6),
            "reproducer": self.reproducer.to_dict() if self.reproducer else None,
            "trace": self.trace,
            "deviations": [dict(d) for d in self.deviations],
            **({"coverage": self.coverage.to_dict()} if self.coverage else {}),
            **({"behaviour": self.behaviour.to_dict()} if self.behaviour else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        rep = data.get("reproducer")
        return cls(
            check=data["check"],
            vendor=data["vendor"],
            layer=data["layer"],
            outcome=data["outcome"],
            observed=data.get("observed"),
            reason=data.get("reason", ""),
            spec=data.get("spec", ""),
            duration_s=float(data.get("duration_s", 0.0)),
            reproducer=Reproducer.from_dict(rep) if rep else None,
            trace=data.get("trace"),
            deviations=tuple(dict(d) for d in data.get("deviations", ())),
            coverage=Coverage.from_dict(data["coverage"]) if data.get("coverage") else None,
            behaviour=Behaviour.from_dict(data["behaviour"]) if data.get("behaviour") else None,
        )
