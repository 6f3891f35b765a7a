"""Outputs beside the results JSON: pytest-html and JUnit XML (each check's vendor, check id and layer travel with
its report; pytest-html rows carry the outcome detail and the minimal schedule as extras), and live progress.
Registered like the plugin (pytest11 entry point)."""

from __future__ import annotations

import html
import json
from typing import Any, Generator

import pytest

from . import markers
from ..engine.schedule import Schedule
from ..pins import redact
from .state import STATE
from .progress import Progress
from ..results.records import PROPERTY, check_properties


def pytest_sessionstart(session: pytest.Session) -> None:
    # Not in pytest_configure: the plugin's configure (trylast) has to have chosen the vendors first.
    config = session.config
    state = config.stash.get(STATE, None)
    if state is not None and state.profiles and not hasattr(config, "workerinput"):
        config.pluginmanager.register(Progress(config), "conformance.progress")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Plain JUnit <property> entries (check, vendor, layer) beside the plugin's own metadata."""
    for item in items:
        if item.get_closest_marker(markers.CHECK) is None:
            continue
        meta = next((v for k, v in item.user_properties if k == PROPERTY), None)
        if meta is not None:
            item.user_properties += [("check", meta["check"]), ("vendor", meta["vendor"]), ("layer", meta["layer"])]


def _program(meta: dict[str, Any]) -> str | None:
    rep = meta.get("reproducer")
    if not rep:
        return None
    family = meta["check"].split(".", 1)[1] if meta["check"].startswith("scenario.") else "provider"
    return Schedule.from_steps(family, rep["schedule"]).program()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.when != "call" or not item.config.pluginmanager.hasplugin("html"):
        return report
    meta = check_properties(report)
    if meta is None:
        return report
    from pytest_html import extras  # only with pytest-html active

    secrets = item.config.stash[STATE].secrets
    detail = {k: meta.get(k) for k in ("check", "vendor", "layer", "spec", "observed", "deviations", "note")}
    report.extras = [*getattr(report, "extras", []),
                     extras.json(json.loads(redact(json.dumps(detail, default=str), secrets)), name="conformance")]
    program = _program(meta)
    if program:
        report.extras.append(extras.text(redact(program, secrets), name="minimal schedule"))
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(1, "<th>Vendor</th>")
    cells.insert(2, "<th>Layer</th>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    meta = check_properties(report) or {}
    cells.insert(1, f"<td>{html.escape(str(meta.get('vendor', '')))}</td>")
    cells.insert(2, f"<td>{html.escape(str(meta.get('layer', '')))}</td>")
