"""Outputs beside the results JSON: pytest-html and JUnit XML (each check's vendor, check id and layer travel with
its report; pytest-html rows carry the outcome detail and the minimal schedule as extras), and live progress.
A hook module of the plugin (plugin/__init__.py)."""

from __future__ import annotations

import html
import json
from typing import Any, Generator

import pytest

from ..pins import redact, redact_data
from . import markers
from .meta import CheckMeta, carried_by, meta_of
from .progress import Progress
from .state import STATE


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
        meta = meta_of(item)
        if meta is not None:  # plain properties only: no metadata dict in the XML
            item.user_properties += [("check", meta.check), ("vendor", meta.vendor), ("layer", meta.layer)]


def _program(meta: CheckMeta) -> str | None:
    return meta.reproducer.to_schedule().program() if meta.reproducer else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.when != "call" or not item.config.pluginmanager.hasplugin("html"):
        return report
    meta = meta_of(item)
    if meta is None:
        return report
    from pytest_html import extras  # only with pytest-html active

    secrets = item.config.stash[STATE].secrets
    full = meta.to_dict()
    detail = {k: full[k] for k in ("check", "vendor", "layer", "spec", "observed", "deviations", "note")}
    report.extras = [*getattr(report, "extras", []),
                     extras.json(redact_data(json.loads(json.dumps(detail, default=str)), secrets), name="conformance")]
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
    meta = carried_by(report)
    cells.insert(1, f"<td>{html.escape(meta.vendor if meta else '')}</td>")
    cells.insert(2, f"<td>{html.escape(meta.layer if meta else '')}</td>")
