"""Reproducers anyone can run (issue 14, item 4): `pkcs11-conformance reproduce RESULTS.json CHECK --vendor NAME -o
FILE.py` writes a standalone script for a known finding — a scripted check's recipe, or a failing scenario's minimal
schedule replayed on threads; run in a clean interpreter (-I, the harness's package made unimportable) against the
vendor's real module and a token provisioned as the harness does, it exits 1 while the deviation is there — or dies
with the module's signal — and 0 where the module behaves. Bad input is one line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from faults import build_breaker
from wrapped_profiles import broken_profile, run_checks

from conformance.cli import main
from conformance.vendor.profile import load_profile
from conformance.vendor.provisioning import set_up
from conformance.vendor.registry import SHIPPED

# (check, vendor, exit status): five findings of the shipped profiles, a crash among them, and two modules that
# behave (the same scripts exit 0 there).
CASES = [
    ("sign.hmac_wrong_mac", "nss", 1),
    ("operation.search_then_search_same_thread", "nss", 1),
    ("encrypt.rsa_oaep_sha256", "softhsm", 1),
    ("encrypt.aes_cbc_pad_bad_padding", "opencryptoki", 1),
    ("sign.hmac_sha256_multi_part", "opencryptoki", -signal.SIGSEGV),
    ("sign.rsa_pkcs_multi_part", "tpm2", 1),
    ("wrap.non_extractable_refused", "nss", 1),
    ("operation.search_then_search_same_thread", "softhsm", 0),
    ("sign.hmac_wrong_mac", "softhsm", 0),
    ("wrap.non_extractable_refused", "softhsm", 0),
    # Greenlets and asyncio tasks (a family's recipe, given the runtime): the findings, and a runtime that behaves.
    ("greenlet.second_search_waits_gevent_after_sessions", "softhsm", 1),
    ("greenlet.second_search_waits_eventlet_after_import", "opencryptoki", 1),
    ("greenlet.second_search_waits_gevent_before_import", "opencryptoki", 0),
    ("asyncio.second_search_waits", "nss", 1),
    ("asyncio.search_across_to_thread_calls", "softhsm", 1),
    ("greenlet.drawn_schedules_eventlet_after_import", "softhsm", 1),  # the smallest drawn schedule, replayed
    # Forked workers: the parent initialised and logged in, then os.fork.
    ("fork.reinitialize_in_child", "opencryptoki", 1),
    ("fork.child_logs_in_again", "nss", 1),
    ("fork.reinitialize_in_child", "softhsm", 0),
    # The provider misused (scripted scenarios: their schedule replayed with the reference session).
    ("provider.stray_release_when_idle", "softhsm", 1),
    ("provider.stale_search_after_last_release", "opencryptoki", 1),
]
VENDORS = sorted({vendor for _, vendor, _ in CASES})
# The script runs as a user would run it, except that importing the harness fails (it must never need it).
RUNNER = "import runpy, sys; sys.modules['conformance'] = None; runpy.run_path(sys.argv[1], run_name='__main__')"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of the cases' checks on their vendors: the results file the scripts are made from."""
    directory = tmp_path_factory.mktemp("reproduce-run")
    out = directory / "results.json"
    checks = " or ".join(sorted({check.rsplit(".", 1)[1].removesuffix("_sha256").split("_gevent")[0]
                                 .split("_eventlet")[0] for check, _, _ in CASES}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "conformance.checks",
         *[f"--vendor={v}" for v in VENDORS], "-k", checks, f"--conformance-json={out}",
         f"--conformance-html={directory / 'report.html'}", f"--basetemp={directory / 'bt'}"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=600)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-2000:]
    return out


def _run_script(script: Path, profile_path: Path, workdir: Path, module: str | None = None) -> tuple[int, str]:
    """The script in a clean interpreter, on a token provisioned from the profile as the harness does (its
    environment, namespace and working directory), the PIN in PKCS11_TOKEN_PIN; (exit status, what it said)."""
    text = script.read_text(encoding="utf-8")
    assert "conformance." not in text.replace("pkcs11-conformance", "")  # the harness is never imported
    profile = load_profile(profile_path)
    assert profile.module is not None
    stage = set_up(profile, workdir, profile.module, profile.via)
    try:
        prov = stage.freeze()
        pin = profile.user_pin.reveal()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PKCS11_"))}
        env.update(prov.env, PKCS11_TOKEN_PIN=pin, PKCS11_TOKEN_LABEL=prov.token_label or "")
        if profile.via or module:  # a module reached through a layer the script cannot set up: named, as a user would
            env["PKCS11_MODULE"] = module or prov.module
        proc = subprocess.run([*prov.launcher, sys.executable, "-I", "-c", RUNNER, str(script)], env=env,
                              cwd=prov.cwd, capture_output=True, text=True, timeout=300)
    finally:
        stage.close()
    said = proc.stdout + proc.stderr
    assert pin not in said
    return proc.returncode, said


