"""The plugin end to end: inner pytest runs against the real SoftHSM, judged by the results JSON they write."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

import conformance.checks
from conformance import RESULTS_SCHEMA
from conformance.vendor.profile import load_profile

from fake_checks import CRASHING_CHECK, FAKE_CHECKS, HARNESS_BUG_CHECKS

CHECKS = ("--pyargs", "conformance.checks")
RUN_KEYS = {"id", "started", "finished", "harness_version", "python_pkcs11_version", "python", "platform",
            "hypothesis_profile", "sut"}
RUN_EXTENSIONS = {"exit_status"}  # pytest's exit status: tells an interrupted run from one that crashed
VENDOR_KEYS = {"module", "library", "token", "mechanisms"}
# Extensions of the contract: missing capabilities (checks that need them skip) and the wrapper stack.
VENDOR_EXTENSIONS = {"capabilities_missing", "characterised", "evidence", "stack", "timing"}
# How a run that got to judge the vendor ends: every check passed, or some check failed (a finding, not a harness fault).
RAN = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
RESULT_KEYS = {"check", "vendor", "layer", "outcome", "observed", "reason", "spec", "duration_s", "reproducer", "trace"}
# Extensions: the declarations that applied, the behaviour signature (what happened, whatever was declared).
RESULT_EXTENSIONS = {"deviations", "behaviour"}


@dataclass(frozen=True)
class InnerRun:
    """One finished inner run: pytester's result, the results JSON it wrote, and its --basetemp."""

    result: pytest.RunResult
    doc: Any
    basetemp: Path

    @property
    def output(self) -> str:
        return "\n".join(self.result.outlines + self.result.errlines)

    def by_check(self) -> dict[str, dict[str, Any]]:
        return {r["check"]: r for r in self.doc["results"]}


# The inner runs this module judges; each costs seconds, so each is made once and shared by the tests that read it.
# serial/parallel leave out `concurrency` checks: their outcomes may differ from run to run (races, stress), and what
# is judged here is the harness carrying every result across xdist workers, not the checks' determinism.
DETERMINISTIC = ("-m", "not concurrency")
RUNS: dict[str, dict[str, Any]] = {
    "serial": {"args": (*CHECKS, *DETERMINISTIC, "-n", "0")},
    "parallel": {"args": (*CHECKS, *DETERMINISTIC, "-n", "2")},
    "sut": {"args": (*CHECKS, "-m", "sut")},
    "fakes": {"args": ("-v",), "files": {"test_fake_checks": FAKE_CHECKS}},
    "crash": {"args": ("--check-timeout=3",), "files": {"test_fake_crash": CRASHING_CHECK}},
    "ours": {"args": (), "files": {"test_fake_ours": HARNESS_BUG_CHECKS}},
}


@pytest.fixture(scope="module")
def _finished_runs() -> dict[str, InnerRun]:
    """Inner runs already made in this module (per process: each xdist worker makes its own)."""
    return {}


@pytest.fixture
def inner_run(_finished_runs, pytester, run_inner, softhsm_profile, load_json) -> Callable[[str], InnerRun]:
    """The named inner run on SoftHSM (see RUNS), made in this test's pytester dir unless an earlier test made it."""

    def get(name: str) -> InnerRun:
        if name not in _finished_runs:
            spec = RUNS[name]
            if spec.get("files"):
                pytester.makepyfile(**spec["files"])
            out = pytester.path / "out" / "results.json"
            basetemp = pytester.path / "bt"
            result = run_inner(f"--vendor-file={softhsm_profile}", f"--conformance-json={out}",
                               f"--conformance-html={out.with_name('report.html')}", f"--basetemp={basetemp}",
                               *spec["args"])
            assert out.exists(), "\n".join(result.outlines + result.errlines)
            _finished_runs[name] = InnerRun(result, load_json(out), basetemp)
        return _finished_runs[name]

    return get


def outcomes(doc: Any) -> set[tuple[str, str, str, str]]:
    return {(r["check"], r["vendor"], r["outcome"], json.dumps(r["observed"], sort_keys=True)) for r in doc["results"]}


