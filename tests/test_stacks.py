"""Module stacks end to end: ground truth through p11-kit (the tap), call traces through pkcs11-spy, profile
skips, and which vendors can run here. Real modules; skipped with the reason when a stack is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.vendor.profile import load_profile
from conformance.vendor.provisioning import set_up
from conformance.vendor.provisioning.requirements import missing

REPO = Path(__file__).resolve().parent.parent
VENDORS = REPO / "conformance" / "profiles"
CANARY = "canary-4711"

FAILING_LOGIN_CHECK = '''
import pytest


@pytest.mark.check("fake.fails_after_login", layer="module", spec="x")
def test_fails_after_login(vendor):
    vendor.open_session(login=True)
    assert False, "made to fail after a login"


@pytest.mark.check("fake.other", layer="module", spec="x")
def test_other(vendor):
    pass
'''


def needs(name: str) -> Path:
    profile = load_profile(VENDORS / f"{name}.toml")
    lacking = missing(profile.provisioning, profile.via)
    if profile.module is None or lacking:
        pytest.skip(f"{name} cannot run here: {', '.join(lacking) or 'module missing'}")
    if "p11-kit" in profile.via and os.geteuid() != 0:
        pytest.skip("p11-kit's private configuration needs a mount namespace (root)")
    return VENDORS / f"{name}.toml"


GROUND_TRUTH_PROBE = """
import sys, pkcs11
from conformance.live.groundtruth import GroundTruth
module, truth, label, pin = sys.argv[1:]
token = pkcs11.lib(module).get_token(token_label=label)
session = token.open(rw=True, user_pin=pin)
print(GroundTruth(truth).session_info(session.handle).state.name)
"""


def test_ground_truth_through_p11kit_sees_the_binding_sessions(tmp_path):
    """p11-kit-proxy hands every C_GetFunctionList caller a new instance with its own session handles; loaded
    through the tap, ctypes' ground truth and python-pkcs11 share one instance: the session python-pkcs11 logged
    in is seen logged in (C_GetSessionInfo)."""
    profile = load_profile(needs("softhsm-p11kit"))
    stage = set_up(profile, tmp_path / "stage", profile.module, profile.via)
    try:
        p = stage.freeze()
        assert p.tap and p.ground_truth == p.module and p.env["CONFORMANCE_TAP_MODULE"].endswith("p11-kit-proxy.so")
        out = subprocess.run(
            [*p.launcher, sys.executable, "-c", GROUND_TRUTH_PROBE, p.module, p.ground_truth, p.token_label,
             profile.user_pin.reveal()],
            env={**os.environ, **p.env, "PYTHONPATH": str(REPO)}, cwd=p.cwd, capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "RW_USER_FUNCTIONS", out.stderr[-2000:]
    finally:
        stage.close()


def test_spy_trace_of_a_failing_check_is_attached_without_pin(pytester, run_inner, load_json, monkeypatch):
    """--vendor=softhsm-spy: the failing check's result links its slice of the pkcs11-spy trace (C_Login in it),
    the passing check gets none, and the PIN appears in no form in the trace or the results."""
    profile = needs("softhsm-spy")
    pytester.makepyfile(test_fake_login=FAILING_LOGIN_CHECK)
    out = pytester.path / "out" / "results.json"
    monkeypatch.setenv("PKCS11_TOKEN_PIN", CANARY)  # overrides the profile's PIN: the token is made with it
    result = run_inner(f"--vendor-file={profile}", f"--conformance-json={out}",
                       f"--conformance-html={out.with_name('report.html')}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, "\n".join(result.outlines + result.errlines)
    records = {r["check"]: r for r in load_json(out)["results"]}
    assert records["fake.other"]["trace"] is None
    trace = out.parent / records["fake.fails_after_login"]["trace"]
    text = trace.read_text()
    assert "C_Login" in text and "PIN argument redacted" in text
    everything = text + out.read_text() + out.with_name("report.html").read_text()
    for form in (CANARY, CANARY.encode().hex(), " ".join(f"{b:02X}" for b in CANARY.encode())):
        assert form not in everything


def test_profile_skip_patterns_skip_with_the_reason(pytester, run_inner, load_json, softhsm_profile):
    """A profile's [[skip]] entries skip matching checks, the profile's reason shown as the skip reason."""
    text = softhsm_profile.read_text() + '\n[[skip]]\ncheck = "fake.fails_*"\nreason = "not on this partition"\n'
    profile = pytester.path / "narrowed.toml"
    profile.write_text(text)
    pytester.makepyfile(test_fake_login=FAILING_LOGIN_CHECK)
    out = pytester.path / "out" / "results.json"
    result = run_inner(f"--vendor-file={profile}", f"--conformance-json={out}",
                       f"--conformance-html={out.with_name('report.html')}")
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines + result.errlines)
    records = {r["check"]: r for r in load_json(out)["results"]}
    assert records["fake.fails_after_login"]["outcome"] == "skipped"
    assert records["fake.fails_after_login"]["reason"] == "softhsm profile: not on this partition"
    assert records["fake.other"]["outcome"] == "passed"


def test_vendors_lists_why_a_profile_cannot_run(tmp_path, capsys):
    """`pkcs11-conformance vendors` names each profile present or unavailable (with why); --strict exits 1
    when any cannot run (CI's check that every stack is installed)."""
    (tmp_path / "absent.toml").write_text(
        'name = "absent"\n[module]\npath = "/nonexistent/libabsent.so"\n[token]\nlabel = "x"\nuser_pin = "env:X"\n')
    (tmp_path / "softhsm.toml").write_text((VENDORS / "softhsm.toml").read_text())
    assert main(["vendors", "--dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    absent = next(line for line in lines if line.startswith("absent"))
    assert "unavailable" in absent and "module not found at /nonexistent/libabsent.so" in absent
    assert main(["vendors", "--dir", str(tmp_path), "--strict"]) == 1
    assert "cannot run here" in capsys.readouterr().err
