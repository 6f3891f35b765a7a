"""A shipped vendor profile with its module behind a wrapper module of our own: the same token, provisioning and
declarations. Slowed: the fault shim (tests/native/faultshim.c) with only delays, for test_latency.py (verdicts do
not depend on latency) and benchmarks/latency.py (wall time against latency). Broken: the breaker
(tests/native/breaker.c) breaking one rule, for test_blame.py (every failure blamed on the module)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from conformance.vendor.registry import SHIPPED

# name -> CONFORMANCE_FAULTS: the latencies issue 11 asks about (per call, and a slow login).
LATENCIES = {"0ms": "", "5ms": "*=delay:0.005", "20ms": "*=delay:0.02", "50ms": "*=delay:0.05",
             "login-1.5s": "C_Login=delay:1.5"}


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def wrapped_profile(vendor: str, wrapper: Path, env: dict[str, str], path: Path, real_env: str) -> Path:
    """The shipped profile `vendor` with its module behind `wrapper` (which finds the module in the environment
    variable `real_env`; more of its settings in `env`), written to `path`."""
    source = Path(SHIPPED) / f"{vendor}.toml"
    text = source.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    paths = data["module"]["path"]
    real = next((p for p in ([paths] if isinstance(paths, str) else paths) if Path(p).exists()), None)
    if real is None:
        raise FileNotFoundError(f"{vendor}: its module is not installed ({paths}); run scripts/bootstrap.sh")
    env = {**data["module"].get("env", {}), real_env: real, **env}
    block = (f"[module]\npath = {_toml(str(wrapper))}\n"
             "env = { " + ", ".join(f"{k} = {_toml(v)}" for k, v in env.items()) + " }\n\n")
    # The [module] table runs to the next table header; everything else (token, provisioning, deviations) stays.
    wrapped, n = re.subn(r"(?ms)^\[module\]\n.*?(?=^\[)", lambda _: block, text, count=1)
    assert n == 1, f"{source}: no [module] table followed by another table"
    path.write_text(wrapped, encoding="utf-8")
    return path


def slowed_profile(vendor: str, shim: Path, faults: str, path: Path) -> Path:
    """`vendor` behind the fault shim whose faults are delays only (`faults`: CONFORMANCE_FAULTS)."""
    return wrapped_profile(vendor, shim, {"CONFORMANCE_FAULTS": faults, "CONFORMANCE_FAULTS_QUIET": "1"}, path,
                           "CONFORMANCE_FAULT_MODULE")


def broken_profile(vendor: str, breaker: Path, rule: str, path: Path) -> Path:
    """`vendor` behind the breaker, breaking `rule` (or showing an allowed variation)."""
    return wrapped_profile(vendor, breaker, {"CONFORMANCE_BREAK": rule}, path, "CONFORMANCE_BREAK_MODULE")


@dataclass(frozen=True)
class Run:
    results: Path
    wall_s: float
    output: str

    def outcomes(self) -> dict[str, tuple[str, str]]:
        """check -> (outcome, observed as canonical JSON)."""
        doc = json.loads(self.results.read_text(encoding="utf-8"))
        return {r["check"]: (r["outcome"], json.dumps(r["observed"], sort_keys=True)) for r in doc["results"]}


def run_checks(directory: Path, profile: Path, *args: str, hypothesis_profile: str = "ci",
               timeout: float = 7200) -> Run:
    """The shipped checks on one profile, in a pytest subprocess (module state is per process)."""
    directory = directory.resolve()  # the subprocess runs in it: relative paths would nest
    out = directory / f"{profile.stem}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "conformance.checks",
         f"--vendor-file={profile}", f"--hypothesis-profile={hypothesis_profile}", f"--conformance-json={out}",
         f"--conformance-html={out.with_suffix('.html')}", f"--basetemp={directory / ('bt-' + profile.stem)}", *args],
        cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - started
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return Run(out, wall, proc.stdout[-5000:] + proc.stderr[-3000:])