def test_results_json_follows_the_contract(inner_run):
    """A real run writes schema results/1 with exactly the contract's run, vendor and result keys."""
    run = inner_run("serial")
    assert run.result.ret in RAN, run.output
    doc = run.doc
    assert set(doc) == {"schema", "run", "vendors", "results"}
    assert doc["schema"] == RESULTS_SCHEMA
    assert set(doc["run"]) == RUN_KEYS | RUN_EXTENSIONS
    assert doc["run"]["finished"] is not None
    assert doc["run"]["sut"] == "conformance.refsession:reference_session"
    assert set(doc["vendors"]) == {"softhsm"}
    softhsm = doc["vendors"]["softhsm"]
    assert set(softhsm) == VENDOR_KEYS | VENDOR_EXTENSIONS
    assert Path(softhsm["module"]).name == "libsofthsm2.so"
    assert isinstance(softhsm["library"], dict) and isinstance(softhsm["token"], dict)
    assert softhsm["token"]["label"] == "conformance"
    assert isinstance(softhsm["mechanisms"], int) and softhsm["mechanisms"] > 0
    assert len(doc["results"]) >= 10
    for record in doc["results"]:
        assert RESULT_KEYS <= set(record), record  # the contract's keys; extensions may follow
        assert set(record) - RESULT_KEYS <= RESULT_EXTENSIONS, record
        assert record["vendor"] == "softhsm"


def test_xdist_gives_the_same_results(inner_run):
    """-n 2 gives the same (check, vendor, outcome, observed) set as -n 0."""
    serial, parallel = inner_run("serial"), inner_run("parallel")
    assert serial.result.ret in RAN, serial.output
    assert parallel.result.ret == serial.result.ret, parallel.output
    assert outcomes(parallel.doc) == outcomes(serial.doc)
    assert len(parallel.doc["results"]) == len(serial.doc["results"])


def test_passing_check_is_passed(inner_run):
    """A check that returns normally is recorded as passed with its declared layer and spec."""
    record = inner_run("fakes").by_check()["fake.passes"]
    assert (record["outcome"], record["layer"], record["spec"], record["vendor"]) == ("passed", "module", "x", "softhsm")


def test_observed_value_lands_in_result(inner_run):
    """The value given to the observe fixture is the result's "observed"; checks that observe nothing have null.
    fake.passes prints (and writes to fd 1) first: the module process's answers have a stdout of their own, so
    what a check body or the module prints shifts no answer (it once moved every later check's value by one)."""
    results = inner_run("fakes").by_check()
    assert results["fake.passes"]["observed"] == {"seen": ["ok", 1]}
    assert results["fake.fails"]["observed"] is None


def test_failing_check_is_failed(inner_run):
    """A failing assertion is recorded as failed, keeps the check's layer, and gives the failure as reason."""
    record = inner_run("fakes").by_check()["fake.fails"]
    assert (record["outcome"], record["layer"]) == ("failed", "binding")
    assert "made to fail" in record["reason"]


def test_skipped_check_is_skipped_with_reason(inner_run):
    """pytest.skip("why") is recorded as skipped with reason "why"."""
    record = inner_run("fakes").by_check()["fake.skips"]
    assert (record["outcome"], record["reason"]) == ("skipped", "why")


def test_strict_xfail_that_fails_is_xfailed(inner_run):
    """A strict xfail whose check fails is recorded as xfailed with the xfail reason."""
    record = inner_run("fakes").by_check()["fake.xfails"]
    assert (record["outcome"], record["layer"], record["reason"]) == ("xfailed", "provider", "known to fail")


def test_strict_xfail_that_passes_is_xpassed(inner_run):
    """A strict xfail whose check passes is recorded as xpassed, with the xfail reason."""
    record = inner_run("fakes").by_check()["fake.xpasses"]
    assert (record["outcome"], record["reason"]) == ("xpassed", "expected to fail")


