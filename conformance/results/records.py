"""One result per check × vendor: the record, and how pytest's reports turn into one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pytest

from ..outcomes import DIED, HARNESS

# Key under which a check's metadata rides on item.user_properties (serialised across xdist workers).
PROPERTY = "conformance"


@dataclass(frozen=True)
class Reproducer:
    schedule: tuple[Any, ...]
    hypothesis: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"schedule": list(self.schedule), "hypothesis": self.hypothesis}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reproducer:
        return cls(tuple(data.get("schedule") or ()), data.get("hypothesis"))


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
        )


def check_properties(report: pytest.TestReport | pytest.Item) -> dict[str, Any] | None:
    """The check metadata a report or an item carries (None for tests that are not conformance checks)."""
    for key, value in report.user_properties:
        if key == PROPERTY:
            return value
    return None


class RecordBuilder:
    """Folds the setup/call/teardown reports of one item into one Record (controller side, xdist-safe)."""

    def __init__(self) -> None:
        self._pending: dict[str, dict[str, Any]] = {}

    def add(self, report: pytest.TestReport) -> Record | None:
        """Feed a report; returns the finished Record after the item's teardown report."""
        meta = check_properties(report)
        if meta is None:
            if report.nodeid in self._pending and report.failed:
                return self._worker_died(report)
            return None
        state = self._pending.setdefault(report.nodeid, {"phases": {}, "duration": 0.0})
        state["meta"] = meta  # the latest phase carries the most (observed values are added during call)
        state["duration"] += report.duration
        state["phases"][report.when] = _phase_outcome(report)
        if report.when != "teardown":
            return None
        del self._pending[report.nodeid]
        phases = state["phases"]
        # A setup skip or error decides; otherwise the call does, unless teardown then broke a passing check.
        outcome, reason = next((p for p in (phases.get("setup"), phases.get("call")) if p and p[0]), ("error", "no call phase"))
        if phases["teardown"][0] == "error" and outcome in ("passed", "xpassed", "xfailed"):
            outcome, reason = phases["teardown"]
        meta = state["meta"]
        if outcome == "failed" and meta.get("status") in DIED:
            outcome = meta["status"]  # the executor child died or stuck: say so, not just "failed"
        layer = HARNESS if outcome == "error" else meta["layer"]
        integrity = meta.get("integrity")
        if integrity and integrity not in (reason or ""):
            reason = f"{reason}\n{integrity}" if reason else integrity  # also when a declared xfail hides the failure
        rep = meta.get("reproducer")
        return Record(
            check=meta["check"],
            vendor=meta["vendor"],
            layer=layer,
            outcome=outcome,
            observed=meta.get("observed"),
            reason=reason or meta.get("note", ""),
            spec=meta.get("spec", ""),
            duration_s=state["duration"],
            reproducer=Reproducer.from_dict(rep) if rep else None,
            trace=meta.get("trace"),
            deviations=tuple(meta.get("deviations", ())),
            nodeid=report.nodeid,
        )


    def _worker_died(self, report: pytest.TestReport) -> Record:
        """pytest-xdist's report for a check whose worker process died mid-check (no user_properties on it)."""
        state = self._pending.pop(report.nodeid)
        meta = state["meta"]
        text = str(report.longrepr).strip().splitlines()
        return Record(
            check=meta["check"], vendor=meta["vendor"], layer=meta["layer"], outcome="crashed",
            reason=text[-1] if text else "the worker process died", spec=meta.get("spec", ""),
            duration_s=state["duration"], nodeid=report.nodeid,
        )


def _phase_outcome(report: pytest.TestReport) -> tuple[str | None, str]:
    """Outcome contributed by one phase report, in the results vocabulary, with its reason."""
    wasxfail = getattr(report, "wasxfail", None)
    if report.when == "call":
        if report.passed:
            return ("xpassed", wasxfail) if wasxfail is not None else ("passed", "")
        if report.skipped:
            return ("xfailed", wasxfail or "") if wasxfail is not None else ("skipped", _skip_reason(report))
        text = _failure_text(report)
        if text.startswith("[XPASS(strict)]"):
            return "xpassed", text[len("[XPASS(strict)]"):].strip()
        return "failed", text
    # setup / teardown
    if report.skipped:
        return "skipped", _skip_reason(report)
    if report.failed:
        return "error", f"{report.when}: {_failure_text(report)}"
    return None, ""


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _failure_text(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ""
