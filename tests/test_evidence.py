"""Blocked versus slow by evidence (issue 11, item 2): the tap in front of the module (native/tap.c) sees which call
each thread is inside and what the module returned; the executor decides "blocked", "slow" and "hung" from that
before any timeout (executor/waiting.py), and a call held inside the module is the module's finding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path


from conformance.executor.waiting import Waiter
from conformance.live.calls import InCall, rv_name
from conformance.vendor.provisioning.native import build
from faults import build_shim, faulty_profile


class FakeCalls:
    """A small fake of the tap's evidence: where the actor's thread is, step by step as the waiter looks."""

    def __init__(self, *positions: InCall) -> None:
        self.positions = list(positions)

    def where(self, thread: int) -> InCall:
        return self.positions.pop(0) if len(self.positions) > 1 else self.positions[0]


def never(index: int, seconds: float) -> bool:
    return False


def after(looks: int):
    """A step that returns on the `looks`-th wait."""
    count = [0]

    def finished(index: int, seconds: float) -> bool:
        count[0] += 1
        return count[0] >= looks

    return finished


OUTSIDE = InCall(None, 0.0, 5)


def test_no_call_outside_the_module_is_blocked():
    """A call expected to block that made no PKCS#11 call and is outside the module is waiting above it: blocked,
    and the decision says it came from the tap."""
    decision = Waiter(FakeCalls(OUTSIDE), never, 0.01, 0.02).expected_block(0, 1, OUTSIDE)
    assert not decision.done and decision.inside is None
    assert decision.evidence.startswith("tap: no PKCS#11 call") and "outside the module" in decision.evidence


def test_a_call_in_the_module_is_not_blocked_but_waited_for():
    """A call expected to block that is inside the module got past every lock: it is waited for as a call that
    returns (here on the second wait), not reported blocked because the module is slow."""
    calls = FakeCalls(InCall("C_FindObjectsInit", 0.02, 6))
    assert Waiter(calls, after(2), 0.01, 0.02).expected_block(0, 1, OUTSIDE).done


def test_an_expected_block_held_inside_the_module_is_hung_not_blocked():
    """A call the model expected to block that got into the module and never came back out is not a block (it is
    past every lock): the decision says hung, naming the function the module holds."""
    decision = Waiter(FakeCalls(InCall("C_FindObjectsInit", 0.03, 6)), never, 0.01, 0.02).expected_block(0, 1, OUTSIDE)
    assert decision.hung and decision.inside == "C_FindObjectsInit" and not decision.done


def test_one_call_that_never_returns_is_held_by_the_module():
    """A call inside one PKCS#11 function without progress for a step timeout is hung, and the decision names the
    function the module holds."""
    inside = InCall("C_FindObjects", 0.02, 6)
    decision = Waiter(FakeCalls(inside), never, 0.01, 0.02).returns(0, 1, inside)
    assert not decision.done and decision.inside == "C_FindObjects"
    assert decision.evidence == "tap: inside C_FindObjects for 0.0 s without returning"


def test_a_step_that_keeps_making_calls_is_progressing():
    """A step whose calls keep returning (a long search on a slow module) is waited for past one step timeout."""
    calls = FakeCalls(*(InCall("C_FindObjects", 0.01, 6 + i) for i in range(4)))
    assert Waiter(calls, after(4), 0.01, 0.02).returns(0, 1, InCall(None, 0.0, 5)).done


def test_without_a_tap_timing_decides_and_says_so():
    """No tap in the stack: the block window and the step timeout decide, and the evidence says it was timing."""
    waiter = Waiter(None, never, 0.01, 0.02)
    assert waiter.expected_block(0, 1, None).evidence.startswith("timing: ")
    decision = waiter.returns(0, 1)
    assert decision.evidence.startswith("timing: ") and decision.inside is None


def test_rv_names_read_like_the_spec():
    """Reasons quote return codes by their pkcs11t.h names (PKCS#11 v3.0 §5.1)."""
    assert rv_name(0x90) == "CKR_OPERATION_ACTIVE" and rv_name(0x12345) == "CKR 0x12345"


def test_a_refusal_the_binding_has_no_class_for_is_named_by_its_ckr():
    """Issue 13: "every CKR a module returns that python-pkcs11 maps only to a generic PKCS11Error is recorded by
    name" — the binding's "Unmapped error code 0x1b" becomes PKCS11Error(CKR_ACTION_PROHIBITED); a mapped class and
    a generic error without a code keep their class name."""
    import pkcs11

    from conformance.live.probes import outcome_of, refusal_name

    def refuse(exc):
        raise exc

    assert outcome_of(lambda: refuse(pkcs11.exceptions.PKCS11Error("Unmapped error code 0x1b"))) == (
        "PKCS11Error(CKR_ACTION_PROHIBITED)")
    assert refusal_name(pkcs11.exceptions.GeneralError()) == "GeneralError"
    assert refusal_name(pkcs11.exceptions.PKCS11Error("Failed to cancel operation")) == "PKCS11Error"


TAP_SCRIPT = '''
import sys, threading, time
import pkcs11
from conformance.live.calls import ModuleCalls

tap = sys.argv[1]
lib = pkcs11.lib(tap)
session = lib.get_token(token_label="conformance").open(user_pin="1234")
calls = ModuleCalls.attach(tap)
mark = calls.mark()
returned, finish = threading.Event(), threading.Event()
worker = threading.Thread(target=lambda: (session.generate_random(64), returned.set(), finish.wait()))
worker.start()
time.sleep(0.3)  # the shim holds C_GenerateRandom for 0.8 s
during = calls.where(worker.native_id)
returned.wait()
gone = calls.where(worker.native_id)  # still alive, out of the module
finish.set()
worker.join()
try:
    session.seed_random(b"entropy")
except pkcs11.exceptions.DeviceError:
    pass
log = [(c.function, c.describe(), c.thread) for c in calls.since(mark)]
print(repr((during, gone, worker.native_id, log)))
'''


def test_the_tap_sees_the_call_a_thread_is_in_and_what_the_module_returned(tmp_path: Path, softhsm_module: str):
    """The tap over a real SoftHSM (behind the fault shim, which holds C_GenerateRandom 0.8 s and answers
    C_SeedRandom with CKR_DEVICE_ERROR): while the call runs, the thread is seen inside C_GenerateRandom; after,
    outside; and the log holds each return with its CK_RV, from the thread that made it."""
    shim = build_shim(tmp_path)
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "CONFORMANCE_TAP_MODULE": str(shim),
           "CONFORMANCE_FAULT_MODULE": softhsm_module,
           "CONFORMANCE_FAULTS": "C_GenerateRandom=delay:0.8;C_SeedRandom=rv:0x30"}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "conformance", "--pin", "1234",
                    "--so-pin", "12345678"], env=env, check=True, capture_output=True)
    proc = subprocess.run([sys.executable, "-c", TAP_SCRIPT, str(build("tap"))], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    during, gone, thread, log = eval(proc.stdout.strip().splitlines()[-1], {"InCall": InCall})
    assert during.function == "C_GenerateRandom" and during.seconds > 0.1, during
    assert gone.function is None and gone.calls == during.calls, gone
    assert ("C_GenerateRandom", "C_GenerateRandom returned CKR_OK", thread) in log, log
    assert ("C_SeedRandom", "C_SeedRandom returned CKR_DEVICE_ERROR") in [entry[:2] for entry in log], log


HELD_CHECKS = '''
from pathlib import Path

import pytest

from conformance.engine.schedule import Step
from conformance.executor.protocol import CallStress

FAULTS = Path({faults!r})


@pytest.mark.check("fake.search_held_in_module", layer="provider", spec="x")
def test_search_held_in_module(play):
    FAULTS.write_text("C_FindObjects=hang!\\n")  # armed after the start-up's own searches; one shot
    play("provider", Step(0, "acquire", {{}}), Step(0, "use", {{"what": "search"}}), Step(0, "release", {{}}))


@pytest.mark.check("fake.stress_held_in_module", layer="binding", spec="x")
def test_stress_held_in_module(stress):
    FAULTS.write_text("C_GenerateRandom=hang!\\n")
    stress(CallStress(threads=2, iterations=5, calls=("random",)), rounds=1)
'''


def test_a_call_held_inside_the_module_is_the_modules_finding(tmp_path: Path, softhsm_module: str):
    """A provider scenario whose search never comes back from C_FindObjects (the shim holds it) is hung, blamed on
    the module — not on the provider whose step it was — with the tap's evidence in the reason. A stress round
    with a thread held in C_GenerateRandom is hung with the evidence quoted, but keeps its check's layer: its
    threads call the module at once, which python-pkcs11's C_Initialize(NULL) promised it they would not."""
    shim = build_shim(tmp_path)
    faults = tmp_path / "faults.txt"
    faults.write_text("")
    profile = faulty_profile(tmp_path / "faulty.toml", shim, softhsm_module, "", fault_file=faults)
    (tmp_path / "test_held.py").write_text(textwrap.dedent(HELD_CHECKS.format(faults=str(faults))))
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "test_held.py",
         f"--vendor-file={profile}", "--step-timeout=1", f"--conformance-json={out}",
         f"--conformance-html={tmp_path / 'report.html'}", f"--basetemp={tmp_path / 'bt'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    records = {r["check"]: r for r in json.loads(out.read_text())["results"]}
    held, stress = records["fake.search_held_in_module"], records["fake.stress_held_in_module"]
    assert (held["outcome"], held["layer"]) == ("hung", "module"), held
    assert "tap: inside C_FindObjects" in held["reason"], held["reason"]
    assert (stress["outcome"], stress["layer"]) == ("hung", "binding"), stress
    assert "token integrity after the crash: present and intact" in stress["reason"], stress["reason"]
    assert "the tap saw calls" in stress["reason"] and ": inside C_GenerateRandom for " in stress["reason"], stress