def test_fixture_setup_error_is_harness_error(inner_run):
    """A fixture that raises during setup is an error of layer "harness", reason naming the setup phase."""
    record = inner_run("fakes").by_check()["fake.setup_error"]
    assert (record["outcome"], record["layer"]) == ("error", "harness")
    assert record["reason"].startswith("setup:") and "fixture broke" in record["reason"]


def test_teardown_error_after_pass_is_harness_error(inner_run):
    """A check that passed but whose fixture teardown raised is an error of layer "harness"."""
    record = inner_run("fakes").by_check()["fake.teardown_error"]
    assert (record["outcome"], record["layer"]) == ("error", "harness")
    assert record["reason"].startswith("teardown:") and "teardown broke" in record["reason"]


def test_plain_tests_are_not_results(inner_run):
    """A test without the check marker runs but gets no result."""
    run = inner_run("fakes")
    run.result.stdout.fnmatch_lines(["*::test_not_a_check PASSED*"])
    assert set(run.by_check()) == {"fake.passes", "fake.fails", "fake.skips", "fake.xfails", "fake.xpasses",
                                   "fake.setup_error", "fake.teardown_error", "fake.echoes_pin"}


def test_results_written_when_a_check_fails(inner_run):
    """A run with failing checks exits 1 and still writes the complete results JSON, marked finished."""
    run = inner_run("fakes")
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED, run.output
    assert run.doc["run"]["finished"] is not None
    assert len(run.doc["results"]) == 8


def test_pin_never_reaches_the_results(inner_run, softhsm_profile):
    """A PIN that a check observes or puts in its failure message is redacted in the results JSON."""
    pin = load_profile(softhsm_profile).user_pin.reveal()
    record = inner_run("fakes").by_check()["fake.echoes_pin"]
    assert record["outcome"] == "failed"
    assert pin not in record["reason"]
    assert pin not in json.dumps(record["observed"])


def test_crashing_and_hanging_checks_are_isolated(inner_run):
    """Check bodies run in the vendor's executor child: one that kills its process is `crashed` (with the
    signal or exit code), one that never returns is `hung` after --check-timeout with every thread's stack —
    and the run goes on, without xdist, to the next check on a fresh child."""
    run = inner_run("crash")
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED, run.output
    records = run.by_check()
    assert {c: r["outcome"] for c, r in records.items()} == {
        "fake.crashes": "crashed", "fake.segfaults": "crashed", "fake.hangs": "hung", "fake.runs_after": "passed"}
    assert "exit 70" in records["fake.crashes"]["reason"]
    assert "SIGSEGV" in records["fake.segfaults"]["reason"]
    assert "did not finish in 3 s" in records["fake.hangs"]["reason"]
    assert "test_hangs" in records["fake.hangs"]["reason"]  # faulthandler's stack of the stuck thread


def declared_checks(layer: str) -> set[str]:
    """Ids of the checks in conformance/checks that declare this layer in their check marker."""
    pattern = re.compile(rf'@pytest\.mark\.check\(\s*"([^"]+)",\s*layer="{layer}"')
    return {m for path in Path(conformance.checks.__file__).parent.glob("test_*.py")
            for m in pattern.findall(path.read_text(encoding="utf-8"))}


def test_sut_marker_selects_exactly_provider_checks(inner_run):
    """-m sut runs exactly the checks of layer "provider" (all of them, nothing else)."""
    run = inner_run("sut")
    assert run.result.ret in RAN, run.output
    checks = [r["check"] for r in run.doc["results"]]
    assert len(checks) == len(set(checks))
    assert set(checks) == declared_checks("provider")


