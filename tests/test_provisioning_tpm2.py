"""The tpm2 provisioner against the real stack (swtpm + private D-Bus + tpm2-abrmd + tpm2-pkcs11): a token per
worker that the module can use, two at once, and no daemon left behind — after close, and after a SIGKILL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conformance.vendor.profile import VendorProfile, load_profile
from conformance.vendor.provisioning import ProvisioningError, Stage, set_up

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "conformance" / "profiles" / "tpm2.toml"

# Run in the executor's place: load the module as the harness would, use the pre-provisioned AES key, and make
# an RSA pair in the module (store=True: tpm2-pkcs11 refuses session key pairs). The PIN comes in the environment.
SMOKE = textwrap.dedent("""
    import os, pkcs11
    from pkcs11 import KeyType, Mechanism, ObjectClass
    lib = pkcs11.lib(os.environ["SMOKE_MODULE"])
    token = lib.get_token(token_label=os.environ["SMOKE_LABEL"])
    mechanisms = token.slot.get_mechanisms()
    with token.open(rw=True, user_pin=os.environ["SMOKE_PIN"]) as session:
        aes = session.get_key(object_class=ObjectClass.SECRET_KEY, label=os.environ["SMOKE_AES"])
        iv = bytes(16)
        ct = aes.encrypt(b"conformance-tpm2" * 2, mechanism=Mechanism.AES_CBC, mechanism_param=iv)
        assert aes.decrypt(ct, mechanism=Mechanism.AES_CBC, mechanism_param=iv) == b"conformance-tpm2" * 2
        pub, priv = session.generate_keypair(KeyType.RSA, 2048, store=True, label="smoke")
        sig = priv.sign(b"x", mechanism=Mechanism.SHA256_RSA_PKCS)
        assert pub.verify(b"x", sig, mechanism=Mechanism.SHA256_RSA_PKCS)
        n = len(list(session.get_objects()))
    print(f"OK mechanisms={len(mechanisms)} objects={n}")
