"""Faulty modules mid-run, on a real dlopen'ed library: SoftHSM behind tests/native/faultshim.c, which crashes,
aborts, exits, hangs, stalls or returns CKR_DEVICE_ERROR / CKR_GENERAL_ERROR on command.

The issue: "A module that segfaults, aborts, hangs, or returns CKR_DEVICE_ERROR / CKR_GENERAL_ERROR mid-run: the
run completes, the affected checks are crashed / hung / failed with the cause, other vendors are untouched, and
results written so far survive."
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.results.schema import validate_results

from faults import FAULT_CHECKS, FAULTS, build_shim, faulty_profile, locked as _locked

pytest.importorskip("jsonschema", reason="install the test extra: pip install -e '.[test]'")

REPO = Path(__file__).resolve().parent.parent
SOFTHSM = REPO / "conformance" / "profiles" / "softhsm.toml"
CHECK_TIMEOUT = "--check-timeout=3"
RUN_TIMEOUT_S = 120

# The two-vendor runs judged below: the faulty vendor and plain SoftHSM side by side, without and with xdist.
MODES = {"serial": ("-p", "no:xdist"), "parallel": ("-n", "2")}


@dataclass(frozen=True)
class Shim:
    """The built shim and the real module it forwards to."""

    path: Path
    real_module: str


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every xdist worker of this session sees (so each inner run is made once, not per worker)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def real_module() -> str:
    from conformance.vendor.profile import load_profile

    module = load_profile(SOFTHSM).module
    if module is None:
        pytest.skip("SoftHSM is not installed")
    return module


@pytest.fixture(scope="session")
def shim(shared_dir: Path, real_module: str) -> Shim:
    """tests/native/faultshim.c compiled once per session (under a lock: workers share it)."""
    with _locked(shared_dir / "faultshim.lock"):
        target = shared_dir / "faultshim.so"
        if not target.exists():
            (shared_dir / "faultshim-build").mkdir(exist_ok=True)
            os.replace(build_shim(shared_dir / "faultshim-build"), target)
    return Shim(target, real_module)


def _env() -> dict[str, str]:
    """This environment without the outer pytest's own variables (PYTEST_XDIST_WORKER & co.)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def _command(directory: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            f"--conformance-json={directory / 'out' / 'results.json'}",
            f"--conformance-html={directory / 'out' / 'report.html'}", f"--basetemp={directory / 'bt'}", *args,
            str(directory)]  # the fake checks written there (with a vendor and no path: the shipped checks)


class Run:
    """One finished inner run: exit code, output, the results JSON, its --basetemp."""

    def __init__(self, directory: Path) -> None:
        meta = json.loads((directory / "run.json").read_text())
        self.ret, self.output = meta["ret"], meta["output"]
        self.doc = json.loads((directory / "out" / "results.json").read_text())
        self.basetemp = directory / "bt"
        self.mode = ""

    def outcomes(self, vendor: str) -> dict[str, str]:
        return {r["check"]: r["outcome"] for r in self.doc["results"] if r["vendor"] == vendor}

    def record(self, check: str, vendor: str = "faulty") -> dict[str, Any]:
        return next(r for r in self.doc["results"] if (r["check"], r["vendor"]) == (check, vendor))

    def children(self, vendor: str) -> list[Path]:
        """Executor child stderr files of the vendor's runtimes (one per child started; preflight's not included)."""
        return sorted(self.basetemp.glob(f"**/vendor-{vendor}[0-9]*/executor/child-*.stderr"))


