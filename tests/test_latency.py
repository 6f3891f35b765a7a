"""Verdicts do not depend on the weather (issue 11, "proof of invariance"): the shipped checks over a shipped
profile behind the fault shim with latency only — 0, 5, 20 and 50 ms on every call, or a 1.5 s C_Login — give the
same outcomes and observed values as the unwrapped module, on SoftHSM and on OpenCryptoki.

CI runs a representative slice (dev profile): under 20 ms calls, the provider checks (every acquire logs in) and the
drawn active-operations scenario, whose blocked calls are released late; under a 1.5 s login, the scripted provider
checks. The whole matrix (every check, ci profile, both
modules, every latency: about two hours here) runs with CONFORMANCE_LATENCY_MATRIX=1; benchmarks/latency.py prints
its wall times (README, "Slow and network HSMs")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faults import build_shim
from wrapped_profiles import LATENCIES, run_checks, slowed_profile

from conformance.vendor.registry import SHIPPED

PROVIDER = "test_provider and not stress"
SCRIPTED_PROVIDER = f"{PROVIDER} and not test_scenarios"  # every acquire logs in: 1.5 s each, so not 40 drawn examples
SLICES = {  # vendor -> (checks, latency) pairs: what CI runs
    "softhsm": ((f"{PROVIDER} or test_active_operations", "20ms"), (SCRIPTED_PROVIDER, "login-1.5s")),
    "opencryptoki": ((PROVIDER, "20ms"),),
}


def _differences(bare: dict, slow: dict) -> dict:
    return {k: (bare.get(k), v) for k, v in slow.items() if bare.get(k) != v} | \
           {k: (v, None) for k, v in bare.items() if k not in slow}


@pytest.mark.parametrize("vendor", sorted(SLICES))
def test_latency_changes_no_outcome_and_no_observed_value(tmp_path: Path, vendor: str) -> None:
    """A module that is only slower — every call 20 ms away, or a 1.5 s login — is judged the same as the bare one:
    the waits come from its measured latency (conformance/executor/timing.py) and blocked, slow and hung are told
    apart by what the module is doing (conformance/executor/waiting.py), not by constants."""
    shim = build_shim(tmp_path)
    (tmp_path / "bare").mkdir()
    bares: dict[str, dict] = {}
    for checks, name in SLICES[vendor]:
        if checks not in bares:
            bares[checks] = run_checks(tmp_path / "bare", Path(SHIPPED) / f"{vendor}.toml", "-k", checks,
                                       hypothesis_profile="dev").outcomes()
        bare = bares[checks]
        assert bare and all(outcome in ("passed", "xfailed") for outcome, _ in bare.values()), bare
        profile = slowed_profile(vendor, shim, LATENCIES[name], tmp_path / f"{vendor}-{name}.toml")
        slow = run_checks(tmp_path, profile, "-k", checks, hypothesis_profile="dev").outcomes()
        assert slow == bare, (name, _differences(bare, slow))


@pytest.mark.skipif(os.environ.get("CONFORMANCE_LATENCY_MATRIX") != "1",
                    reason="the whole latency matrix takes about two hours: set CONFORMANCE_LATENCY_MATRIX=1")
@pytest.mark.parametrize("vendor", ["softhsm", "opencryptoki"])
def test_latency_matrix_changes_nothing(tmp_path: Path, vendor: str) -> None:
    """Issue 11: every check (ci profile) over the module with 0, 5, 20 and 50 ms per call and with a 1.5 s login:
    the same outcomes and observed values as the unwrapped module."""
    shim = build_shim(tmp_path)
    bare = run_checks(tmp_path, Path(SHIPPED) / f"{vendor}.toml").outcomes()
    for name, faults in LATENCIES.items():
        slow = run_checks(tmp_path, slowed_profile(vendor, shim, faults, tmp_path / f"{vendor}-{name}.toml")).outcomes()
        assert slow == bare, (name, _differences(bare, slow))
