"""The `sut` checks against deliberately faulty session providers (tests/faulty_providers.py) on the real SoftHSM
token: each fault is caught, as the right outcome, with a minimal schedule; the faithful provider passes; a provider
that crashes or hangs the executor does not stop the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import faulty_providers
from faulty_providers import EXPECTED

TESTS = Path(__file__).resolve().parent
MAX_STEPS = 6


def run_sut_checks(tmp_path: Path, softhsm_profile: Path, provider: str) -> dict:
    """pytest -m sut against SoftHSM with --sut=faulty_providers:PROVIDER, in a subprocess; the results JSON.

    The step timeout is raised above the default (1 s) so that a loaded test machine cannot turn a slow call into
    `hung`; only the provider that really hangs keeps the default, since every shrink step waits it out."""
    step_timeout = "1" if provider == "hanging" else "5"
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "--pyargs", "conformance.checks", "-m", "sut", "-q", "-p", "no:cacheprovider",
           f"--vendor-file={softhsm_profile}", f"--sut=faulty_providers:{provider}", f"--conformance-json={out}",
           f"--conformance-html={tmp_path / 'report.html'}", f"--basetemp={tmp_path / 'bt'}",
           f"--step-timeout={step_timeout}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def sut_check_ids() -> set[str]:
    return {"provider.threads_share_one_session", "provider.closes_on_last_release", "provider.stays_open_while_held",
            "provider.nested_acquire", "provider.reopens_after_release", "provider.open_failure_recovers",
            "provider.acquire_while_app_logged_in", "provider.release_logs_out_application", "scenario.provider",
            "scenario.provider_stress", "provider.stray_release_when_idle", "provider.stray_release_while_held",
            "provider.release_with_unconsumed_search", "provider.stale_search_after_last_release",
            "provider.acquire_after_fork"}


def test_faithful_provider_passes_every_sut_check(tmp_path: Path, softhsm_profile: Path) -> None:
    """A correct provider passes every sut check: the checks do not fail on their own."""
    doc = run_sut_checks(tmp_path, softhsm_profile, "faithful")
    outcomes = {r["check"]: r["outcome"] for r in doc["results"]}
    assert set(outcomes) == sut_check_ids()
    assert set(outcomes.values()) == {"passed"}, outcomes


@pytest.mark.parametrize("provider", sorted(EXPECTED))
def test_faulty_provider_is_caught(tmp_path: Path, softhsm_profile: Path, provider: str) -> None:
    """Each faulty provider is caught by its check as the expected outcome, attributed to the provider layer, with
    a minimal schedule of at most six steps where one applies; the run goes on to record every sut check."""
    check, outcomes = EXPECTED[provider]
    doc = run_sut_checks(tmp_path, softhsm_profile, provider)
    results = {r["check"]: r for r in doc["results"]}
    assert set(results) == sut_check_ids(), "the run did not complete every sut check"
    found = results[check]
    assert found["outcome"] in outcomes, found["reason"]
    if check == "scenario.provider":
        assert found["layer"] == "provider"
        steps = found["reproducer"]["schedule"]
        assert 1 <= len(steps) <= MAX_STEPS, steps
    assert getattr(faulty_providers, provider).__doc__ is not None
