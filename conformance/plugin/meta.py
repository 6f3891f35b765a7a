"""What a check carries to its record: its identity (from @pytest.mark.check) and what the run learned about it.

One CheckMeta per check item, in the item's stash; fixtures and hooks replace it with what they learn (an observed
value, a minimal schedule, a crash). Every report of the item carries it as `report.conformance` (plain data:
reports travel from pytest-xdist workers to the controller, where the record is built).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Mapping

import pytest

from ..pins import redact_data
from ..results.records import Behaviour, Coverage, Reproducer

REPORT_ATTRIBUTE = "conformance"  # TestReport attribute (pytest: reports may carry arbitrary extra attributes)


@dataclass(frozen=True)
class CheckMeta:
    check: str  # the stable id the gate keys on
    vendor: str
    layer: str  # the layer judged: the marker's, or the one a failing schedule blames, or "harness"
    spec: str
    observed: Any = None  # what a characterising check observed (JSON, PIN redacted)
    note: str = ""  # the reason shown for a passing check (examples explored, stress rounds)
    died: str | None = None  # crashed | hung: the module's process died or stalled during the check
    integrity: str = ""  # after a crash or hang: whether the token is still present and intact
    reproducer: Reproducer | None = None  # a failing scenario's minimal schedule
    trace: str | None = None  # the call-trace slice, relative to the results JSON
    deviations: tuple[Mapping[str, Any], ...] = ()  # the declared deviations that applied (origin + declaration)
    coverage: Coverage | None = None  # a drawn exploration: how many examples ran of how many planned
    behaviour: Behaviour | None = None  # what happened, whatever was declared (hooks.py, from the phase reports)

    @property
    def declared_failure(self) -> bool:
        """A declared deviation says how this check fails here (an outcome, not only model parameters): such a
        known finding keeps its declared layer."""
        return any("outcome" in d for d in self.deviations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check, "vendor": self.vendor, "layer": self.layer, "spec": self.spec,
            "observed": self.observed, "note": self.note, "died": self.died, "integrity": self.integrity,
            "reproducer": self.reproducer.to_dict() if self.reproducer else None, "trace": self.trace,
            "deviations": [dict(d) for d in self.deviations],
            "coverage": self.coverage.to_dict() if self.coverage else None,
            "behaviour": self.behaviour.to_dict() if self.behaviour else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckMeta:
        rep = data.get("reproducer")
        return cls(
            check=data["check"], vendor=data["vendor"], layer=data["layer"], spec=data.get("spec", ""),
            observed=data.get("observed"), note=data.get("note", ""), died=data.get("died"),
            integrity=data.get("integrity", ""), reproducer=Reproducer.from_dict(rep) if rep else None,
            trace=data.get("trace"), deviations=tuple(dict(d) for d in data.get("deviations", ())),
            coverage=Coverage.from_dict(data["coverage"]) if data.get("coverage") else None,
            behaviour=Behaviour.from_dict(data["behaviour"]) if data.get("behaviour") else None,
        )


META = pytest.StashKey[CheckMeta]()


def meta_of(item: pytest.Item) -> CheckMeta | None:
    """The item's CheckMeta (None for tests that are not conformance checks)."""
    return item.stash.get(META, None)


def update(item: pytest.Item, **changes: Any) -> CheckMeta:
    """Record what was learned about the check (fields of CheckMeta)."""
    meta = item.stash[META]
    item.stash[META] = replace(meta, **changes)
    return item.stash[META]


def redacted(value: Any, secrets: list[str]) -> Any:
    """`value` through JSON with every PIN removed: json.dumps refuses what the results file could not hold, at
    the check that made it; the PIN is redacted at the source (observed values also reach pytest-html)."""
    return redact_data(json.loads(json.dumps(value)), secrets)


def carried_by(report: pytest.TestReport) -> CheckMeta | None:
    """The CheckMeta a report carries (None for reports of other tests)."""
    data = getattr(report, REPORT_ATTRIBUTE, None)
    return CheckMeta.from_dict(data) if isinstance(data, Mapping) else None


def attach(report: pytest.TestReport, meta: CheckMeta) -> None:
    setattr(report, REPORT_ATTRIBUTE, meta.to_dict())
