"""How pytest's reports of one check turn into one Record (controller side, pytest-xdist safe): the setup, call
and teardown reports folded into the results vocabulary, with what the check's CheckMeta carries."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ..outcomes import DIED, FINDINGS, HARNESS
from ..results.records import Behaviour, Record
from .meta import CheckMeta, carried_by


@dataclass
class _Pending:
    meta: CheckMeta
    duration: float = 0.0
    phases: dict[str, tuple[str | None, str]] = field(default_factory=dict)


class RecordBuilder:
    """Folds the setup/call/teardown reports of one item into one Record."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}

    def add(self, report: pytest.TestReport) -> Record | None:
        """Feed a report; returns the finished Record after the item's teardown report."""
        meta = carried_by(report)
        if meta is None:
            if report.nodeid in self._pending and report.failed:
                return self._worker_died(report)
            return None
        state = self._pending.setdefault(report.nodeid, _Pending(meta))
        state.meta = meta  # the latest phase carries the most (observed values are added during call)
        state.duration += report.duration
        state.phases[report.when] = _phase_outcome(report)
        if report.when != "teardown":
            return None
        del self._pending[report.nodeid]
        phases = state.phases
        # A setup skip or error decides; otherwise the call does, unless teardown then broke a passing check.
        outcome, reason = next((p for p in (phases.get("setup"), phases.get("call")) if p and p[0]),
                               ("error", "no call phase"))
        if phases["teardown"][0] == "error" and outcome in ("passed", "xpassed", "xfailed"):
            outcome, reason = phases["teardown"]
        assert outcome is not None
        if outcome == "failed" and meta.died in DIED:
            outcome = meta.died  # the module's process died or stuck: say so, not just "failed"
        if meta.layer == HARNESS and outcome in FINDINGS:
            outcome = "error"  # our own code raised (hooks.py): whatever the phase, it is an error of ours
        layer = HARNESS if outcome == "error" else meta.layer
        if meta.integrity and meta.integrity not in (reason or ""):
            # Also when a declared xfail hides the failure.
            reason = f"{reason}\n{meta.integrity}" if reason else meta.integrity
        return Record(
            check=meta.check,
            vendor=meta.vendor,
            layer=layer,
            outcome=outcome,
            observed=meta.observed,
            reason=reason or meta.note,
            spec=meta.spec,
            duration_s=state.duration,
            reproducer=meta.reproducer,
            trace=meta.trace,
            deviations=meta.deviations,
            coverage=meta.coverage,
            behaviour=meta.behaviour,
            nodeid=report.nodeid,
        )

    def _worker_died(self, report: pytest.TestReport) -> Record:
        """pytest-xdist's report for a check whose worker process died mid-check (it carries no CheckMeta)."""
        state = self._pending.pop(report.nodeid)
        meta = state.meta
        text = str(report.longrepr).strip().splitlines()
        return Record(
            check=meta.check, vendor=meta.vendor, layer=meta.layer, outcome="crashed",
            reason=text[-1] if text else "the worker process died", spec=meta.spec,
            duration_s=state.duration, nodeid=report.nodeid,
            behaviour=Behaviour.of_failure("crashed", text[-1] if text else "the worker process died"),
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
