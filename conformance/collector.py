"""Controller-only plugin object: folds reports into records, keeps the results file current, renders the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import options
from .records import RecordBuilder
from .results import ResultsWriter


class ResultsCollector:
    """Registered only on the controller (pytest-xdist workers send their reports here), like pytest-html."""

    def __init__(self, config: pytest.Config, writer: ResultsWriter) -> None:
        self.config = config
        self.writer = writer
        self.builder = RecordBuilder()
        self.html_path = Path(config.getoption(options.CONFORMANCE_HTML))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self.builder.add(report)
        if record is not None:
            self.writer.add(record)

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
