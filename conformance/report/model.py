"""The compatibility report's view data: runs merged into columns (one per vendor per run), checks grouped by area.

Plain frozen dataclasses, no HTML: report/html.py renders them with the Jinja2 templates.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote

from ..checks import CHECKS_DIR
from ..outcomes import FINDINGS, OUTCOMES
from ..results.records import Record
from ..sut import DEFAULT_SUT
from .verdicts import page_headline, unfinished_prefix, verdict
from ..results.document import Results

OBSERVED_CHARS = 48  # a cell shows this much of the observed value; the detail shows all of it
NOTE_CHARS = 72
SHORT_ID = 8
# The test name in a failure message's replay hint: "replay: pytest ... -k test_x" or "run it again with -k test_x".
_REPLAY_K = re.compile(r"(?:^replay: pytest .*?|run it again with) -k\s+'?([\w\[\].-]+)", re.M)


@dataclass(frozen=True)
class Column:
    """One vendor in one run: the matrix column, its header facts and its summary."""

    key: str  # unique among the columns, safe in HTML ids
    vendor: str
    label: str  # unique among the columns
    run_id: str
    started: str
    finished: str | None
    harness_version: str
    python_pkcs11_version: str
    python: str
    platform: str
    sut: str
    hypothesis_profile: str
    source: str | None  # the results file it was read from (None when rendered at the end of a run)
    module: str
    library: Mapping[str, Any]
    token: Mapping[str, Any]
    mechanisms: int | None
    counts: tuple[tuple[str, int], ...]  # (outcome, n) for every outcome that occurs, in OUTCOMES order
    total: int
    findings: int
    deviations: int  # results that carry a declared deviation
    verdict: str
    verdict_class: str  # "good", "warn" or "bad"

    @property
    def short_run(self) -> str:
        return self.run_id[:SHORT_ID]

    @property
    def custom_sut(self) -> bool:
        """The run tested a session provider of its own (--sut), not the reference one."""
        return bool(self.sut) and self.sut != DEFAULT_SUT


@dataclass(frozen=True)
class Deviation:
    origin: str
    reason: str
    issue: str | None
    declared: str  # "outcome failed", "observed 'x'" or ""
    versions: str


@dataclass(frozen=True)
class Cell:
    """One check x column: the matrix cell and its detail."""

    id: str  # HTML id
    outcome: str
    layer: str
    observed: str  # compact, for the cell ("" when nothing was observed)
    observed_full: str  # pretty JSON, for the detail ("" when nothing was observed)
    headline: str  # the reason's first line
    note: str  # for findings, skips and stale declarations: the headline in a few words, for the cell
    reason: str  # the whole reason
    spec: str
    duration_s: float
    deviations: tuple[Deviation, ...]
    program: str | None  # the minimal schedule, one step a line
    hypothesis: str | None
    trace: str | None
    trace_href: str | None
    replay: str | None  # command line that runs this check again (with the reproducer when there is one)

    @property
    def finding(self) -> bool:
        return self.outcome in FINDINGS


@dataclass(frozen=True)
class Row:
    check: str
    name: str  # the check id after its area
    layer: str
    spec: str
    cells: tuple[Cell | None, ...]  # one per column; None where the column has no result for the check
    interesting: bool  # shown when the reader asks for "only checks with findings or differences"


@dataclass(frozen=True)
class Area:
    name: str
    rows: tuple[Row, ...]
    findings: int


@dataclass(frozen=True)
class Report:
    columns: tuple[Column, ...]
    areas: tuple[Area, ...]
    checks: int
    findings: int
    headline: str
    generated_from: tuple[str, ...] = field(default=())

    @property
    def outcomes(self) -> tuple[str, ...]:
        return OUTCOMES


def build(docs: Iterable[Results], sources: Sequence[str | None] | None = None, page_dir: str | None = None) -> Report:
    """Merge runs into one report; `sources` are the results files the runs were read from (for replay hints and
    trace links); `page_dir` is where the page is written (trace links are then relative: the report and its
    traces can be moved or published together)."""
    docs = list(docs)
    sources = list(sources) if sources is not None else [None] * len(docs)
    if len(sources) != len(docs):
        raise ValueError(f"{len(docs)} runs but {len(sources)} sources; give one source (or None) per run")
    entries: list[tuple[Results, str | None, str]] = []  # (doc, source, vendor)
    for doc, source in zip(docs, sources):
        named = list(doc.vendors) + sorted({r.vendor for r in doc.results} - set(doc.vendors))
        entries += [(doc, source, vendor) for vendor in named]
    labels = _labels(entries)
    columns: list[Column] = []
    by_column: list[dict[str, Record]] = []
    for i, ((doc, source, vendor), label) in enumerate(zip(entries, labels)):
        records = {r.check: r for r in doc.results if r.vendor == vendor}
        by_column.append(records)
        columns.append(_column(f"c{i}", doc, source, vendor, label, records.values()))
    checks = sorted({check for records in by_column for check in records})
    areas: dict[str, list[Row]] = {}
    for check in checks:
        cells = tuple(_cell(column, records[check], page_dir) if check in records else None
                      for column, records in zip(columns, by_column))
        first = next(records[check] for records in by_column if check in records)
        area, _, name = check.partition(".")
        areas.setdefault(area, []).append(Row(check, name or check, first.layer, first.spec, cells, _interesting(cells)))
    findings = sum(c.findings for c in columns)
    return Report(
        columns=tuple(columns),
        areas=tuple(Area(name, tuple(rows), sum(1 for r in rows for c in r.cells if c and c.finding))
                    for name, rows in sorted(areas.items())),
        checks=len(checks),
        findings=findings,
        headline=page_headline(columns, len(checks), findings),
        generated_from=tuple(s for s in sources if s),
    )


def _labels(entries: list[tuple[Results, str | None, str]]) -> list[str]:
    """The vendor name; where a vendor appears in several runs: name · python-pkcs11 X · run SHORTID (then more)."""
    repeated = {v for v, n in Counter(vendor for _, _, vendor in entries).items() if n > 1}
    suts: dict[str, set[str]] = {}
    for doc, _, vendor in entries:
        suts.setdefault(vendor, set()).add(str(doc.run.sut))
    labels = []
    for doc, source, vendor in entries:
        label = vendor
        if vendor in repeated:
            # runs of different session providers: name them (the reference one briefly)
            name = "reference" if doc.run.sut == DEFAULT_SUT else doc.run.sut
            sut = f" · sut {name}" if len(suts[vendor]) > 1 else ""
            label = f"{vendor} · python-pkcs11 {doc.run.python_pkcs11_version}{sut} · run {str(doc.run.id)[:SHORT_ID]}"
        labels.append(label)
    seen: Counter[str] = Counter()
    counts = Counter(labels)
    out = []
    for label, (_, source, _) in zip(labels, entries):
        seen[label] += 1
        if counts[label] > 1:  # the same run given twice: tell the copies apart by file, else by number
            label = f"{label} · {Path(source).name}" if source else f"{label} · #{seen[label]}"
        out.append(label)
    return out


def _column(key: str, doc: Results, source: str | None, vendor: str, label: str,
            records: Iterable[Record]) -> Column:
    records = list(records)
    info = doc.vendors.get(vendor) or {}
    tally = Counter(r.outcome for r in records)
    counts = tuple((o, tally[o]) for o in (*OUTCOMES, *sorted(set(tally) - set(OUTCOMES))) if tally[o])
    findings = sum(tally[o] for o in FINDINGS)
    deviations = sum(1 for r in records if r.deviations)
    prefix = "" if doc.run.complete else unfinished_prefix(doc.run.exit_status)
    verdict_text, verdict_class = verdict(tally, len(records), findings, deviations, prefix)
    mechanisms = info.get("mechanisms")
    return Column(
        key=key, vendor=vendor, label=label, run_id=str(doc.run.id or ""), started=str(doc.run.started or ""),
        finished=doc.run.finished, harness_version=str(doc.run.harness_version or ""),
        python_pkcs11_version=str(doc.run.python_pkcs11_version or ""), python=str(doc.run.python or ""),
        platform=str(doc.run.platform or ""), sut=str(doc.run.sut or ""),
        hypothesis_profile=str(doc.run.hypothesis_profile or ""), source=source,
        module=str(info.get("module") or ""), library=_mapping(info.get("library")), token=_mapping(info.get("token")),
        mechanisms=mechanisms if isinstance(mechanisms, int) else None,
        counts=counts, total=len(records), findings=findings, deviations=deviations,
        verdict=verdict_text, verdict_class=verdict_class,
    )


def _cell(column: Column, record: Record, page_dir: str | None = None) -> Cell:
    reason = (record.reason or "").strip()
    headline = reason.splitlines()[0].removeprefix("Failed: ") if reason else ""
    if record.deviations and headline.startswith("declared "):
        headline = ""  # pytest's xfail reason repeats the declaration, which the detail shows in full
    program = hypothesis = None
    if record.reproducer is not None:
        try:
            program = record.reproducer.to_schedule().program() or None
        except (KeyError, TypeError, ValueError):  # a hand-edited file: show the steps as they are
            program = "\n".join(json.dumps(s, sort_keys=True) for s in record.reproducer.schedule) or None
        hypothesis = record.reproducer.hypothesis or None
    return Cell(
        id=f"{column.key}-{_slug(record.check)}",
        outcome=record.outcome,
        layer=record.layer,
        observed=compact(record.observed),
        observed_full=_observed_full(record.observed),
        headline=headline,
        note=_note(headline) if record.outcome in (*FINDINGS, "skipped", "xpassed") else "",
        reason=reason,
        spec=record.spec,
        duration_s=record.duration_s,
        deviations=tuple(_deviation(d) for d in record.deviations),
        program=program,
        hypothesis=hypothesis,
        trace=record.trace,
        trace_href=_href(record.trace, column.source, page_dir) if record.trace else None,
        replay=_replay(column, record),
    )


def compact(observed: Any) -> str:
    """The observed value in a few words: a string as is; {point: [values]} as `point: a | b; ...`."""
    if observed is None:
        return ""
    if isinstance(observed, str):
        text = observed
    elif isinstance(observed, Mapping):
        text = "; ".join(f"{k}: {' | '.join(map(str, v)) if isinstance(v, list) else _json(v)}" for k, v in observed.items())
    else:
        text = _json(observed)
    return text if len(text) <= OBSERVED_CHARS else text[: OBSERVED_CHARS - 1] + "…"


def _observed_full(observed: Any) -> str:
    """The whole observed value: `point: a | b`, one point a line, for the scenario dicts; else indented JSON."""
    if observed is None:
        return ""
    if isinstance(observed, str):
        return observed
    if isinstance(observed, Mapping) and all(isinstance(v, list) for v in observed.values()):
        return "\n".join(f"{k}: {' | '.join(map(str, v))}" for k, v in observed.items())
    return json.dumps(observed, indent=1, sort_keys=True)


def _note(headline: str) -> str:
    """A failure's first line without its trailing [citation], cut to fit a cell."""
    text = re.sub(r"\s*\[[^\]]*\]\s*$", "", headline)
    return text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 1] + "…"


