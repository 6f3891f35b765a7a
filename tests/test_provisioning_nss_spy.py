"""Real-module tests of the NSS softokn provisioner (behind p11-kit) and the pkcs11-spy wrapper (over SoftHSM)."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance.vendor.profile import VendorProfile, load_profile
from conformance.vendor.provisioning import ProvisioningError, set_up
from conformance.vendor.provisioning.nss import database_dir
from conformance.results.traces import TraceCursor, redact_trace

REPO = Path(__file__).resolve().parent.parent
NSS_PROFILE = REPO / "conformance" / "profiles" / "nss.toml"
SPY_PROFILE = REPO / "conformance" / "profiles" / "softhsm-spy.toml"

# Runs in the provisioned environment: log in, make an AES key and an RSA pair on the token, count objects.
SMOKE = r"""
import os, sys, pkcs11
from pkcs11 import KeyType
lib = pkcs11.lib(sys.argv[1])
tok = lib.get_token(token_label=sys.argv[2])
try:
    with tok.open(rw=True, user_pin=os.environ["SMOKE_PIN"]) as s:
        if sys.argv[3] == "make":
            s.generate_key(KeyType.AES, 128, store=True, label="smoke-aes")
            s.generate_keypair(KeyType.RSA, 2048, store=True, label="smoke-rsa")
        print("OK", len(list(s.get_objects())))
except pkcs11.PinIncorrect:
    print("PIN_INCORRECT")
