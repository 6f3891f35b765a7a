"""Further applications on a vendor's token (VendorRuntime.applications, engine/applications.py), on real SoftHSM:
separate processes on the same token, their own login state, no call trace of their own, gone with the vendor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conformance.profile import load_profile
from conformance.runtime import VendorRuntime, start

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["softhsm", "softhsm-spy"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> VendorRuntime:
    profile = load_profile(REPO / "vendors" / f"{request.param}.toml")
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
        answer = executor.ask("login_rounds", 30, rounds=3, start_at=0)
        assert answer["error"] is None and answer["done"] == 3, answer
    assert runtime.applications(2) == executors[:2]  # kept for the run, not started again


def test_siblings_write_no_call_trace(runtime: VendorRuntime) -> None:
    """A sibling's calls (its C_Login with the PIN among them) never reach the worker's spy trace, whose per-check
    slices are what reports link; and it writes no trace file of its own."""
    if runtime.provisioned.trace_log is None:
        pytest.skip("this set-up has no call trace")
    log = Path(runtime.provisioned.trace_log)
    sibling = runtime.applications(2)[1]
    before = log.stat().st_size
    assert sibling.ask("login_rounds", 30, rounds=2, start_at=0)["error"] is None
    assert log.stat().st_size == before
    assert sorted(p.name for p in log.parent.iterdir() if p.name.startswith("spy")) == [log.name]


def test_siblings_stop_with_the_vendor(runtime: VendorRuntime) -> None:
    """Nothing outlives the vendor: stop() ends every sibling process too."""
    sibling = runtime.applications(2)[1]
    pid = sibling.pids[-1]
    runtime.stop()
    assert not _alive(pid)
