"""The benchmark's upgrade gate (`pkcs11-conformance bench-gate BASE.json CAND.json`): compare two bench runs row by
row (vendor × mechanism × strategy × thread count) and flag a drop only where it exceeds the measured spread of the
trials, naming mechanism, strategy and thread count.

    slower  (regression) both measured, and the medians differ by more than the two runs' trials spread together:
            throughput is a ratio scale, so a run's spread is a factor — its fastest trial over its slowest (1 for
            one trial) — and a drop must exceed both runs' factors multiplied (their spreads added on a log
            scale): base median > spread_b × spread_c × cand median, or 1.10 × when neither has a spread to
            measure. Two runs of one setup half an hour apart differ by more than either run's own spread (measured:
            SoftHSM via p11-kit, RSA-2048 at 4 threads, 985 and 1301 ops/s with spreads of x1.13 and x1.26);
            no trial of such a drop's candidate reaches the baseline's slowest (it follows)
    faster  the same, upwards
    same    both measured and neither of those; or neither side measured (skipped, crashed, ... on both)
    unsafe  (regression) measured in base; failed, crashed, hung or error in the candidate
    fixed   failed, crashed, hung or error in base; measured in the candidate
    lost    (regression) measured in base; skipped or absent in the candidate
    new     absent or skipped in base, present in the candidate

Only paired vendors are compared (by name, one vendor in each file, or --as OLD=NEW), and only rows both runs'
settings ask for: a thread count or mechanism one run left out is a note, not a lost row. A baseline vendor with no
counterpart in the candidate loses its measured rows (regressions), as the results gate counts a missing vendor.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Sequence

from .record import BenchDoc, BenchInputError, Row, read_bench

BENCH_GATE_SCHEMA = "pkcs11-conformance/bench-gate/1"
KINDS = ("slower", "unsafe", "lost", "faster", "fixed", "new", "same")  # report order
BAD = ("failed", "crashed", "hung", "error")
NO_SPREAD = 0.10  # without a measured spread, a change must exceed 10% (a factor of 1.10)


@dataclass(frozen=True)
class BenchChange:
    """One row of the comparison; `vendor` is the candidate's name, `base_vendor` the baseline's."""

    vendor: str
    base_vendor: str
    mechanism: str
    strategy: str
    threads: int
    kind: str
    regression: bool
    base_ops_per_s: float | None = None
    cand_ops_per_s: float | None = None
    base_outcome: str | None = None  # None: no such row
    cand_outcome: str | None = None
    base_detail: str = ""
    cand_detail: str = ""
    spread_factor: float | None = None  # the factor a change of the median had to exceed (both measured only)
    note: str = ""  # why the factor is what it is, when not the trials' spread

    @property
    def where(self) -> str:
        who = self.vendor if self.vendor == self.base_vendor else f"{self.base_vendor} -> {self.vendor}"
        return f"{who} {self.mechanism} {self.strategy} at {self.threads} thread{'s' * (self.threads != 1)}"

    @property
    def change_percent(self) -> float | None:
        if self.base_ops_per_s is None or self.cand_ops_per_s is None or self.base_ops_per_s <= 0:
            return None
        return (self.cand_ops_per_s / self.base_ops_per_s - 1.0) * 100.0

    @property
    def slower_within_spread(self) -> bool:
        b, c = self.base_ops_per_s, self.cand_ops_per_s
        return self.kind == "same" and b is not None and c is not None and c < b

    def describe(self) -> str:
        """One line: where, then what changed and why it counts (or does not)."""
        b, c = _side(self.base_outcome, self.base_ops_per_s, self.base_detail), _side(
            self.cand_outcome, self.cand_ops_per_s, self.cand_detail)
        if self.base_ops_per_s is None or self.cand_ops_per_s is None:
            said = f"{self.kind}, " if self.regression else ""  # the text line's label says only REGRESSION
            return f"{self.where}: {said}{b} -> {c}"
        text = f"{self.where}: {_ops(self.base_ops_per_s)} -> {_ops(self.cand_ops_per_s)} ops/s"
        pct = self.change_percent
        text += f" ({pct:+.1f}%)" if pct is not None else ""
        factor = self.spread_factor or 1.0
        limit = (f"10% ({self.note})" if self.note
                 else f"the trials' spread (x{factor:.3g}: each run's fastest trial over its slowest, multiplied)")
        return f"{text}, {'beyond' if self.kind in ('slower', 'faster') else 'within'} {limit}"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("base_ops_per_s", "cand_ops_per_s"):
            data[name] = None if data[name] is None else round(data[name], 3)
        pct = self.change_percent
        return {**data, "change_percent": None if pct is None else round(pct, 2), "description": self.describe()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchChange:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class BenchGateReport:
    changes: tuple[BenchChange, ...]
    notes: tuple[str, ...] = ()
    vendors: Mapping[str, str] | None = None  # baseline vendor -> the candidate's it was compared with
    baseline: str = "baseline"
    candidate: str = "candidate"

    @property
    def regressions(self) -> tuple[BenchChange, ...]:
        return tuple(c for c in self.changes if c.regression)

    def counts(self) -> dict[str, int]:
        counted = Counter(c.kind for c in self.changes)
        return {kind: counted[kind] for kind in KINDS if counted[kind]}

    def to_dict(self) -> dict[str, Any]:
        return {"schema": BENCH_GATE_SCHEMA, "regressions": len(self.regressions), "baseline": self.baseline,
                "candidate": self.candidate, "vendors": dict(self.vendors or {}), "counts": self.counts(),
                "changes": [c.to_dict() for c in self.changes], "notes": list(self.notes)}


# ---------------------------------------------------------------------------------------------------- comparison


def compare(base: BenchDoc, cand: BenchDoc, aliases: Sequence[tuple[str, str]] = (),
            base_label: str = "baseline", cand_label: str = "candidate") -> BenchGateReport:
    """Classify every row of the paired vendors (the module docstring's table); BenchInputError for bad aliases."""
    from ..gate.compare import GateInputError, match_vendors

    base_names, cand_names = _vendors(base), _vendors(cand)
    try:
        mapping = match_vendors(base_names, cand_names, aliases)
    except GateInputError as exc:  # the results gate's pairing rules, with its messages
        raise BenchInputError(str(exc)) from None
    pairs = {old: new for old, new in mapping.items() if new in cand_names}
    notes = _vendor_notes(base, cand, mapping, pairs) + _settings_notes(base, cand)
    wanted = _wanted(base, cand)
    b_rows = {(pairs[r.vendor], *r.key[1:]): r for r in base.rows if r.vendor in pairs}
    c_rows = {r.key: r for r in cand.rows if r.vendor in pairs.values()}
    keys = sorted(set(b_rows) | set(c_rows))
    left_out = [k for k in keys if k[1:] not in wanted]
    if left_out:
        notes.append(f"{len(left_out)} row{'s' * (len(left_out) != 1)} only one run's settings asked for "
                     "not compared; run both with the same --mechanism, --strategy and --threads")
    old_name = {new: old for old, new in pairs.items()}
    changes = [classify(k[0], old_name[k[0]], b_rows.get(k), c_rows.get(k)) for k in keys if k[1:] in wanted]
    # A baseline vendor the candidate did not run at all: its measured rows are lost, as the results gate counts
    # a missing vendor's checks (a gate that passes because a vendor vanished would pass anything).
    unpaired = set(mapping) - set(pairs)
    changes += [classify(r.vendor, r.vendor, r, None) for r in base.rows if r.vendor in unpaired]
    unspread = sum(1 for c in changes if c.note)
    if unspread:
        notes.append(f"{unspread} row{'s' * (unspread != 1)} had no spread to measure (one trial on each side, or "
                     "trials that did not vary): "
                     f"a change had to exceed {NO_SPREAD:.0%} of the baseline; run both with --trials 3 or more")
    order = {kind: i for i, kind in enumerate(KINDS)}
    changes.sort(key=lambda c: (not c.regression, order[c.kind], c.vendor, c.mechanism, c.strategy, c.threads))
    return BenchGateReport(tuple(changes), tuple(notes), pairs, base_label, cand_label)


def classify(vendor: str, base_vendor: str, b: Row | None, c: Row | None) -> BenchChange:
    """One row key: the first matching line of the module docstring's table."""
    some = b or c
    assert some is not None
    measured_b, measured_c = b is not None and b.outcome == "measured", c is not None and c.outcome == "measured"

    def change(kind: str, regression: bool, factor: float | None = None, note: str = "") -> BenchChange:
        return BenchChange(vendor, base_vendor, some.mechanism, some.strategy, some.threads, kind, regression,
                           _rate(b) if measured_b else None, _rate(c) if measured_c else None,
                           b.outcome if b else None, c.outcome if c else None, b.detail if b else "",
                           c.detail if c else "", factor, note)

    if measured_b and measured_c:
        assert b is not None and c is not None
        return _measured(b, c, change)
    if measured_b:
        return change("unsafe", True) if c is not None and c.outcome in BAD else change("lost", True)
    if measured_c:
        return change("fixed", False) if b is not None and b.outcome in BAD else change("new", False)
    if b is None or (b.outcome == "skipped" and c is not None and c.outcome != "skipped"):
        return change("new", False)
    return change("same", False)  # neither side measured: crashed -> crashed is not news for throughput


def _measured(b: Row, c: Row, change: Callable[..., BenchChange]) -> BenchChange:
    """Both measured: a change of the median beyond both runs' spread factors multiplied."""
    factor, note = _factor(b) * _factor(c), ""
    if factor <= 1.0:
        factor = 1.0 + NO_SPREAD
        note = ("one trial on each side, no spread to measure" if len(b.trials) < 2 and len(c.trials) < 2
                else "the trials did not vary, no spread to measure")
    if _rate(b) > factor * _rate(c):
        return change("slower", True, factor, note)
    if _rate(c) > factor * _rate(b):
        return change("faster", False, factor, note)
    return change("same", False, factor, note)


def _factor(row: Row) -> float:
    """A row's spread as a factor: its fastest trial over its slowest (1.0 for one trial; inf if one did nothing)."""
    lo, hi = _range(row)
    return hi / lo if lo > 0 else float("inf")


def compare_files(base_path: str | os.PathLike[str], cand_path: str | os.PathLike[str],
                  alias_texts: Sequence[str] = ()) -> BenchGateReport:
    """Parse the --as options, read both files, compare; every problem is one BenchInputError line."""
    from ..gate.compare import GateInputError, parse_alias

    try:
        aliases = [parse_alias(text) for text in alias_texts]
    except GateInputError as exc:
        raise BenchInputError(str(exc)) from None
    base, cand = read_bench(base_path), read_bench(cand_path)
    return compare(base, cand, aliases, os.fspath(base_path), os.fspath(cand_path))


def _vendors(doc: BenchDoc) -> set[str]:
    return set(doc.vendors) | {r.vendor for r in doc.rows}


def _vendor_notes(base: BenchDoc, cand: BenchDoc, mapping: Mapping[str, str], pairs: Mapping[str, str]) -> list[str]:
    notes = [f"baseline vendor {old!r} has no counterpart in the candidate: its measured rows are lost; run the candidate with "
             f"--vendor={old} or pass --as {old}=NAME" for old in sorted(set(mapping) - set(pairs))]
    notes += [f"candidate vendor {new!r} has no counterpart in the baseline: not compared; pass --as OLD={new}"
              for new in sorted(_vendors(cand) - set(pairs.values()))]
    for label, doc, names in (("baseline", base, pairs.keys()), ("candidate", cand, pairs.values())):
        notes += [f"{label} vendor {name!r} could not be benchmarked: {doc.vendors[name].problem}"
                  for name in sorted(names) if name in doc.vendors and doc.vendors[name].problem]
    return notes


def _settings_notes(base: BenchDoc, cand: BenchDoc) -> list[str]:
    """Differences that make the runs less comparable: said, never refused (the gate still compares what it can)."""
    b, c = base.run.settings.to_dict(), cand.run.settings.to_dict()
    notes = [f"settings differ: {name} {_show(b[name])} in the baseline, {_show(c[name])} in the candidate"
             for name in b if b[name] != c[name]]
    if base.run.cpus != cand.run.cpus:
        notes.append(f"the runs had {base.run.cpus} and {cand.run.cpus} CPUs: threaded rows may differ for that "
                     "alone; compare runs of the same machine")
    if base.run.sut != cand.run.sut:
        notes.append(f"the sut strategy is {base.run.sut or 'none'} in the baseline, {cand.run.sut or 'none'} in the "
                     "candidate")
    return notes


def _wanted(base: BenchDoc, cand: BenchDoc) -> set[tuple[str, str, int]]:
    """(mechanism, strategy, threads) both runs' settings asked for."""
    b, c = base.run.settings, cand.run.settings
    return {(m, s, t) for m in set(b.mechanisms) & set(c.mechanisms) for s in set(b.strategies) & set(c.strategies)
            for t in set(b.threads) & set(c.threads)}


def _rate(row: Row | None) -> float:
    return (row.ops_per_s or 0.0) if row is not None else 0.0


def _range(row: Row) -> tuple[float, float]:
    rates = [t.ops_per_s for t in row.trials] or [_rate(row)]
    return min(rates), max(rates)


def _ops(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _side(outcome: str | None, ops: float | None, detail: str) -> str:
    if outcome is None:
        return "absent"
    if ops is not None:
        return f"{_ops(ops)} ops/s"
    return f"{outcome} ({detail.splitlines()[0]})" if detail else outcome


# ------------------------------------------------------------------------------------------------------- output


LABELS = {"slower": "REGRESSION", "unsafe": "REGRESSION", "lost": "REGRESSION", "faster": "FASTER", "fixed": "FIXED",
          "new": "NEW", "same": "SAME"}


def summary(report: BenchGateReport) -> str:
    n, counts = len(report.regressions), report.counts()
    within = sum(1 for c in report.changes if c.slower_within_spread)
    parts = [f"{n} regression{'s' * (n != 1)}"] + ([f"{within} slower within spread"] if within else [])
    parts += [f"{counts[k]} {k}" for k in ("faster", "fixed", "new") if k in counts]
    parts += [f"{counts['same'] - within} same"] if counts.get("same", 0) > within else []
    rows = len(report.changes)
    return f"{rows} row{'s' * (rows != 1)} compared: {', '.join(parts)}"


def _listed(report: BenchGateReport) -> list[BenchChange]:
    return [c for c in report.changes if not c.regression and c.kind in ("faster", "fixed", "new")]


def render_text(report: BenchGateReport) -> str:
    out = [f"REGRESSION {c.describe()}" for c in report.regressions] + [summary(report)]
    out += [f"{LABELS[c.kind]} {c.describe()}" for c in _listed(report)]
    out += [f"note: {note}" for note in report.notes]
    return "\n".join(out) + "\n"


def render_markdown(report: BenchGateReport) -> str:
    mark = "❌" if report.regressions else "✅"
    out = [f"### {mark} pkcs11-conformance bench-gate: {summary(report)}", ""]
    rows = list(report.regressions) + _listed(report)
    if rows:
        out += ["| | change | vendor | mechanism | strategy | threads | baseline | candidate | Δ | spread |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for c in rows:
            pct = c.change_percent
            cells = ["❌" if c.regression else "", c.kind, c.vendor if c.vendor == c.base_vendor else
                     f"{c.base_vendor} -> {c.vendor}", f"`{c.mechanism}`", c.strategy, str(c.threads),
                     _side(c.base_outcome, c.base_ops_per_s, c.base_detail),
                     _side(c.cand_outcome, c.cand_ops_per_s, c.cand_detail), "" if pct is None else f"{pct:+.1f}%",
                     "" if c.spread_factor is None else f"x{c.spread_factor:.3g}"]
            out.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        out.append("")
    out.append(f"Baseline `{_cell(report.baseline)}`, candidate `{_cell(report.candidate)}`.")
    out += [f"\n> **Note:** {_cell(note)}" for note in report.notes]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_bench_gate(report: BenchGateReport, fmt: str = "text") -> str:
    """text (regressions, one line each, then the summary), json or markdown (a CI comment)."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=1) + "\n"
    return render_markdown(report) if fmt == "markdown" else render_text(report)
