"""Controller-only plugin object: folds reports into records, keeps the results file current, renders the report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from . import options
from .pins import redact
from .records import Record, RecordBuilder
from .results import ResultsWriter


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

    def __init__(self, config: pytest.Config, writer: ResultsWriter, secrets: list[str]) -> None:
        self.config = config
        self.writer = writer
        self.secrets = secrets  # PIN values: scrubbed from every record before it is kept
        self.builder = RecordBuilder()
        self.html_path = Path(config.getoption(options.CONFORMANCE_HTML))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self.builder.add(report)
        if record is not None:
            self.writer.add(scrub(record, self.secrets))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Runs on failures and on Ctrl-C too: what was collected so far is always written.
        doc = self.writer.flush(finished=True)
        from .report_html import write_report

        write_report(self.html_path, [doc])

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tally: dict[str, dict[str, int]] = {}
        for record in self.writer.records:
            counts = tally.setdefault(record.vendor, {})
            counts[record.outcome] = counts.get(record.outcome, 0) + 1
        terminalreporter.section("pkcs11-conformance")
        for vendor, counts in tally.items():
            terminalreporter.write_line(f"{vendor}: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items())))
        terminalreporter.write_line(f"{len(self.writer.records)} results -> {self.writer.path}, {self.html_path}")
