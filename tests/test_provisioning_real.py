"""Real modules provisioned end to end (OpenCryptoki in its private namespace, SoftHSM behind p11-kit): the token
works from a child launched like the executor's, workers do not see each other, and nothing is left behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from conformance.vendor.profile import VendorProfile, load_profile
from conformance.vendor.provisioning import Provisioned, ProvisioningError, Stage, set_up

REPO = Path(__file__).resolve().parent.parent
ROOT = os.geteuid() == 0

# What the executor child does, in miniature: load the module, find the token, log in, make and list keys.
SMOKE = r"""
import json, os, sys
import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
module, label, tag = sys.argv[1:4]
lib = pkcs11.lib(module)
token = lib.get_token(token_label=label)
with token.open(user_pin=os.environ["SMOKE_PIN"], rw=True) as s:
    before = sorted(o.label for o in s.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))
    key = s.generate_key(KeyType.AES, 128, label=tag, store=True)
    key.encrypt(b"x" * 16, mechanism_param=b"\0" * 16)
    pub, priv = s.generate_keypair(KeyType.RSA, 1024, label=tag, store=False)
    priv.sign(b"hello", mechanism=Mechanism.RSA_PKCS)
print(json.dumps({"library": lib.library_description, "before": before}))
"""


def _profile(name: str) -> VendorProfile:
    profile = load_profile(REPO / "conformance" / "profiles" / f"{name}.toml")
    if profile.module is None:
        pytest.skip(f"{name}: {profile.module_paths[0]} is not installed (see the comment in vendors/{name}.toml)")
    return profile


def _require(name: str) -> VendorProfile:
    if name == "opencryptoki" and not ROOT:
        pytest.skip("opencryptoki needs root: its private pkcsslotd runs in a mount + IPC namespace")
    return _profile(name)


@pytest.fixture
def stages(tmp_path: Path) -> Iterator[list[Stage]]:
    """Stages made by a test, closed at its end even when it fails."""
    made: list[Stage] = []
    yield made
    for stage in made:
        stage.close()


def _up(profile: VendorProfile, workdir: Path, stages: list[Stage]) -> Stage:
    assert profile.module is not None
    try:
        stage = set_up(profile, workdir, profile.module, profile.via)
    except ProvisioningError as exc:
        pytest.fail(f"provisioning {profile.name} failed: {exc}")
    stages.append(stage)
    return stage


def _smoke(profile: VendorProfile, prov: Provisioned, tag: str) -> dict[str, object]:
    proc = subprocess.run(
        [*prov.launcher, sys.executable, "-c", SMOKE, prov.module, prov.token_label or "", tag],
        env={**os.environ, **prov.env, "SMOKE_PIN": profile.user_pin.reveal()}, cwd=prov.cwd,
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def _state(pid: int) -> str:
    """The process's state letter, or "gone"; a zombie ("Z") waits only for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat.rsplit(")", 1)[1].split()[0]