@pytest.mark.parametrize("check, vendor, status", CASES, ids=[f"{c}-{v}" for c, v, _ in CASES])
def test_the_script_shows_the_finding_on_the_real_module(check: str, vendor: str, status: int, results: Path,
                                                         tmp_path: Path) -> None:
    """The script (python-pkcs11 and the standard library only) exits 1 — or with the module's signal — where the
    run found the deviation, and 0 where the module behaves; it prints what it saw, and never the PIN."""
    script = tmp_path / "reproduce.py"
    assert main(["reproduce", str(results), check, "--vendor", vendor, "-o", str(script)]) == 0
    code, said = _run_script(script, SHIPPED / f"{vendor}.toml", tmp_path / "token")
    assert code == status, said[-2000:]
    if status >= 0:
        assert ("DEVIATION PRESENT" if status else "no deviation") in said, said


SCENARIOS = ("scenario.active_operations", "scenario.release", "scenario.provider")


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The scenario checks on SoftHSM behind the breaker (tests/native/breaker.c) with C_FindObjectsFinal leaving
    the search active (final_keeps_search): (its results, a vendors/ directory holding its profile)."""
    directory = tmp_path_factory.mktemp("reproduce-broken")
    vendors = directory / "vendors"
    vendors.mkdir()
    profile = broken_profile("softhsm", build_breaker(directory), "final_keeps_search", vendors / "softhsm.toml")
    run = run_checks(directory, profile, "-k", " or ".join(f"test_{c.split('.')[1]}" for c in SCENARIOS),
                     hypothesis_profile="dev")
    return run.results, vendors


@pytest.mark.parametrize("check", SCENARIOS)
def test_a_drawn_schedule_replays_as_a_script(check: str, broken_run: tuple[Path, Path], tmp_path: Path) -> None:
    """A failing scenario's minimal schedule becomes a script: its actors as threads forced into the schedule's
    order, each step's outcome checked against what the harness's model allows on this setup. It exits 1 on the
    module that breaks the rule, and 0 on the real SoftHSM it wraps."""
    results, vendors = broken_run
    doc = json.loads(results.read_text(encoding="utf-8"))
    record = next(r for r in doc["results"] if r["check"] == check)
    assert record["outcome"] == "failed" and record["reproducer"], record
    script = tmp_path / "reproduce.py"
    assert main(["reproduce", str(results), check, "--vendor", "softhsm", "--dir", str(vendors), "-o",
                 str(script)]) == 0
    code, said = _run_script(script, vendors / "softhsm.toml", tmp_path / "broken")
    assert code == 1 and "DEVIATION PRESENT" in said, said[-3000:]
    plain = load_profile(SHIPPED / "softhsm.toml").module
    code, said = _run_script(script, SHIPPED / "softhsm.toml", tmp_path / "plain", module=plain)
    assert code == 0 and "no deviation" in said and "Exception ignored" not in said, said[-3000:]


def test_bad_input_is_one_line_and_exit_2(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown vendor or check, a check without a recipe, an unreadable results file: one line naming the fix,
    exit 2, nothing written."""
    out = tmp_path / "x.py"
    doc = json.loads(results.read_text(encoding="utf-8"))
    scenario = next((r["check"] for r in doc["results"] if not r["check"].startswith(("sign.", "encrypt."))), None)
    for argv, needle in (([str(results), "sign.hmac_wrong_mac", "--vendor", "nope"], "has no vendor 'nope'"),
                         ([str(results), "sign.nothing", "--vendor", "nss"], "has no result for sign.nothing"),
                         ([str(tmp_path / "missing.json"), "sign.hmac_wrong_mac", "--vendor", "nss"], "cannot read"),
                         ([str(results), "operation.search_then_search_same_thread", "--vendor", "tpm2",
                           "--dir", str(tmp_path)], None)):
        code = main(["reproduce", *argv, "-o", str(out)])
        err = capsys.readouterr().err
        if needle is None:  # tpm2 skipped it (no public data objects): still a script (it exits as the module does)
            assert code == 0
            continue
        assert code == 2 and needle in err and err.count("\n") == 1, err
        assert not out.exists()
    del scenario
