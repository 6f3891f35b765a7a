"""Live progress on long runs, on the controller: per vendor, checks done / total and what is running now.

A line at most every PROGRESS_INTERVAL_S seconds (short runs print nothing extra); it reads the same under
pytest-xdist, where the controller learns of each worker's test from its log-start event.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from .meta import carried_by
from .state import STATE

PROGRESS_INTERVAL_S = 10.0
_PARAMS = re.compile(r"\[([^\]\[]+)\]$")


def vendor_in(nodeid: str, vendors: list[str]) -> str | None:
    """The vendor a check's nodeid names: its parametrize id is the vendor's name, or that name joined with the
    check's own parameters by "-" (test_one_shot[softhsm-spy-sha1]); the longest selected name that fits wins
    (softhsm-spy over softhsm)."""
    m = _PARAMS.search(nodeid)
    if m is None:
        return None
    ids = f"-{m.group(1)}-"
    return max((v for v in vendors if f"-{v}-" in ids), key=len, default=None)


class Progress:
    def __init__(self, config: pytest.Config, interval: float = PROGRESS_INTERVAL_S,
                 vendors: list[str] | None = None) -> None:
        self.config = config
        self.vendors = vendors  # the selected vendors' names; by default the run's (config.stash)
        self.interval = interval
        self.total: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.running: dict[str, str] = {}  # worker (or "main") -> nodeid
        self._last = time.monotonic()

    def _count(self, nodeids: list[str]) -> None:
        if self.total:
            return  # every xdist worker collects the same items; count once
        vendors = self.vendors
        if vendors is None:
            state = self.config.stash.get(STATE, None)
            vendors = list(state.profiles) if state is not None else []
        for nodeid in nodeids:
            if "checks/test_" in nodeid.replace("\\", "/") and (vendor := vendor_in(nodeid, vendors)):
                self.total[vendor] = self.total.get(vendor, 0) + 1

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._count([item.nodeid for item in session.items])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._count(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        worker = getattr(getattr(report, "node", None), "gateway", None)
        key = worker.id if worker is not None else "main"
        if report.when == "setup":
            self.running[key] = report.nodeid
        if report.when != "teardown":
            return
        meta = carried_by(report)
        if meta is not None:
            self.done[meta.vendor] = self.done.get(meta.vendor, 0) + 1
        self.running.pop(key, None)
        if time.monotonic() - self._last >= self.interval:
            self._last = time.monotonic()
            self._write()

    def line(self) -> str:
        parts = [f"{v} {self.done.get(v, 0)}/{n}" for v, n in self.total.items()]
        now = sorted({nodeid.split("::")[-1] for nodeid in self.running.values()})
        return "pkcs11-conformance: " + ", ".join(parts) + (f" · running {', '.join(now)}" if now else "")

    def _write(self) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.total:
            if self.config.get_terminal_writer().width_of_current_line:  # after pytest's progress dots
                reporter.write("\n")
            reporter.write_line(self.line())
