"""A token that is not disposable is left exactly as found (issue: "running the suite against a non-disposable
profile leaves the token exactly as found"; "never gets C_InitToken, C_InitPIN or C_SetPIN"; "a sweep at start-up
removes leftovers of earlier runs by prefix")."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

PIN, SO_PIN = "2468", "13572468"
REPO = Path(__file__).resolve().parent.parent
SOFTHSM = next((p for p in ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
                if Path(p).exists()), None)

# Objects a production partition might hold, and one leftover of a killed earlier run (harness label prefix).
SEED = """
import pkcs11, sys
from pkcs11 import Attribute, KeyType, ObjectClass
token = pkcs11.lib(sys.argv[1]).get_token(token_label="partition")
with token.open(rw=True, user_pin=sys.argv[2]) as s:
    s.generate_key(KeyType.AES, 256, store=True, label="production-aes", id=b"\\x01")
    s.generate_keypair(KeyType.RSA, 2048, store=True, label="production-rsa", id=b"\\x02")
    for label in ("production-data", "pkcs11-conformance-leftover"):
        s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.LABEL: label,
                         Attribute.VALUE: b"v"})
"""
LIST = """
import pkcs11, sys
from pkcs11 import Attribute
token = pkcs11.lib(sys.argv[1]).get_token(token_label="partition")
with token.open(user_pin=sys.argv[2]) as s:
    print(sorted((str(o[Attribute.CLASS]), o[Attribute.LABEL]) for o in s.get_objects({})))
print(token.flags)
"""
TRIES_TO_CHANGE_PINS = '''
import pkcs11
import pytest


@pytest.mark.check("fake.set_pin", layer="module", spec="x")
def test_set_pin(vendor):
    session = vendor.open_session()
    with pytest.raises(pkcs11.exceptions.PKCS11Error):
        session.set_pin(vendor.user_pin(), "9999")
    with pytest.raises(pkcs11.exceptions.PKCS11Error):
        session.init_pin("9999")
'''


def softhsm_findings(checks: tuple[str, ...] = ("mechanism.info_sets_every_field", "encrypt.rsa_oaep_sha256")) -> str:
    """The shipped softhsm profile's declarations of what SoftHSM 2.6 itself does (a hand-made SoftHSM partition
    shows the same findings), as [[deviations]] TOML for a profile written here."""
    shipped = tomllib.loads((REPO / "conformance" / "profiles" / "softhsm.toml").read_text(encoding="utf-8"))
    out = []
    for deviation in shipped["deviations"]:
        if deviation["check"] in checks:
            fields = "".join(f"{k} = {json.dumps(v)}\n" for k, v in deviation.items() if k != "versions")
            versions = ", ".join(f"{k} = {json.dumps(v)}" for k, v in deviation.get("versions", {}).items())
            out.append(f"[[deviations]]\n{fields}versions = {{ {versions} }}\n")
    assert len(out) == len(checks), f"the shipped softhsm profile no longer declares all of {checks}"
    return "".join(out)


@pytest.fixture
def partition(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A SoftHSM token standing in for a real partition: made once, outside the harness, with objects on it."""
    if SOFTHSM is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM is not installed")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "partition", "--pin", PIN, "--so-pin", SO_PIN],
                   env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", SEED, SOFTHSM, PIN], env=env, check=True, capture_output=True)
    profile = tmp_path / "partition.toml"
    profile.write_text(
        'name = "partition"\n'
        f'[module]\npath = "{SOFTHSM}"\nenv = {{ SOFTHSM2_CONF = "{conf}" }}\n'
        '[token]\nlabel = "partition"\nuser_pin = "env:PARTITION_PIN"\ndisposable = false\n'
        '[provisioning]\nkind = "none"\n' + softhsm_findings())
    return profile, env


def listing(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", LIST, SOFTHSM, PIN], env=env, check=True, capture_output=True,
                          text=True).stdout


