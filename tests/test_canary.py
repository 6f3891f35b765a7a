"""The PIN never leaves the harness: a whole run with a canary PIN, every artifact searched (issue: "PINs never
appear in console output, logs, JSON, HTML, JUnit, pytest-html, spy traces, reproducers or exception messages")."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.vendor.profile import load_profile
from conformance.vendor.provisioning.requirements import missing

REPO = Path(__file__).resolve().parent.parent
CANARY = "Canary-PIN-4711"
SO_CANARY = "Canary-SO-0815"

# A check that tries hard to leak: it puts the PIN in an observed value and in its failure message.
ECHOING_CHECK = '''
import pytest


@pytest.mark.check("fake.echoes_pin", layer="module", spec="x")
def test_echoes_pin(vendor, observe):
    observe({"pin": vendor.user_pin(), "hex": vendor.user_pin().encode().hex()})
    raise RuntimeError(f"module said: bad PIN {vendor.user_pin()!r}")
'''


def forms(secret: str) -> list[str]:
    """The ways a PIN can show up: as text, and hex-dumped (both cases, spaced or not)."""
    raw = secret.encode()
    return [secret, raw.hex(), raw.hex().upper(), " ".join(f"{b:02x}" for b in raw), " ".join(f"{b:02X}" for b in raw)]


def test_canary_pin_appears_in_no_artifact(pytester, run_inner, monkeypatch):
    """Every check on SoftHSM (direct and under pkcs11-spy, with --call-trace on both), with JUnit XML,
    pytest-html, the results JSON, the HTML report, traces and every file under --basetemp (executor logs,
    provisioning files): no form of the user or SO PIN anywhere, console output included."""
    profiles = [REPO / "conformance" / "profiles" / f"{name}.toml" for name in ("softhsm", "softhsm-spy")]
    for path in profiles:
        profile = load_profile(path)
        if profile.module is None or missing(profile.provisioning, profile.via):
            pytest.skip(f"{profile.name} cannot run here")
    monkeypatch.setenv("PKCS11_TOKEN_PIN", CANARY)
    monkeypatch.setenv("PKCS11_TOKEN_SO_PIN", SO_CANARY)
    pytester.makepyfile(test_echo=ECHOING_CHECK)
    out = pytester.path / "out"
    result = run_inner(*(f"--vendor-file={p}" for p in profiles), "--pyargs", "conformance.checks", "test_echo.py",
                       f"--conformance-json={out / 'results.json'}", f"--conformance-html={out / 'report.html'}",
                       f"--junitxml={out / 'junit.xml'}", f"--html={out / 'pytest.html'}", "--call-trace",
                       f"--basetemp={pytester.path / 'bt'}", "-n", "2", "--step-timeout=3")
    console = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, console
    assert (out / "traces").is_dir() and (out / "junit.xml").is_file() and (out / "pytest.html").is_file()
    leaks = []
    for path in [p for p in pytester.path.rglob("*") if p.is_file()]:
        data = path.read_bytes()
        leaks += [f"{path.relative_to(pytester.path)}: {form!r}" for s in (CANARY, SO_CANARY) for form in forms(s)
                  if form.encode() in data]
    leaks += [f"console: {form!r}" for s in (CANARY, SO_CANARY) for form in forms(s) if form in console]
    assert not leaks, "\n".join(leaks)
