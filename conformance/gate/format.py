"""The gate report as text (terminal, CI logs), markdown (a CI comment) or JSON (machines)."""

from __future__ import annotations

import json
from typing import Any, Callable

from ..outcomes import GOOD
from .entries import Change, GateReport, Side

LABELS = {
    "regressed": "REGRESSED",
    "stale_declaration": "STALE DECLARATION",
    "lost_coverage": "LOST COVERAGE",
    "removed": "REMOVED",
    "vendor_missing": "VENDOR MISSING",
    "fixed": "FIXED",
    "changed_but_declared": "CHANGED (declared)",
    "new": "NEW",
    "still_failing": "STILL FAILING",
    "unchanged": "UNCHANGED",
}
OBSERVED_LIMIT = 80


def summary(report: GateReport) -> str:
    """One line: the number of regressions, then the count of every class that occurred."""
    n = len(report.regressions)
    head = f"{n} regression{'s' if n != 1 else ''}" if n else "no regressions"
    counts = ", ".join(f"{count} {kind}" for kind, count in report.counts().items())
    return f"gate: {head} ({counts or 'nothing to compare'})"


def show_side(side: Side | None) -> str:
    if side is None:
        return "absent"
    if side.observed is None:
        return side.outcome
    return f"{side.outcome} (observed {show_value(side.observed)})"


def show_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= OBSERVED_LIMIT else text[: OBSERVED_LIMIT - 3] + "..."


def show_vendor(change: Change) -> str:
    if change.baseline_vendor != change.vendor:
        return f"{change.baseline_vendor} -> {change.vendor}"
    return change.vendor


def line(change: Change) -> str:
    """One change on one line: LABEL check [vendor]: baseline -> candidate: note."""
    label = LABELS[change.kind]
    if change.kind == "lost_coverage" and not change.regression:
        label += " (declared)"
    if not change.comparable:
        label += " (not comparable)"
    if change.kind == "still_failing" and change.behaviour == "changed":
        label += " (behaviour changed)"
    if change.kind == "vendor_missing":
        return f"{label} [{show_vendor(change)}]: {change.note}"
    text = f"{label} {change.check} [{show_vendor(change)}]: {show_side(change.baseline)} -> {show_side(change.candidate)}"
    return f"{text}: {change.note}" if change.note else text


def _listed(report: GateReport) -> tuple[list[Change], list[Change], list[Change]]:
    """(regressions, other changes worth a line each, new checks that are good: counted, not listed)."""
    regressions = list(report.regressions)
    quiet_new = [c for c in report.changes if c.kind == "new" and c.candidate and c.candidate.outcome in GOOD]
    quiet = {id(c) for c in quiet_new}
    others = [c for c in report.changes
              if not c.regression and (c.kind != "unchanged" or not c.comparable or c.note) and id(c) not in quiet]
    return regressions, others, quiet_new


def render_text(report: GateReport) -> str:
    regressions, others, quiet_new = _listed(report)
    out = [summary(report)]
    if regressions:
        out += ["", "regressions:"] + [line(c) for c in regressions]
    if others or quiet_new:
        out += ["", "other changes:"] + [line(c) for c in others]
        if quiet_new:
            out.append(f"NEW: {_more_pass(quiet_new)} ({', '.join(sorted({c.vendor for c in quiet_new}))})")
    out += ["", f"baseline {_source(report.baseline)}", f"candidate {_source(report.candidate)}"]
    out += [f"note: {w}" for w in report.warnings]
    return "\n".join(out) + "\n"


def _more_pass(new: list[Change]) -> str:
    return f"{len(new)} more new check{'s pass' if len(new) != 1 else ' passes'}"


def _source(source: Any) -> str:
    return (f"{source.label}: run {source.run_id}, python-pkcs11 {source.python_pkcs11_version}, "
            f"vendors {', '.join(source.vendors) or 'none'}")


def render_markdown(report: GateReport) -> str:
    regressions, others, quiet_new = _listed(report)
    mark = "❌" if regressions else "✅"
    out = [f"### {mark} pkcs11-conformance {summary(report)}", ""]
    rows = regressions + others
    if rows:
        out += ["| | class | check | vendor | baseline | candidate | note |", "|---|---|---|---|---|---|---|"]
        for c in rows:
            cells = ["❌" if c.regression else "", LABELS[c.kind] + ("" if c.comparable else " (not comparable)"), f"`{_cell(c.check)}`", _cell(show_vendor(c)),
                     _cell(show_side(c.baseline)), _cell(show_side(c.candidate)), _cell(c.note)]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    if quiet_new:
        out += [f"{_more_pass(quiet_new)}.", ""]
    out.append(f"Baseline `{_cell(report.baseline.label)}` (python-pkcs11 {report.baseline.python_pkcs11_version}), "
               f"candidate `{_cell(report.candidate.label)}` (python-pkcs11 {report.candidate.python_pkcs11_version}).")
    out += [f"\n> **Note:** {w}" for w in report.warnings]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'").replace("\n", " ")


def render_json(report: GateReport) -> str:
    return json.dumps(report.to_dict(), indent=1) + "\n"


FORMATS: dict[str, Callable[[GateReport], str]] = {"text": render_text, "markdown": render_markdown, "json": render_json}


def render(report: GateReport, fmt: str = "text") -> str:
    return FORMATS[fmt](report)