def _deviation(data: Mapping[str, Any]) -> Deviation:
    declared = []
    if data.get("outcome") is not None:
        declared.append(f"outcome {data['outcome']}")
    if data.get("observed") is not None:
        declared.append(f"observed {_json(data['observed'])}")
    if data.get("model"):
        declared.append("model " + ", ".join(f"{k}={_json(v)}" for k, v in dict(data["model"]).items()))
    versions = ", ".join(f"{k} {v}" for k, v in dict(data.get("versions") or {}).items())
    issue = data.get("issue")
    return Deviation(str(data.get("origin", "")), str(data.get("reason", "")),
                     issue if isinstance(issue, str) and issue.startswith(("http://", "https://")) else None,
                     "; ".join(declared), versions)


def _replay(column: Column, record: Record) -> str | None:
    """`pytest --vendor=NAME [--sut=...] [--replay=RESULTS.json] -k 'TEST[NAME]'`, or None if the test is unknown."""
    match = _REPLAY_K.search(record.reason or "")
    test = match.group(1) if match else check_tests().get(record.check)
    if not test:
        return None
    test = test.split("[", 1)[0]
    parts = ["pytest", f"--vendor={column.vendor}"]
    if column.custom_sut:
        parts.append(f"--sut={column.sut}")
    if record.reproducer is not None:
        parts.append(f"--replay={column.source or 'RESULTS.json'}")
    parts.append(f"-k '{test}[{column.vendor}]'")  # exact: -k test_provider alone also picks test_provider_stress
    return " ".join(parts)


@cache
def check_tests() -> dict[str, str]:
    """Check id -> test function name, read from the shipped checks' @pytest.mark.check decorators (no import)."""
    found: dict[str, str] = {}
    for path in sorted(CHECKS_DIR.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr == "check"
                        and deco.args and isinstance(deco.args[0], ast.Constant) and isinstance(deco.args[0].value, str)):
                    found[deco.args[0].value] = node.name
    return found


def _interesting(cells: tuple[Cell | None, ...]) -> bool:
    """A finding or a stale declaration in some column, or columns that ran the check and disagree (a column that
    did not run it is no difference: merged runs often select different checks)."""
    present = [c for c in cells if c is not None]
    if any(c.finding or c.outcome == "xpassed" for c in present):
        return True
    return len({(c.outcome, c.observed_full) for c in present}) > 1


def _href(trace: str, source: str | None, page_dir: str | None = None) -> str:
    path = Path(trace)
    if not path.is_absolute() and source:
        path = Path(source).resolve().parent / path
    if page_dir is not None and path.is_absolute():
        return quote(os.path.relpath(path, Path(page_dir).resolve()).replace(os.sep, "/"))
    return path.as_uri() if path.is_absolute() else trace


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