"""


def smoke(stage: Any, pin: str, what: str = "make") -> str:
    prov = stage.freeze()
    proc = subprocess.run([*prov.launcher, sys.executable, "-c", SMOKE, prov.module, prov.token_label, what],
                          env={**os.environ, **prov.env, "SMOKE_PIN": pin}, cwd=prov.cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def _nss_ready() -> str | None:
    """Why the NSS test cannot run here, or None."""
    try:
        importlib.import_module("conformance.vendor.provisioning.p11kit")
    except ImportError as exc:
        return f"the p11-kit wrapper is not importable ({exc})"
    if os.geteuid() != 0:
        return "needs root (p11-kit reads only system config as root; the private namespace needs CAP_SYS_ADMIN)"
    if shutil.which("certutil") is None:
        return "certutil not found (apt-get install libnss3-tools)"
    if load_profile(NSS_PROFILE).module is None:
        return "libsoftokn3.so not installed (apt-get install libnss3)"
    return None


nss_only = pytest.mark.skipif(_nss_ready() is not None, reason=str(_nss_ready()))


# --- NSS softokn ---------------------------------------------------------------------------------------

@nss_only
def test_nss_private_database_per_worker(tmp_path: Path) -> None:
    profile = load_profile(NSS_PROFILE)
    pin = profile.user_pin.reveal()
    a = set_up(profile, tmp_path / "gw0", profile.module or "", profile.via)
    b = set_up(profile, tmp_path / "gw1", profile.module or "", profile.via)
    try:
        for stage in (a, b):
            assert stage.created and stage.cwd == str(stage.workdir)
            assert stage.token_label == "NSS Certificate DB"
            assert (stage.workdir / "nssdb" / "key4.db").exists()
            assert not (stage.workdir / "nss-password").exists()  # the password file is gone at once
        assert smoke(a, pin) == "OK 3"  # AES key + RSA pair
        assert smoke(b, pin, "count") == "OK 0"  # the other worker's database is untouched
        assert smoke(a, pin, "count") == "OK 3"  # stored: token objects persist in a's database
        assert smoke(a, pin + "-wrong", "count") == "PIN_INCORRECT"  # the user PIN is the DB password
    finally:
        a.close()
        b.close()
    assert not (tmp_path / "gw0" / "nssdb").exists()


def _nss_profile(**module: Any) -> VendorProfile:
    data = {"name": "nss-x", "module": {"path": "/usr/lib/x86_64-linux-gnu/libsoftokn3.so", "via": ["p11-kit"],
                                        **module},
            "token": {"label": "NSS Certificate DB", "user_pin": "nss-pin", "disposable": True},
            "provisioning": {"kind": "nss"}}
    return VendorProfile.from_dict(data, source="nss-x.toml")


@pytest.mark.parametrize(("reserved", "fix"), [
    (None, "configdir='sql:nssdb'"),
    ("configdir='sql:/var/lib/nss' flags=", "must be relative"),
    ("configdir='dbm:nssdb'", "not an SQLite"),
    ("configdir='sql:../x'", "must be relative"),
])
def test_nss_config_string_errors_say_what_to_write(tmp_path: Path, reserved: str | None, fix: str) -> None:
    profile = _nss_profile(**({"init_reserved": reserved} if reserved else {}))
    with pytest.raises(ProvisioningError, match=fix) as info:
        database_dir(profile.init_reserved, "nss-x.toml")
    assert "nss-pin" not in str(info.value)


def test_nss_config_string_forms() -> None:
    assert database_dir("configdir='sql:nssdb' certPrefix='' flags=", "p") == "nssdb"
    assert database_dir('configdir="sql:db/nss"', "p") == "db/nss"
    assert database_dir("configdir=sql:x flags=readOnly", "p") == "x"


@pytest.mark.skipif(shutil.which("certutil") is None, reason="certutil not found (apt-get install libnss3-tools)")
def test_nss_wrong_label_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    data = _nss_profile(init_reserved="configdir='sql:nssdb'").to_dict()
    data["token"]["label"] = "mine"
    profile = VendorProfile.from_dict(data, source="nss-x.toml")
    with pytest.raises(ProvisioningError, match="NSS Certificate DB"):
        set_up(profile, tmp_path, profile.module_paths[0], profile.via)
    assert not (tmp_path / "nssdb").exists()


# --- pkcs11-spy over SoftHSM ---------------------------------------------------------------------------

def _spy_ready() -> str | None:
    from conformance.vendor.provisioning.spy import find_spy

    if find_spy() is None:
        return "pkcs11-spy not installed (apt-get install opensc-pkcs11)"
    if shutil.which("softhsm2-util") is None or load_profile(SPY_PROFILE).module is None:
        return "SoftHSM not installed (apt-get install softhsm2)"
    return None


@pytest.mark.skipif(_spy_ready() is not None, reason=str(_spy_ready()))
def test_softhsm_spy_traces_calls_without_pins(tmp_path: Path) -> None:
    # The profile's own PIN is short ("1234"); a canary makes a leak unmistakable.
    data = load_profile(SPY_PROFILE).to_dict()
    data["token"].update(user_pin="canary-4711", so_pin="canary-so-0815")
    profile = VendorProfile.from_dict(data, source=str(SPY_PROFILE))
    stage = set_up(profile, tmp_path, profile.module or "", profile.via)
    try:
        prov = stage.freeze()
        assert prov.module.endswith("pkcs11-spy.so")
        # The spy wraps the tap, which is in front of the module (evidence of every call: native/tap.c).
        assert prov.env["PKCS11SPY"] == prov.evidence and prov.env["CONFORMANCE_TAP_MODULE"] == profile.module
        assert prov.trace_log == str(tmp_path / "spy.log")
        cursor = TraceCursor(prov.trace_log)
        cursor.mark()
        assert smoke(stage, "canary-4711") == "OK 3"
        raw = cursor.read()
        assert "C_Login" in raw and "canary-4711" in raw  # the spy logs the PIN...
        out = redact_trace(raw, stage.secrets())
        assert "C_Login" in out and "C_GenerateKeyPair" in out
        squashed = out.replace(" ", "").replace("\n", "").upper()
        for pin in ("canary-4711", "canary-so-0815"):  # ...the redacted slice does not
            assert pin not in out and pin.encode().hex().upper() not in squashed
        assert "(PIN argument redacted)" in out
    finally:
        stage.close()


def test_spy_missing_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.vendor.provisioning import spy

    monkeypatch.setattr(spy, "SPY_PATHS", (str(tmp_path / "nope.so"),))
    stage: Any = type("S", (), {"env": {}, "module": "/x.so", "workdir": tmp_path})()
    with pytest.raises(ProvisioningError, match="apt-get install opensc-pkcs11"):
        spy.PKCS11Spy().apply(stage)
