"""Outputs beside the results JSON: live progress lines, JUnit properties and pytest-html extras."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance.plugin.progress import Progress

CHECK = "conformance/checks/test_login.py::test_{}[softhsm]"
TESTS = Path(__file__).resolve().parent


def fake_report(nodeid: str, when: str, vendor: str = "softhsm", worker: str | None = None) -> SimpleNamespace:
    """A stand-in for a TestReport carrying the plugin's check metadata (FakeReport)."""
    node = SimpleNamespace(gateway=SimpleNamespace(id=worker)) if worker else None
    meta = {"check": "login.x", "vendor": vendor, "layer": "module"}
    return SimpleNamespace(nodeid=nodeid, when=when, conformance=meta, node=node)


def test_progress_counts_checks_per_vendor_once() -> None:
    """Totals come from the collected check ids, per vendor; a second xdist worker's identical list is not added."""
    progress = Progress(SimpleNamespace(pluginmanager=None), interval=3600, vendors=["softhsm"])
    ids = [CHECK.format("a"), CHECK.format("b"), "tests/test_other.py::test_c"]
    progress.pytest_xdist_node_collection_finished(None, ids)
    progress.pytest_xdist_node_collection_finished(None, ids)
    assert progress.total == {"softhsm": 2}


def test_progress_counts_parametrized_checks_under_their_vendor() -> None:
    """A parametrized check's id joins the vendor with its own parameters (test_one_shot[softhsm-spy-sha1]): it
    counts under that vendor, the longest selected name that fits (softhsm-spy, not softhsm)."""
    progress = Progress(SimpleNamespace(pluginmanager=None), interval=3600, vendors=["softhsm", "softhsm-spy"])
    progress._count(["conformance/checks/test_digest.py::test_one_shot[softhsm-spy-sha1]",
                     "conformance/checks/test_digest.py::test_one_shot[softhsm-sha1]",
                     "conformance/checks/test_digest.py::test_one_shot[sha224-softhsm]",
                     "conformance/checks/test_login.py::test_x[softhsm-spy]"])
    assert progress.total == {"softhsm-spy": 2, "softhsm": 2}


def test_progress_line_shows_done_and_running() -> None:
    """The line names each vendor's done/total and the tests running on each worker."""
    progress = Progress(SimpleNamespace(pluginmanager=None), interval=3600, vendors=["softhsm"])
    progress._count([CHECK.format("a"), CHECK.format("b")])
    progress.pytest_runtest_logreport(fake_report(CHECK.format("a"), "setup", worker="gw0"))
    progress.pytest_runtest_logreport(fake_report(CHECK.format("a"), "teardown", worker="gw0"))
    progress.pytest_runtest_logreport(fake_report(CHECK.format("b"), "setup", worker="gw1"))
    assert progress.line() == "pkcs11-conformance: softhsm 1/2 · running test_b[softhsm]"


@pytest.fixture(scope="module")
def junit_and_html(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One real SoftHSM run of the provider checks with a faulty provider, writing JUnit XML and pytest-html."""
    tmp = tmp_path_factory.mktemp("outputs")
    profile = TESTS.parent / "conformance" / "profiles" / "softhsm.toml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "--pyargs", "conformance.checks", "-k", "provider and not stress", "-q",
           "-p", "no:cacheprovider", f"--vendor-file={profile}", "--sut=faulty_providers:never_closes",
           f"--conformance-json={tmp / 'r.json'}", f"--conformance-html={tmp / 'r.html'}", f"--basetemp={tmp / 'bt'}",
           f"--junitxml={tmp / 'junit.xml'}", f"--html={tmp / 'pytest.html'}", "--self-contained-html"]
    subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    return tmp / "junit.xml", tmp / "pytest.html"


def test_junit_carries_check_vendor_and_layer(junit_and_html: tuple[Path, Path]) -> None:
    """Every check's <testcase> in --junitxml has check, vendor and layer properties."""
    root = ET.parse(junit_and_html[0]).getroot()
    cases = root.iter("testcase")
    props = [{p.get("name"): p.get("value") for p in case.iter("property")} for case in cases]
    assert props and all({"check", "vendor", "layer"} <= set(p) for p in props)
    assert {p["vendor"] for p in props} == {"softhsm"}


def test_pytest_html_rows_carry_vendor_layer_and_schedule(junit_and_html: tuple[Path, Path]) -> None:
    """--html gets Vendor and Layer columns, the conformance extra, and the minimal schedule of a failed scenario."""
    page = junit_and_html[1].read_text(encoding="utf-8")
    assert "<th>Vendor</th>" in page and "<th>Layer</th>" in page
    assert "minimal schedule" in page and "conformance" in page
