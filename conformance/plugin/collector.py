"""Controller-only plugin object: folds reports into records, keeps the results file current, renders the report,
and gates the run against --baseline."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from . import options
from ..gate.compare import compare
from ..gate.entries import GateReport
from ..results.reader import ResultsInputError, parse_results
from ..pins import redact
from ..results.records import Record
from .recording import RecordBuilder
from ..results.document import Results, ResultsWriter
from ..report.html import write_report
from ..gate.format import line, render_text


def scrub(record: Record, secrets: list[str]) -> Record:
    """The record with every PIN value replaced in every string, wherever a check or a module may have echoed it
    (strings only: a short numeric PIN must not mangle a duration or a count)."""
    if not secrets:
        return record
    return replace(Record.from_dict(_scrub(record.to_dict(), secrets)), nodeid=record.nodeid)


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    return value


class ResultsCollector:
    """Registered only on the controller (pytest-xdist workers send their reports here), like pytest-html."""

    def __init__(self, config: pytest.Config, writer: ResultsWriter, secrets: list[str],
                 baseline: Results | None = None) -> None:
        self.config = config
        self.writer = writer
        self.secrets = secrets  # PIN values: scrubbed from every record before it is kept
        self.builder = RecordBuilder()
        self.html_path = Path(config.getoption(options.CONFORMANCE_HTML))
        self.baseline = baseline  # --baseline, read and validated in pytest_configure
        self.gate_report: GateReport | None = None
        self.gate_problem = ""  # why the gate could not judge this run
        self.integrity: dict[str, list[str]] = {}  # vendor -> what changed on its real token (empty: as found)

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.writer.flush_pending()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self.builder.add(report)
        if record is not None:
            self.writer.add(scrub(record, self.secrets))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Runs on failures and on Ctrl-C too: what was collected so far is always written.
        # -x / --maxfail end a run with exit status 1 before every check ran (pytest's shouldfail; xdist sets it
        # on the controller's session too).
        stopped_early = bool(session.shouldfail or session.shouldstop)
        doc = self.writer.flush(exit_status=int(session.exitstatus), stopped_early=stopped_early)
        if self.baseline is not None:
            self._gate(session, doc)
        write_report(self.html_path, [doc], sources=[str(self.writer.path)])

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tally: dict[str, dict[str, int]] = {}
        for record in self.writer.records:
            counts = tally.setdefault(record.vendor, {})
            counts[record.outcome] = counts.get(record.outcome, 0) + 1
        terminalreporter.section("pkcs11-conformance")
        cut: dict[str, int] = {}
        for record in self.writer.records:
            if record.coverage is not None and not record.coverage.complete:
                cut[record.vendor] = cut.get(record.vendor, 0) + 1
        for vendor, counts in tally.items():
            line_ = f"{vendor}: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
            if cut.get(vendor):
                n = cut[vendor]
                line_ += (f"; {n} exploration{'s' if n != 1 else ''} cut short by its time budget (passed on the "
                          "examples that ran; raise --check-timeout to run them all)")
            terminalreporter.write_line(line_, yellow=bool(cut.get(vendor)))
        terminalreporter.write_line(f"{len(self.writer.records)} results -> {self.writer.path}, {self.html_path}")
        for vendor, changes in self.integrity.items():
            if changes:
                terminalreporter.write_line(f"{vendor}: TOKEN NOT LEFT AS FOUND: {'; '.join(changes)}", red=True, bold=True)
            else:
                terminalreporter.write_line(f"{vendor}: token left exactly as found (flags and objects)", green=True)
        if self.baseline is None:
            return
        terminalreporter.section("pkcs11-conformance gate")
        if self.gate_report is None:
            terminalreporter.write_line(f"gate: {self.gate_problem}", red=True)
            return
        failing = {line(c) for c in self.gate_report.regressions}
        text = render_text(self.gate_report).splitlines()
        terminalreporter.write_line(text[0], red=bool(failing), green=not failing, bold=True)
        for row in text[1:]:
            terminalreporter.write_line(row, red=row in failing)

    def _gate(self, session: pytest.Session, doc: Results) -> None:
        """Compare the results just written with the baseline; regressions fail the run even if every test passed."""
        if not doc.run.complete:
            self.gate_problem = f"not run: the run did not finish (exit status {int(session.exitstatus)})"
            return
        assert self.baseline is not None
        try:
            # Through JSON, exactly as written to the file (and as `pkcs11-conformance gate` would read it).
            candidate = parse_results(json.loads(json.dumps(doc.to_dict())), f"this run's {self.writer.path}")
            self.gate_report = compare(self.baseline, candidate, (), str(self.config.getoption(options.BASELINE)),
                                       str(self.writer.path))
        except ResultsInputError as exc:
            self.gate_problem = str(exc)
        if self.gate_report is None or self.gate_report.regressions:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
