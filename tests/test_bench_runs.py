"""The benchmark on a real module (issue 15's "done when"): SoftHSM behind the fault shim (tests/native/faultshim.c)
with no faults, twice, passes bench-gate; with a 1 ms delay on every call it fails, naming every affected row; a
module that crashes or hangs under a mechanism is a row, and the run goes on; an interrupt keeps the rows measured;
no PIN reaches any output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faults import build_shim
from wrapped_profiles import slowed_profile

PIN = "bench-pin-4711"  # distinctive: a number in a report can never match it by chance
QUICK = ["--trials", "3", "--trial-seconds", "0.1", "--warmup-seconds", "0.05", "--threads", "1"]


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shim(tmp_path_factory.mktemp("shim"))


def _profile(tmp_path: Path, shim: Path, faults: str, name: str) -> Path:
    return slowed_profile("softhsm", shim, faults, tmp_path / f"{name}.toml")


def bench(out: Path, profile: Path, *args: str, timeout: float = 300,
          path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`pkcs11-conformance bench` on one profile; `path`: a directory on PYTHONPATH (a --sut module)."""
    env = {**os.environ, "PKCS11_TOKEN_PIN": PIN}
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(path), env.get("PYTHONPATH"))))
    return subprocess.run([sys.executable, "-m", "conformance.cli", "bench", f"--vendor-file={profile}",
                           "-o", str(out), *args], capture_output=True, text=True, timeout=timeout, env=env)


def gate(base: Path, cand: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance.cli", "bench-gate", str(base / "bench.json"),
                           str(cand / "bench.json")], capture_output=True, text=True, timeout=60)


def _no_pin_anywhere(out: Path, *texts: str) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            assert PIN not in path.read_text(errors="replace"), path
    for text in texts:
        assert PIN not in text


def test_unchanged_setup_passes_and_a_1ms_delay_fails(tmp_path: Path, shim: Path) -> None:
    """Two runs of an unchanged setup pass bench-gate (exit 0); a run with 1 ms added to every call (the fault
    shim's delay) fails it (exit 1), naming each affected mechanism, strategy and thread count."""
    plain = _profile(tmp_path, shim, "", "plain")
    slow = _profile(tmp_path, shim, "*=delay:0.001", "slow")
    what = ["--mechanism", "random", "--mechanism", "sha256_digest", "--strategy", "per_thread", "--strategy",
            "shared", *QUICK]
    runs = {}
    for name, profile in (("a", plain), ("b", plain), ("slow", slow)):
        proc = bench(tmp_path / name, profile, *what)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        _no_pin_anywhere(tmp_path / name, proc.stdout, proc.stderr)
        runs[name] = json.loads((tmp_path / name / "bench.json").read_text())
        assert [r["outcome"] for r in runs[name]["rows"]] == ["measured"] * 4, runs[name]["rows"]
    same = gate(tmp_path / "a", tmp_path / "b")
    assert same.returncode == 0, same.stdout + same.stderr
    slower = gate(tmp_path / "a", tmp_path / "slow")
    assert slower.returncode == 1, slower.stdout + slower.stderr
    flagged = [line for line in slower.stdout.splitlines() if line.startswith("REGRESSION")]
    for mechanism in ("random", "sha256_digest"):
        for strategy in ("per_thread", "shared"):
            assert any(mechanism in line and strategy in line and "1 thread" in line for line in flagged), flagged
    assert len(flagged) == 4


def test_a_crash_is_a_row_and_the_run_goes_on(tmp_path: Path, shim: Path) -> None:
    """A module that kills the process under a mechanism (SIGSEGV in C_GenerateRandom after set-up) gives that row
    `crashed` with the signal, and the other mechanism is still measured: a row, not an abort."""
    profile = _profile(tmp_path, shim, "C_GenerateRandom=segv@6", "crashing")
    proc = bench(tmp_path / "out", profile, "--mechanism", "random", "--mechanism", "sha256_digest",
                 "--strategy", "per_thread", *QUICK)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["mechanism"]: r for r in json.loads((tmp_path / "out" / "bench.json").read_text())["rows"]}
    assert rows["random"]["outcome"] == "crashed" and "SIGSEGV" in rows["random"]["detail"], rows["random"]
    assert rows["random"]["ops_per_s"] is None
    assert rows["sha256_digest"]["outcome"] == "measured", rows["sha256_digest"]


