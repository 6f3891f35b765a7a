"""What the gate says, as data: each side of a comparison (Side, with its behaviour signature), each change, the
sources and the report (GATE_SCHEMA), and when two sides behave the same. compare.py decides the classes."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..results.document import Results
from ..results.records import Behaviour, Record

GATE_SCHEMA = "pkcs11-conformance/gate/1"

# Classes in report order: the regression-capable ones first.
CLASSES = ("regressed", "stale_declaration", "lost_coverage", "removed", "vendor_missing", "fixed",
           "changed_but_declared", "new", "still_failing", "unchanged")
ALL_CHECKS = "*"  # the check id of a vendor_missing entry


def vendors_of(results: Results) -> set[str]:
    """Every vendor a file names: in its header and in its records."""
    return set(results.vendors) | {r.vendor for r in results.results}


@dataclass(frozen=True)
class Side:
    """One file's result for a check × vendor, as far as the gate looks at it."""

    outcome: str
    observed: Any = None
    reason: str = ""
    deviations: tuple[Mapping[str, Any], ...] = ()
    behaviour: Behaviour | None = None  # None: a file written before behaviour signatures were recorded
    explored: bool = False  # a drawn exploration: its observed value is what the examples happened to reach

    @classmethod
    def of(cls, record: Record) -> Side:
        return cls(record.outcome, canon(record.observed), record.reason, record.deviations, record.behaviour,
                   record.coverage is not None)

    def signature(self, by_outcome: bool = False) -> tuple[Any, ...]:
        """What the system under test did, independent of declarations: the behaviour and, for a scripted check,
        the observed value (an exploration's is compared point by point: observed_alike). `by_outcome`, for a file
        written before signatures were recorded (and the side compared with it): the outcome, declarations
        included, and the reason's first line stand in."""
        what = (("outcome", self.outcome, first_line(self.reason)) if by_outcome or self.behaviour is None else
                (self.behaviour.kind, self.behaviour.detail))
        return what if self.explored else (*what, json.dumps(self.observed, sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "observed": self.observed, "reason": self.reason,
                "deviations": [dict(d) for d in self.deviations],
                "behaviour": self.behaviour.to_dict() if self.behaviour else None}


@dataclass(frozen=True)
class Change:
    """The classification of one check × vendor (or, for vendor_missing, of one whole vendor)."""

    kind: str
    check: str
    vendor: str  # the candidate's vendor name
    baseline_vendor: str  # the baseline's name for it (differs when comparing vendors)
    regression: bool
    baseline: Side | None
    candidate: Side | None
    note: str = ""  # one line: why, or what to do
    # False when the two runs did not explore the same: a time budget cut one short, or they ran different numbers
    # of examples (see `note`); the class is then about what was explored, and the gate says so.
    comparable: bool = True

    @property
    def behaviour(self) -> str:
        """**Contract**: "same" when both runs show the same behaviour (same_behaviour), whatever either declared;
        "changed" otherwise (also when one side has no result)."""
        same = self.baseline is not None and self.candidate is not None and same_behaviour(self.baseline, self.candidate)
        return "same" if same else "changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.kind,
            "behaviour": self.behaviour,
            "comparable": self.comparable,
            "check": self.check,
            "vendor": self.vendor,
            "baseline_vendor": self.baseline_vendor,
            "regression": self.regression,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "candidate": self.candidate.to_dict() if self.candidate else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class Source:
    """Which file (or run) a side of the comparison came from."""

    label: str
    run_id: str
    python_pkcs11_version: str
    vendors: tuple[str, ...]

    @classmethod
    def of(cls, label: str, results: Results) -> Source:
        return cls(label, str(results.run.id), str(results.run.python_pkcs11_version), tuple(sorted(vendors_of(results))))

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.label, "run_id": self.run_id, "python_pkcs11_version": self.python_pkcs11_version,
                "vendors": list(self.vendors)}


@dataclass(frozen=True)
class GateReport:
    baseline: Source
    candidate: Source
    vendor_map: Mapping[str, str]  # baseline vendor -> candidate vendor
    changes: tuple[Change, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = ()  # what makes this comparison less trustworthy, with the fix

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.regression)

    def counts(self) -> dict[str, int]:
        found = Counter(c.kind for c in self.changes)
        return {kind: found[kind] for kind in CLASSES if found[kind]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": GATE_SCHEMA,
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "vendor_map": dict(self.vendor_map),
            "regressions": len(self.regressions),
            "counts": self.counts(),
            "changes": [c.to_dict() for c in self.changes],
            "warnings": list(self.warnings),
        }


def same_behaviour(bs: Side, cs: Side) -> bool:
    """The same signature and, for explorations, the same value at every point both reached. Where one file has
    no signatures (written before they were recorded), both sides are compared by outcome."""
    by_outcome = bs.behaviour is None or cs.behaviour is None
    return (bs.signature(by_outcome) == cs.signature(by_outcome)
            and (not (bs.explored and cs.explored) or observed_alike(bs, cs)[0]))


def observed_alike(bs: Side, cs: Side) -> tuple[bool, str]:
    """(alike, note). Two explorations are alike where every implementation-defined point both reached has the
    same values; a point only one reached is coverage (its draws went elsewhere, e.g. a binding without a step
    kind), said in the note, not a change of behaviour."""
    b, c = bs.observed, cs.observed
    if bs.explored and cs.explored:  # an exploration that reached no point observed nothing: {} and None alike
        b, c = b or {}, c or {}
    if not (bs.explored and cs.explored and isinstance(b, dict) and isinstance(c, dict)):
        return b == c, ""
    alike = all(b[k] == c[k] for k in set(b) & set(c))
    only = sorted(set(b) ^ set(c))
    return alike, (f"points reached in one run only (not compared): {', '.join(only)}" if only else "")


def first_line(text: str, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def canon(value: Any) -> Any:
    """JSON's view of a value (tuples are lists, 1 == 1.0), so values from TOML, JSON and xdist compare alike."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)
