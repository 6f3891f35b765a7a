"""Verdicts do not depend on the weather: the same checks over the same SoftHSM, bare and behind the fault shim
with latency only (20 ms on every call; a 1.5 s C_Login), give the same outcomes and observed values (issue 11:
"CI runs a representative slice of it"). The slice: the provider checks (every acquire logs in) and the drawn
active-operations scenario (blocking calls released late), under the dev hypothesis profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from faults import build_shim

SLICE = "test_provider and not stress or test_active_operations"
LATENCIES = {"every-call-20ms": "*=delay:0.02", "login-1.5s": "C_Login=delay:1.5"}


def _profile(path: Path, name: str, shim: Path, real_module: str, faults: str) -> Path:
    """SoftHSM behind the shim (its own disposable token), only slower: faults are delays."""
    env = {"CONFORMANCE_FAULT_MODULE": real_module, "CONFORMANCE_FAULTS": faults, "CONFORMANCE_FAULTS_QUIET": "1"}
    path.write_text(
        f'name = "{name}"\n[module]\npath = "{shim}"\n'
        "env = { " + ", ".join(f'{k} = "{v}"' for k, v in env.items()) + " }\n"
        '[token]\nlabel = "conformance"\nuser_pin = "1234"\nso_pin = "12345678"\ndisposable = true\n'
        '[provisioning]\nkind = "softhsm2"\n', encoding="utf-8")
    return path


def _run(directory: Path, profile: Path) -> dict[str, tuple[str, str]]:
    """check -> (outcome, observed) of the slice on one profile, in a subprocess (module state is per process)."""
    out = directory / f"{profile.stem}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "conformance.checks", "-k", SLICE,
         f"--vendor-file={profile}", "--hypothesis-profile=dev", f"--conformance-json={out}",
         f"--conformance-html={out.with_suffix('.html')}", f"--basetemp={directory / ('bt-' + profile.stem)}"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=900)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text(encoding="utf-8"))
    return {r["check"]: (r["outcome"], json.dumps(r["observed"], sort_keys=True)) for r in doc["results"]}


def test_latency_changes_no_outcome_and_no_observed_value(tmp_path: Path, softhsm_module: str) -> None:
    """A module that is only slower — every call 20 ms away, or a 1.5 s login — is judged the same as the bare one:
    the waits come from its measured latency (conformance/executor/timing.py), not from constants."""
    shim = build_shim(tmp_path)
    bare = _run(tmp_path, _profile(tmp_path / "bare.toml", "bare", shim, softhsm_module, ""))
    assert bare and all(outcome == "passed" for outcome, _ in bare.values()), bare
    for name, faults in LATENCIES.items():
        slow = _run(tmp_path, _profile(tmp_path / f"{name}.toml", name, shim, softhsm_module, faults))
        assert slow == bare, (name, {k: (bare.get(k), v) for k, v in slow.items() if bare.get(k) != v})