def inner_run(directory: Path, shim: Shim, checks: str, faults: str, fault_file: bool, *args: str) -> Run:
    """CHECKS on the faulty vendor (shim with `faults`, and a fault file if asked) in a pytest subprocess in
    `directory` (module state is per process); made once, under a lock, and kept there for later tests."""
    with _locked(directory.with_suffix(".lock")):
        if not (directory / "run.json").exists():
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "test_fake_checks.py").write_text(checks, encoding="utf-8")
            profile = faulty_profile(directory / "faulty.toml", shim.path, shim.real_module, faults,
                                     fault_file=directory / "faults.txt" if fault_file else None)
            proc = subprocess.run(_command(directory, f"--vendor-file={profile}", *args), cwd=directory,
                                  env=_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
            assert (directory / "out" / "results.json").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
            (directory / "run.json").write_text(json.dumps({"ret": proc.returncode,
                                                            "output": proc.stdout[-5000:] + proc.stderr[-5000:]}))
    return Run(directory)


@pytest.fixture(params=list(MODES))
def faulty_run(request, shared_dir: Path, shim: Shim) -> Run:
    """The faulty vendor (FAULTS) and plain SoftHSM in one run of FAULT_CHECKS, without xdist and with -n 2."""
    run = inner_run(shared_dir / f"faults-{request.param}", shim, FAULT_CHECKS, FAULTS, False,
                    f"--vendor-file={SOFTHSM}", CHECK_TIMEOUT, *MODES[request.param])
    run.mode = request.param
    return run


def test_run_completes_with_valid_results(faulty_run: Run):
    """"the run completes": every check of both vendors has a result, the run is marked finished, it exits as a
    run with findings (not an internal error or interruption), and the results JSON follows the schema."""
    assert faulty_run.ret == pytest.ExitCode.TESTS_FAILED, faulty_run.output
    assert validate_results(faulty_run.doc) == []
    assert faulty_run.doc["run"]["finished"] is not None
    assert set(faulty_run.doc["vendors"]) == {"faulty", "softhsm"}
    assert len(faulty_run.outcomes("faulty")) == len(faulty_run.outcomes("softhsm")) == 8


def test_module_crash_is_crashed_with_the_signal(faulty_run: Run):
    """"the affected checks are crashed ... with the cause": a segfault, an abort() and an exit() inside the
    module's C_GenerateRandom / C_SignInit / C_VerifyInit each end that check as crashed, the reason naming
    the signal or exit code and quoting the module process's stderr (the fault and faulthandler's stack)."""
    for check, cause, fault in (("fake.random_segfaults", "(SIGSEGV)", "C_GenerateRandom -> segv"),
                                ("fake.sign_aborts", "(SIGABRT)", "C_SignInit -> abort"),
                                ("fake.verify_exits", "(exit 9)", "C_VerifyInit -> exit:9")):
        record = faulty_run.record(check)
        assert record["outcome"] == "crashed", record
        assert f"the module process died {cause}" in record["reason"], record["reason"]
        assert f"faultshim: {fault}" in record["reason"], record["reason"]
    assert "in test_random" in faulty_run.record("fake.random_segfaults")["reason"]  # faulthandler's stack


def test_module_hang_is_hung_with_the_stuck_stack(faulty_run: Run):
    """"the affected checks are ... hung": a C_SeedRandom that never returns ends the check as hung after
    --check-timeout, the reason holding the stack of the thread stuck in the module call."""
    record = faulty_run.record("fake.seed_hangs")
    assert record["outcome"] == "hung", record
    assert "did not finish in 3 s" in record["reason"]
    assert "the tap saw MainThread: inside C_SeedRandom for " in record["reason"], record["reason"]  # evidence
    assert record["layer"] == "module"
    assert "faultshim: C_SeedRandom -> hang" in record["reason"]
    assert 'test_fake_checks.py", line' in record["reason"] and "in test_seed" in record["reason"]


def test_module_error_codes_are_failed_naming_the_error(faulty_run: Run):
    """"or returns CKR_DEVICE_ERROR / CKR_GENERAL_ERROR ... failed with the cause": the check is failed (not an
    error of the harness), its reason naming the binding's exception for the code and the check's line."""
    for check, error, line in (("fake.set_attribute_device_error", "DeviceError", 'obj[Attribute.LABEL] = "y"'),
                               ("fake.copy_general_error", "GeneralError", ".copy(")):
        record = faulty_run.record(check)
        assert (record["outcome"], record["layer"]) == ("failed", "module"), record
        assert record["reason"].startswith(f"Failed: {error}"), record["reason"]
        assert line in record["reason"], record["reason"]


def test_slow_module_call_within_timeout_passes(faulty_run: Run):
    """A module call that is slow but returns within --check-timeout is not a hang: the check passes."""
    record = faulty_run.record("fake.digest_slow")
    assert record["outcome"] == "passed", record
    assert record["duration_s"] >= 1.0  # C_DigestFinal delayed 0.5 s, twice (length query, then the digest)


def test_checks_after_faults_run_on_fresh_children(faulty_run: Run):
    """"the run completes": after each crash or hang the faulty vendor's next check runs on a fresh module
    process and passes (without xdist: the first child and one more for each of the 4 dead ones, and three for the
    capability probe — C_SignInit aborts the whole probe, then the SHA256-HMAC one probed alone, and the process
    that answered the last lone probe is replaced by one that starts with the settled capabilities)."""
    assert faulty_run.record("fake.runs_after")["outcome"] == "passed"
    if faulty_run.mode == "serial":
        children = faulty_run.children("faulty")
        assert len(children) == 5 + 3, children


def test_a_capability_probe_that_crashes_the_module_is_a_missing_capability(faulty_run: Run):
    """A module that dies in one capability's try (C_SignInit aborts: hmac_sign) does not make the vendor
    unavailable: each capability is then probed alone, the one that took the process down is missing for that
    reason, and the others are what the module can do."""
    missing = faulty_run.doc["vendors"]["faulty"]["capabilities_missing"]
    assert "took the module's process down" in missing.get("hmac_sign", ""), missing
    assert "SIGABRT" in missing["hmac_sign"]
    assert not {"aes_keygen", "aes_cbc_pad", "aes_cbc", "sha256_digest"} & set(missing), missing


def test_other_vendor_is_untouched(faulty_run: Run):
    """"other vendors are untouched": plain SoftHSM in the same run passes every check, in the one module
    process each of its runtimes started (never restarted)."""
    assert set(faulty_run.outcomes("softhsm").values()) == {"passed"}, faulty_run.outcomes("softhsm")
    children = faulty_run.children("softhsm")
    assert children and all(p.name == "child-0.stderr" for p in children), children


# --- faults armed on command, mid-run ------------------------------------------------------------------------

ARMING_CHECKS = '''
import os

import pytest


def random_bytes(vendor):
    return vendor.open_session(login=False).generate_random(128)


@pytest.mark.check("fake.arms", layer="module", spec="x")
def test_arms(vendor):
    assert len(random_bytes(vendor)) == 16  # not faulted yet
    with open(os.environ["CONFORMANCE_FAULT_FILE"], "w") as fh:
        fh.write("C_GenerateRandom=segv\\n")


@pytest.mark.check("fake.armed", layer="module", spec="x")
def test_armed(vendor):
    random_bytes(vendor)


@pytest.mark.check("fake.disarms", layer="module", spec="x")
def test_disarms(vendor):
    open(os.environ["CONFORMANCE_FAULT_FILE"], "w").close()
    assert len(random_bytes(vendor)) == 16
'''


def test_fault_armed_mid_run_crashes_the_next_check(shared_dir: Path, shim: Shim):
    """"A module that segfaults ... mid-run": a fault armed through CONFORMANCE_FAULT_FILE by one check (after
    the harness's start-up, on a function that worked a moment before) crashes the next check that calls it,
    and clearing the file lets the check after that pass on a fresh module process."""
    run = inner_run(shared_dir / "faults-arming", shim, ARMING_CHECKS, "", True, CHECK_TIMEOUT, "-p", "no:xdist")
    assert run.ret == pytest.ExitCode.TESTS_FAILED, run.output
    assert validate_results(run.doc) == []
    assert run.outcomes("faulty") == {"fake.arms": "passed", "fake.armed": "crashed", "fake.disarms": "passed"}
    reason = run.record("fake.armed")["reason"]
    assert "(SIGSEGV)" in reason and "faultshim: C_GenerateRandom -> segv" in reason, reason


# The re-arming checks take `request`, so they run in the pytest process (not in the module's process, which cannot
# start while C_Initialize aborts); being checks, they keep their place between the others.
RELOAD_CHECKS = '''
from pathlib import Path

import pytest

FAULT_FILE = Path(__file__).with_name("faults.txt")


@pytest.mark.check("fake.breaks_reload", layer="module", spec="x")
def test_breaks_reload(vendor):
    FAULT_FILE.write_text("C_Initialize=abort\\nC_GenerateRandom=segv\\n")
    vendor.open_session(login=False).generate_random(128)


@pytest.mark.check("fake.reload_aborts", layer="module", spec="x")
def test_reload_aborts(vendor):
    pass


# Runs in pytest (it takes a driver fixture), so arming the fault does not need the module's process.
@pytest.mark.check("fake.rearms", layer="module", spec="x")
def test_rearm_device_error(vendor, executor):
    FAULT_FILE.write_text("C_Initialize=rv:0x30\\n")


@pytest.mark.check("fake.reload_refused", layer="module", spec="x")
def test_reload_refused(vendor):
    pass


@pytest.mark.check("fake.disarms", layer="module", spec="x")
def test_disarm(vendor, executor):
    FAULT_FILE.write_text("")


@pytest.mark.check("fake.recovers", layer="module", spec="x")
def test_recovers(vendor):
    assert len(vendor.open_session(login=False).generate_random(128)) == 16
'''


def test_module_failing_to_reload_is_the_checks_outcome(shared_dir: Path, shim: Shim):
    """"the affected checks are crashed / hung / failed with the cause": after a crash, a module that aborts
    while it is loaded afresh for the next check makes that check crashed (the signal and the module's stderr
    in the reason), one whose C_Initialize returns CKR_DEVICE_ERROR makes it failed naming DeviceError — not a
    harness traceback — and once the module loads again the checks after pass."""
    run = inner_run(shared_dir / "faults-reload", shim, RELOAD_CHECKS, "", True, CHECK_TIMEOUT, "-p", "no:xdist")
    assert run.ret == pytest.ExitCode.TESTS_FAILED, run.output
    assert validate_results(run.doc) == []
    assert run.outcomes("faulty") == {"fake.breaks_reload": "crashed", "fake.reload_aborts": "crashed",
                                      "fake.rearms": "passed", "fake.reload_refused": "failed", "fake.disarms": "passed",
                                      "fake.recovers": "passed"}
    aborted = run.record("fake.reload_aborts")["reason"]
    assert "died while loading the module (SIGABRT), before the check could run" in aborted, aborted
    assert "faultshim: C_Initialize -> abort" in aborted, aborted
    refused = run.record("fake.reload_refused")["reason"]
    assert "could not load the module for the check" in refused and "DeviceError" in refused, refused
    assert "Traceback" not in refused and "ExecutorError" not in refused, refused


# --- runs interrupted while a check hangs in the module ------------------------------------------------------

STUCK_CHECKS = '''
import pytest


@pytest.mark.check("fake.first", layer="module", spec="x")
def test_first(vendor):
    assert vendor.open_session(login=False) is not None


@pytest.mark.check("fake.second", layer="module", spec="x")
def test_second(vendor):
    assert vendor.open_session() is not None


@pytest.mark.check("fake.stuck", layer="module", spec="x")
def test_stuck(vendor):
    vendor.open_session(login=False).seed_random(b"entropy")


@pytest.mark.check("fake.never", layer="module", spec="x")
def test_never(vendor):
    pass
'''


def _as_from_a_terminal() -> None:
    """The run starts with SIGINT as a shell gives it (default action, not blocked): a signal state the test
    worker inherited (a thread's blocked mask, an ignored disposition) must not decide whether Ctrl-C arrives."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _interrupted(directory: Path, shim: Shim, sig: signal.Signals) -> tuple[int, dict[str, Any], str]:
    """Run STUCK_CHECKS on the faulty vendor; once fake.stuck is inside the hanging C_SeedRandom, send `sig` to
    the inner pytest; its exit code, the results JSON left behind, and its output."""
    directory.mkdir()
    (directory / "test_fake_stuck.py").write_text(STUCK_CHECKS, encoding="utf-8")
    profile = faulty_profile(directory / "faulty.toml", shim.path, shim.real_module, "C_SeedRandom=hang")
    # Own session: the executor child left behind by a SIGKILL is reaped with the group below.
    proc = subprocess.Popen(_command(directory, f"--vendor-file={profile}", "--check-timeout=60", "-p", "no:xdist"),
                            cwd=directory, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=_as_from_a_terminal)
    try:
        deadline = time.monotonic() + 60
        while not any("C_SeedRandom -> hang" in p.read_text(errors="replace")
                      for p in (directory / "bt").glob("vendor-faulty[0-9]*/executor/child-*.stderr")):
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the check never reached the hanging C_SeedRandom"
            time.sleep(0.1)
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=90)  # shutting down around a hung child; slow on a busy machine
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return proc.returncode, json.loads((directory / "out" / "results.json").read_text()), output


def test_sigint_while_module_hangs_keeps_results(tmp_path: Path, shim: Shim):
    """"results written so far survive": Ctrl-C (SIGINT) while a check hangs inside the module ends the run as
    interrupted, with a schema-valid results JSON holding every check finished before, marked as not finished
    (exit status 2), so neither the report nor the gate takes it for a complete run."""
    ret, doc, output = _interrupted(tmp_path / "run", shim, signal.SIGINT)
    assert ret == pytest.ExitCode.INTERRUPTED, output
    assert validate_results(doc) == []
    outcomes = {r["check"]: r["outcome"] for r in doc["results"]}
    assert outcomes == {"fake.first": "passed", "fake.second": "passed"}
    assert doc["run"]["finished"] is None
    assert doc["run"]["exit_status"] == pytest.ExitCode.INTERRUPTED


def test_sigkill_while_module_hangs_keeps_results(tmp_path: Path, shim: Shim):
    """"results written so far survive": the run killed outright (SIGKILL, no clean-up at all) while a check
    hangs inside the module leaves a schema-valid results JSON holding every check finished before."""
    ret, doc, output = _interrupted(tmp_path / "run", shim, signal.SIGKILL)
    assert ret == -signal.SIGKILL, output
    assert validate_results(doc) == []
    outcomes = {r["check"]: r["outcome"] for r in doc["results"]}
    assert outcomes == {"fake.first": "passed", "fake.second": "passed"}
    assert doc["run"]["finished"] is None