""")


def _profile() -> VendorProfile:
    missing = [tool for tool in ("swtpm", "tpm2_ptool", "tpm2-abrmd", "dbus-daemon") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install swtpm swtpm-tools tpm2-tools tpm2-abrmd "
                    "libtss2-tcti-tabrmd0 libtpm2-pkcs11-1 libtpm2-pkcs11-tools dbus)")
    profile = load_profile(PROFILE)
    if profile.module is None:
        pytest.skip("libtpm2_pkcs11.so not installed (apt-get install libtpm2-pkcs11-1)")
    return profile


def _set_up(profile: VendorProfile, workdir: Path) -> Stage:
    assert profile.module is not None
    return set_up(profile, workdir, profile.module, profile.via)


def _smoke(stage: Stage, profile: VendorProfile) -> str:
    prov = stage.freeze()
    env = {**os.environ, **prov.env, "SMOKE_MODULE": prov.module, "SMOKE_LABEL": prov.token_label or "",
           "SMOKE_PIN": profile.user_pin.reveal(), "SMOKE_AES": prov.notes["aes_key_label"]}
    proc = subprocess.run([*prov.launcher, sys.executable, "-c", SMOKE], env=env, cwd=prov.cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's zombie can wait long for a PID 1 that does not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def _assert_gone(pids: list[int], within: float = 0.0) -> None:
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if _alive(p)], "daemons still running after the stage ended"


def test_token_usable_and_daemons_stopped(tmp_path: Path) -> None:
    profile = _profile()
    stage = _set_up(profile, tmp_path / "w")
    try:
        assert stage.created
        assert {d.name for d in stage.daemons} >= {"swtpm", "dbus-daemon", "tpm2-abrmd"}
        assert all(_alive(d.pid) for d in stage.daemons)
        assert "unsupported" in stage.notes["generate_key"]
        assert profile.user_pin.reveal() not in repr(stage.freeze())
        out = _smoke(stage, profile)
        assert out.startswith("OK mechanisms=") and "objects=3" in out, out  # aes256 + the new pair
    finally:
        pids = [d.pid for d in stage.daemons]
        stage.close()
    _assert_gone(pids)
    assert not (tmp_path / "w" / "tpm2" / "store").exists()


def test_two_workers_at_once(tmp_path: Path) -> None:
    """Two stages set up concurrently (ports chosen at run time, private buses) each see only their own token."""
    profile = _profile()
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(_set_up, profile, tmp_path / f"gw{i}") for i in range(2)]
        stages: list[Stage] = []
        errors: list[BaseException] = []
        for f in futures:
            try:
                stages.append(f.result())
            except BaseException as exc:  # close the other before failing
                errors.append(exc)
    pids = [d.pid for s in stages for d in s.daemons]
    try:
        assert not errors, errors
        a, b = stages
        assert a.env["TPM2TOOLS_TCTI"] != b.env["TPM2TOOLS_TCTI"]
        assert a.env["DBUS_SESSION_BUS_ADDRESS"] != b.env["DBUS_SESSION_BUS_ADDRESS"]
        with ThreadPoolExecutor(2) as pool:
            outs = list(pool.map(lambda s: _smoke(s, profile), stages))
        # Each token holds its AES key and its own new pair only: nothing crossed between the workers.
        assert all("objects=3" in out for out in outs), outs
    finally:
        for s in stages:
            s.close()
    _assert_gone(pids)


def test_killed_worker_leaves_no_daemons(tmp_path: Path) -> None:
    """A worker SIGKILLed while it holds a stage: the namespace holder stops its daemons."""
    _profile()  # skips when the stack is not installed
    if os.geteuid() != 0:
        pytest.skip("the holder that outlives a killed worker needs root (private namespace)")
    holder = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from conformance.vendor.profile import load_profile
        from conformance.vendor.provisioning import set_up
        p = load_profile({str(PROFILE)!r})
        stage = set_up(p, Path({str(tmp_path / "killed")!r}), p.module, p.via)
        print(stage.notes.get("tpm2_holder", "held"), *[d.pid for d in stage.daemons], flush=True)
        time.sleep(300)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        fields = proc.stdout.readline().split()
    finally:
        proc.kill()
        proc.wait()
    assert fields and fields[0] == "held", f"no holder: {' '.join(fields)}"
    pids = [int(p) for p in fields[1:]]
    assert len(pids) == 3
    _assert_gone(pids, within=10.0)


def test_missing_tool_names_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.vendor.provisioning import tpm2

    profile = load_profile(PROFILE)
    real_which = shutil.which
    monkeypatch.setattr(tpm2.shutil, "which", lambda name: None if name == "swtpm" else real_which(name))
    with pytest.raises(ProvisioningError, match=r"swtpm not found; install them \(apt-get install swtpm "):
        set_up(profile, tmp_path, profile.module or "libtpm2_pkcs11.so")


def test_port_taken_by_another_worker_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process wins swtpm's server port between our pick and swtpm's bind: swtpm fails, we pick again
    (and never mistake the winner's listener for our TPM)."""
    import socket

    from conformance.vendor.provisioning import tpm2

    profile = _profile()
    real, calls = tpm2._ctrl_socket, []
    taken, first_ctrl = real()
    with socket.socket() as winner:
        winner.bind(("127.0.0.1", taken))  # the other worker gets there first
        winner.listen(1)

        def first_pick_taken() -> tuple[int, socket.socket]:
            calls.append(taken)
            return (taken, first_ctrl) if len(calls) == 1 else real()

        monkeypatch.setattr(tpm2, "_ctrl_socket", first_pick_taken)
        stage = _set_up(profile, tmp_path / "w")
    pids = [d.pid for d in stage.daemons]
    try:
        assert len(calls) == 2
        assert f"p{taken}" not in stage.env["TPM2TOOLS_TCTI"]
        assert [d.name for d in stage.daemons].count("swtpm") == 1  # the failed one was reaped and forgotten
    finally:
        stage.close()
    _assert_gone(pids)