def _host_fingerprint() -> str:
    """The host's system-wide paths a vendor might touch: names, sizes, mtimes and module registrations."""
    h = hashlib.sha256()
    for root in ("/etc/opencryptoki", "/var/lib/opencryptoki", "/etc/pkcs11", "/usr/share/p11-kit/modules"):
        h.update(f"{root} {os.path.exists(root)}\n".encode())
        for directory, dirs, files in sorted(os.walk(root)):
            for name in sorted(dirs + files):
                st = os.lstat(os.path.join(directory, name))
                h.update(f"{directory}/{name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@pytest.mark.parametrize("name", ["opencryptoki", "softhsm-p11kit"])
def test_token_usable_from_the_launcher_and_nothing_left(name: str, tmp_path: Path, stages: list[Stage]) -> None:
    profile = _require(name)
    host = _host_fingerprint()
    stage = _up(profile, tmp_path / "w", stages)
    prov = stage.freeze()
    assert prov.created
    if name == "softhsm-p11kit":
        assert prov.tap and "p11-kit" in prov.notes
    else:
        assert "isolation" in prov.notes
    first = _smoke(profile, prov, "one")
    again = _smoke(profile, prov, "two")
    assert first["before"] == [] and again["before"] == ["one"]  # the token persists across children
    watched = [d.pid for d in stage.daemons] + ([stage.isolation.holder_pid] if stage.isolation else [])
    stage.close()
    assert {pid: _state(pid) for pid in watched} == {pid: "gone" for pid in watched}
    assert _host_fingerprint() == host, "the host's OpenCryptoki or p11-kit configuration changed"


@pytest.mark.parametrize("name", ["opencryptoki", "softhsm-p11kit"])
def test_two_workers_do_not_see_each_others_tokens(name: str, tmp_path: Path, stages: list[Stage]) -> None:
    profile = _require(name)
    one, two = _up(profile, tmp_path / "gw0", stages), _up(profile, tmp_path / "gw1", stages)
    assert _smoke(profile, one.freeze(), "gw0")["before"] == []
    assert _smoke(profile, two.freeze(), "gw1")["before"] == []
    assert _smoke(profile, one.freeze(), "gw0-again")["before"] == ["gw0"]


@pytest.mark.skipif(not ROOT, reason="the namespace holder needs root (CAP_SYS_ADMIN)")
def test_killed_worker_leaves_no_daemon(tmp_path: Path) -> None:
    _require("opencryptoki")
    worker_script = (
        "import sys, time\nfrom pathlib import Path\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from conformance.vendor.profile import load_profile\nfrom conformance.vendor.provisioning import set_up\n"
        f"p = load_profile({str(REPO / 'conformance' / 'profiles' / 'opencryptoki.toml')!r})\n"
        f"s = set_up(p, Path({str(tmp_path / 'killed')!r}), p.module, p.via)\n"
        "print(s.isolation.holder_pid, *[d.pid for d in s.daemons], flush=True)\n"
        "time.sleep(300)\n")
    worker = subprocess.Popen([sys.executable, "-c", worker_script], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        pids = [int(p) for p in worker.stdout.readline().split()]
        assert len(pids) == 2 and all(_state(p) not in ("gone", "Z") for p in pids), "stage did not come up"
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()
    deadline = time.monotonic() + 10
    while any(_state(p) not in ("gone", "Z") for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert {p: _state(p) in ("gone", "Z") for p in pids} == {p: True for p in pids}, \
        "the holder did not stop pkcsslotd after its worker was killed"


def test_opencryptoki_refuses_pin_lengths_before_starting_anything(tmp_path: Path) -> None:
    profile = _profile("opencryptoki")
    data = profile.to_dict()
    data["token"]["user_pin"] = "123456789"  # 9 characters: the soft token takes 4-8
    bad = VendorProfile.from_dict(data, source="vendors/opencryptoki.toml")
    from conformance.vendor.provisioning.opencryptoki import OpenCryptoki

    stage = Stage(profile=bad, workdir=tmp_path, module=profile.module or "", real_module=profile.module or "")
    with pytest.raises(ProvisioningError) as info:
        OpenCryptoki().prepare(stage)
    message = str(info.value)
    assert "token.user_pin" in message and "4-8" in message and "123456789" not in message
    assert stage.isolation is None and not stage.daemons


def test_vendor_tools_run_without_our_pythonpath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The vendor's own tools (tpm2_ptool is a script on the system's python3) run without the PYTHONPATH that
    leads the harness's Python children to its packages: with it, tpm2_ptool imported this environment's
    `cryptography` and failed. The stage's own variables are kept."""
    profile = _profile("softhsm")
    monkeypatch.setenv("PYTHONPATH", "/harness/site-packages")
    stage = Stage(profile=profile, workdir=tmp_path, module=profile.module or "", real_module=profile.module or "",
                  env={"SOFTHSM2_CONF": "/x/softhsm2.conf"})
    out = stage.run([sys.executable, "-c", "import os; print(os.environ.get('PYTHONPATH'), os.environ['SOFTHSM2_CONF'])"])
    assert out.stdout.split() == ["None", "/x/softhsm2.conf"]