def test_markers_are_registered(run_inner):
    """pytest --markers lists the plugin's sut, concurrency, destructive and check markers."""
    result = run_inner("--markers")
    assert result.ret == pytest.ExitCode.OK
    for name in ("check", "sut", "concurrency", "destructive"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{name}*"])


@pytest.mark.parametrize("name", ["serial", "parallel"])
def test_token_directories_live_under_basetemp(name, inner_run):
    """The run's SoftHSM token directories (per worker) are made under --basetemp and their tokens/ removed; the
    preflight's scratch directory (made there too) is gone with its token."""
    run = inner_run(name)
    confs = sorted(run.basetemp.glob("**/softhsm2.conf"))
    assert any(p.parent.parent.name.startswith("vendor-softhsm") for p in confs), confs
    assert not list(run.basetemp.glob("pkcs11-conformance-preflight-*")), "the preflight's scratch was left behind"
    for conf in confs:
        tokendir = Path(re.search(r"^directories\.tokendir = (.+)$", conf.read_text(), re.M).group(1))
        assert tokendir.is_relative_to(run.basetemp), tokendir
        assert not tokendir.exists(), f"{tokendir} was left behind"


@pytest.mark.parametrize("workers", [(), ("-n", "2")])
def test_run_stopped_by_maxfail_is_not_finished(pytester, run_inner, softhsm_profile, load_json, workers):
    """-x ends the run before every check ran — with exit status 1 (checks failed) in one process, as interrupted
    (2) under pytest-xdist: either way the results file is not stamped `finished`, so the gate refuses it and the
    report says it stopped early."""
    pytester.makepyfile(test_fake_checks=FAKE_CHECKS)
    out = pytester.path / "out" / "results.json"
    result = run_inner(f"--vendor-file={softhsm_profile}", f"--conformance-json={out}",
                       f"--conformance-html={out.with_name('report.html')}", "-x", *workers)
    expected = pytest.ExitCode.INTERRUPTED if workers else pytest.ExitCode.TESTS_FAILED
    assert result.ret == expected, "\n".join(result.outlines)
    doc = load_json(out)
    assert doc["run"]["finished"] is None and doc["run"]["exit_status"] == expected


def test_harness_code_raising_in_a_check_is_our_error(inner_run):
    """"Our own bugs are `error`, never a vendor's failure": a check body (run in the module's process) that breaks
    in the harness's own code is error, layer harness, the reason naming the exception and the place in the
    package — the check's declared layer (module) is not blamed."""
    record = inner_run("ours").by_check()["fake.harness_bug"]
    assert (record["outcome"], record["layer"]) == ("error", "harness"), record
    assert "the harness broke running the check: KeyError" in record["reason"], record["reason"]
    assert "conformance/engine/schedule.py" in record["reason"], record["reason"]


def test_harness_bug_is_not_hidden_by_a_declared_failure(inner_run):
    """A declared failure (strict xfail) stands for the finding it documents: our own bug in the same check is
    still reported, as error, not taken for the declared failure."""
    record = inner_run("ours").by_check()["fake.harness_bug_declared"]
    assert (record["outcome"], record["layer"]) == ("error", "harness"), record


def test_harness_code_raising_in_pytest_is_our_error(inner_run):
    """The same in a check that runs in the pytest process (it drives the executor itself)."""
    record = inner_run("ours").by_check()["fake.harness_bug_in_pytest"]
    assert (record["outcome"], record["layer"]) == ("error", "harness"), record
    assert "KeyError" in record["reason"], record["reason"]


def test_what_the_binding_lacks_is_a_skip_with_its_reason(inner_run):
    """"What cannot be done on an old binding is a skip with its reason": the binding accessor's BindingLacks
    ends the check skipped, saying what is missing and since which release it exists."""
    record = inner_run("ours").by_check()["fake.binding_lacks"]
    assert record["outcome"] == "skipped", record
    assert "exposes no session handle" in record["reason"] and "since 0.9.1" in record["reason"], record["reason"]


def test_a_pkcs11_error_in_a_check_stays_the_checks_finding(inner_run):
    """The classification does not swallow findings: a pkcs11 exception in a check body is failed, its layer
    the check's own."""
    record = inner_run("ours").by_check()["fake.module_error_in_check"]
    assert (record["outcome"], record["layer"]) == ("failed", "module"), record
    assert record["reason"].startswith("Failed: DeviceError"), record["reason"]