def test_full_run_leaves_the_token_as_found(partition, pytester, run_inner, load_json, monkeypatch):
    """Every check, two workers, on a token that is not disposable: its objects and flags afterwards are exactly
    those before (the earlier run's leftover, and only it, swept), the run says so, and its results record it;
    no verdict depends on what the other worker did meanwhile (no check fails)."""
    profile, env = partition
    before = listing(env)
    assert "pkcs11-conformance-leftover" in before
    monkeypatch.setenv("PARTITION_PIN", PIN)
    out = pytester.path / "out" / "results.json"
    result = run_inner(f"--vendor-file={profile}", "--pyargs", "conformance.checks", f"--conformance-json={out}",
                       f"--conformance-html={out.with_name('report.html')}", "-n", "2", "--step-timeout=3")
    console = "\n".join(result.outlines + result.errlines)
    # The workers take turns on the one token (vendor/sharing.py): SoftHSM's file store, read by one process while
    # another rewrites it, would otherwise fail whichever check happened to run at that moment.
    assert result.ret == pytest.ExitCode.OK, console
    assert "partition: token left exactly as found" in console
    objects_before, flags_before = before.splitlines()
    objects_after, flags_after = listing(env).splitlines()
    kept = [o for o in ast.literal_eval(objects_before) if o[1] != "pkcs11-conformance-leftover"]
    assert ast.literal_eval(objects_after) == kept and flags_after == flags_before
    integrity = load_json(out)["vendors"]["partition"]["integrity"]
    assert integrity["intact"] is True and integrity["before"]["ours"] == 0
    outcomes = {r["check"]: r["outcome"] for r in load_json(out)["results"]}
    assert outcomes["scenario.provider_stress"] == outcomes["binding.concurrent_calls_survive"] == "skipped"


def test_pin_changes_are_refused_before_the_module(partition, pytester, run_inner, load_json, monkeypatch):
    """C_SetPIN and C_InitPIN on a token that is not disposable never reach the module (the tap refuses them),
    whatever a check does: afterwards the old PIN still works."""
    profile, env = partition
    monkeypatch.setenv("PARTITION_PIN", PIN)
    pytester.makepyfile(test_pins=TRIES_TO_CHANGE_PINS)
    out = pytester.path / "out" / "results.json"
    result = run_inner(f"--vendor-file={profile}", f"--conformance-json={out}",
                       f"--conformance-html={out.with_name('report.html')}")
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines + result.errlines)
    assert listing(env)  # logs in with the old PIN


MAKES_OBJECTS_THEN_HANGS = '''
import time

import pytest

from conformance.live.probes import make_data_objects


@pytest.mark.check("fake.first", layer="module", spec="x")
def test_first(vendor):
    make_data_objects(vendor.open_session(), 2, tag="first")


@pytest.mark.check("fake.hangs_holding_objects", layer="module", spec="x")
def test_hangs_holding_objects(vendor):
    make_data_objects(vendor.open_session(), 2, tag="held")
    time.sleep(120)
'''


def processes_using(conf: Path) -> list[int]:
    """PIDs whose environment names this token's SoftHSM configuration (the module's processes)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"SOFTHSM2_CONF={conf}".encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_killed_run_leaves_valid_results_and_no_objects(partition, tmp_path, monkeypatch):
    """kill -9 of the run while a check hangs holding objects: the module's process goes with it (nothing stays
    logged in or holds objects), the token has no harness object left, and the results file is valid with the
    check that finished."""
    from conformance.results.schema import validate_results

    profile, env = partition
    conf = Path(env["SOFTHSM2_CONF"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "test_hang.py").write_text(MAKES_OBJECTS_THEN_HANGS)
    results = run / "out" / "results.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--vendor-file={profile}", "test_hang.py",
         f"--conformance-json={results}", f"--conformance-html={run / 'out' / 'report.html'}",
         f"--basetemp={run / 'bt'}"],
        cwd=run, env={**os.environ, "PARTITION_PIN": PIN}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the first check is in the file (and the second hangs)
            if results.exists() and '"fake.first"' in results.read_text():
                break
            time.sleep(0.2)
        time.sleep(1.5)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while processes_using(conf) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_using(conf), "a module process outlived the killed run"
    doc = json.loads(results.read_text())
    assert validate_results(doc) == []
    assert [(r["check"], r["outcome"]) for r in doc["results"]] == [("fake.first", "passed")]
    assert "pkcs11-conformance" not in listing(env)
