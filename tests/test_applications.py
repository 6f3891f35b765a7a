"""Further applications on a vendor's token (VendorRuntime.applications, executor/applications.py), on real SoftHSM:
separate processes on the same token, their own login state, no call trace of their own, gone with the vendor."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from conformance.checks.test_login import test_logout_is_per_application as logout_is_per_application
from conformance.vendor.profile import load_profile
from conformance.executor.parent import ExecutorError
from conformance.vendor.runtime import VendorRuntime, start

from faults import build_shim, faulty_profile

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["softhsm", "softhsm-spy"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> VendorRuntime:
    profile = load_profile(REPO / "conformance" / "profiles" / f"{request.param}.toml")
    if profile.module is None:
        pytest.skip("SoftHSM is not installed")
    vendor = start(profile, tmp_path)
    yield vendor
    vendor.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_applications_are_separate_processes_on_one_token(runtime: VendorRuntime) -> None:
    """UG §2.5: an application is a process. The siblings are other processes, logged in on their own: each gets
    through its rounds (one at a time here: no race), even right after this worker's executor has logged in."""
    executors = runtime.applications(3)
    assert executors[0] is runtime.executor
    pids = [e.pids[-1] for e in executors]
    assert len(set(pids)) == 3 and os.getpid() not in pids
    for executor in executors:
        answer = executor.login_rounds(3, 0, 30)
        assert answer.error is None and answer.done == 3, answer
    assert runtime.applications(2) == executors[:2]  # kept for the run, not started again


def test_siblings_write_no_call_trace(runtime: VendorRuntime) -> None:
    """A sibling's calls (its C_Login with the PIN among them) never reach the worker's spy trace, whose per-check
    slices are what reports link; and it writes no trace file of its own."""
    if runtime.provisioned.trace_log is None:
        pytest.skip("this set-up has no call trace")
    log = Path(runtime.provisioned.trace_log)
    sibling = runtime.applications(2)[1]
    before = log.stat().st_size
    assert sibling.login_rounds(2, 0, 30).error is None
    assert log.stat().st_size == before
    assert sorted(p.name for p in log.parent.iterdir() if p.name.startswith("spy")) == [log.name]


def test_siblings_stop_with_the_vendor(runtime: VendorRuntime) -> None:
    """Nothing outlives the vendor: stop() ends every sibling process too."""
    sibling = runtime.applications(2)[1]
    pid = sibling.pids[-1]
    runtime.stop()
    assert not _alive(pid)


@pytest.fixture
def shim_runtime(tmp_path: Path) -> VendorRuntime:
    """SoftHSM behind the fault shim (tests/native/faultshim.c), no fault armed: tests arm one for the siblings."""
    module = load_profile(REPO / "conformance" / "profiles" / "softhsm.toml").module
    if module is None or not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("needs SoftHSM and a C compiler (apt-get install softhsm2 gcc)")
    (tmp_path / "shim").mkdir()
    shim = build_shim(tmp_path / "shim")
    vendor = start(load_profile(faulty_profile(tmp_path / "faulty.toml", shim, module)), tmp_path / "run")
    yield vendor
    vendor.stop()


class _Steps:
    """What the check's `applications` fixture offers, straight on a VendorRuntime (no pytest item needed)."""

    def __init__(self, runtime: VendorRuntime) -> None:
        self.runtime = runtime

    def step(self, i: int, op: str) -> str:
        return self.runtime.applications(i + 1)[i].app_step(op, 30)


def test_logout_check_fails_where_login_state_is_token_wide(shim_runtime: VendorRuntime) -> None:
    """login.logout_is_per_application can fail: behind the fault shim, every login of the second process is
    refused as if it were a second login of the first (CKR_USER_ALREADY_LOGGED_IN), as on a module whose login
    state is token-wide; the check names the refused login. The same SoftHSM without the fault passes it."""
    logout_is_per_application(_Steps(shim_runtime))  # sound: passes
    for executor in shim_runtime.applications(2):
        executor.app_step("end", 30)
    # Only the sibling gets the fault (it is started now, with the provisioned sibling environment).
    shim_runtime.siblings.pop().close()
    shim_runtime.provisioned = replace(shim_runtime.provisioned, sibling_env={"CONFORMANCE_FAULTS": "C_Login=rv:0x100"})
    with pytest.raises(pytest.fail.Exception, match="process B's login gave UserAlreadyLoggedIn"):
        logout_is_per_application(_Steps(shim_runtime))


@pytest.mark.parametrize(("fault", "status"), [("segv", "crashed"), ("hang", "hung")])
def test_a_sibling_that_dies_or_stalls_is_told_apart(shim_runtime: VendorRuntime, fault: str, status: str) -> None:
    """A further process whose module segfaults in C_Login is `crashed`, one stuck in it is `hung` (the
    `applications` fixture records that status); the worker's own executor is untouched."""
    shim_runtime.provisioned = replace(shim_runtime.provisioned, sibling_env={"CONFORMANCE_FAULTS": f"C_Login={fault}"})
    sibling = shim_runtime.applications(2)[1]
    with pytest.raises(ExecutorError) as caught:
        sibling.login_rounds(1, 0, 2)
    assert caught.value.outcome == status
    assert shim_runtime.executor.login_rounds(1, 0, 30).error is None
