"""The report's one-line words: a column's verdict and the page's headline, taken in at a glance."""

from __future__ import annotations

from collections import Counter
from typing import Protocol, Sequence

from ..outcomes import FINDINGS


class ColumnSummary(Protocol):
    """What the headline reads of a report column (report/model.py's Column)."""

    @property
    def run_id(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def findings(self) -> int: ...


def unfinished_prefix(exit_status: int | None) -> str:
    """Why a run has no `finished` stamp, as the verdict's prefix."""
    if exit_status is None:
        return "run incomplete (killed, or still running): "
    if exit_status == 2:
        return "run interrupted: "
    return f"run stopped early (exit status {exit_status}): "


def verdict(tally: Counter[str], total: int, findings: int, deviations: int, prefix: str = "") -> tuple[str, str]:
    """One line a reader takes in at a glance, and its colour class; `prefix` marks a run that did not finish."""
    if total == 0:
        return f"{prefix}no results", "warn"
    if findings:
        what = ", ".join(f"{tally[o]} {o}" for o in FINDINGS if tally[o])
        return f"{prefix}{findings} finding{plural(findings)} ({what})", "bad"
    notes = []
    if deviations:
        notes.append(f"{deviations} declared deviation{plural(deviations)}")
    if tally["skipped"]:
        notes.append(f"{tally['skipped']} skipped (not counted as passes)")
    if tally["xpassed"]:
        stale = tally["xpassed"]
        return (f"{prefix}no findings, but {stale} declared deviation{plural(stale)} no longer happen"
                f"{'s' if stale == 1 else ''} — update the declaration", "warn")
    text = f"{prefix}no findings in {total} check{plural(total)}" + (f" ({'; '.join(notes)})" if notes else "")
    return text, "warn" if prefix else "good"


def page_headline(columns: Sequence[ColumnSummary], checks: int, findings: int) -> str:
    runs = len({c.run_id for c in columns})
    where = f"{len(columns)} column{plural(len(columns))} from {runs} run{plural(runs)}"
    if not findings:
        return f"{checks} checks · {where} · no findings"
    bad = [c.label for c in columns if c.findings]
    who = bad[0] if len(bad) == 1 else f"in {len(bad)} columns"
    return f"{checks} checks · {where} · {findings} finding{plural(findings)} ({who})"


def plural(n: int) -> str:
    return "" if n == 1 else "s"