def test_a_hang_is_a_row(tmp_path: Path, shim: Path) -> None:
    """A call that never returns gives its row `hung` (after the least hang time, and 100 calls' measured time),
    and the run finishes."""
    profile = _profile(tmp_path, shim, "C_GenerateRandom=hang@6", "hanging")
    started = time.monotonic()
    proc = bench(tmp_path / "out", profile, "--mechanism", "random", "--strategy", "per_thread",
                 "--hang-seconds", "1", *QUICK)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row, = json.loads((tmp_path / "out" / "bench.json").read_text())["rows"]
    assert row["outcome"] == "hung" and row["detail"].startswith("hung at 1 thread"), row
    assert time.monotonic() - started < 120


def test_an_interrupt_keeps_the_rows_measured(tmp_path: Path, shim: Path) -> None:
    """Ctrl-C during the second mechanism: exit 130, and bench.json holds the first mechanism's rows, marked
    unfinished (the gate refuses it; the report shows it)."""
    profile = _profile(tmp_path, shim, "", "plain")
    out = tmp_path / "out"
    env = {**os.environ, "PKCS11_TOKEN_PIN": PIN}
    proc = subprocess.Popen([sys.executable, "-m", "conformance.cli", "bench", f"--vendor-file={profile}", "-o",
                             str(out), "--mechanism", "random", "--mechanism", "sha256_digest", "--strategy",
                             "per_thread", "--trials", "20", "--trial-seconds", "0.2", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "bench.json").exists():
        time.sleep(0.1)
    assert (out / "bench.json").exists(), "the first mechanism's rows were never written"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr, stderr
    doc = json.loads((out / "bench.json").read_text())
    assert doc["run"]["finished"] is None
    assert [r["mechanism"] for r in doc["rows"]] == ["random"]
    refused = gate(out, out)
    assert refused.returncode == 2 and "did not finish" in refused.stderr


def test_your_provider_is_a_strategy_and_its_failures_are_its_own(tmp_path: Path, shim: Path) -> None:
    """--sut adds strategy `sut`: the reference session passed as --sut is measured beside `shared`; a provider
    whose acquire() raises gives its row `failed`, naming the provider (never the harness's `error`)."""
    profile = _profile(tmp_path, shim, "", "plain")
    (tmp_path / "bench_pools.py").write_text(
        "class Exhausted:\n"
        "    def __init__(self, open_session): self.open_session = open_session\n"
        "    def acquire(self): raise RuntimeError('pool exhausted')\n"
        "    def release(self): pass\n"
        "    def __enter__(self): return self.acquire()\n"
        "    def __exit__(self, *exc): self.release()\n")
    good = bench(tmp_path / "good", profile, "--sut=conformance.refsession:reference_session", "--mechanism",
                 "random", *QUICK)
    bad = bench(tmp_path / "bad", profile, "--sut=bench_pools:Exhausted", "--strategy", "sut", "--mechanism",
                "random", *QUICK, path=tmp_path)
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-3000:]
    rows = {r["strategy"]: r for r in json.loads((tmp_path / "good" / "bench.json").read_text())["rows"]}
    assert set(rows) == {"shared", "per_thread", "pool", "sut"} and rows["sut"]["outcome"] == "measured", rows
    assert bad.returncode == 0, bad.stdout[-3000:] + bad.stderr[-3000:]
    row, = json.loads((tmp_path / "bad" / "bench.json").read_text())["rows"]
    assert row["outcome"] == "failed" and "session provider's acquire() raised RuntimeError: pool exhausted" in \
        row["detail"], row
