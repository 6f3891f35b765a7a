"""The processes of a run take turns on a token that is not disposable (conformance/vendor/sharing.py: "one
process of the run at a time on a token that is not disposable")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conformance.vendor.profile import VendorProfile
from conformance.vendor.sharing import lock_path, taking_turns


def profile(disposable: bool, conf: str = "/tmp/a.conf", label: str = "partition") -> VendorProfile:
    return VendorProfile.from_dict({
        "name": "shared", "module": {"path": sys.executable, "env": {"SOFTHSM2_CONF": conf}},
        "token": {"label": label, "disposable": disposable,
                  **({"user_pin": "1234", "so_pin": "123456"} if disposable else {"user_pin": "env:SHARED_PIN"})},
        "provisioning": {"kind": "softhsm2" if disposable else "none"}})


HOLDER = """
import sys, time
from pathlib import Path
from conformance.vendor.profile import VendorProfile
from conformance.vendor.sharing import taking_turns
profile = VendorProfile.from_dict({"name": "shared", "module": {"path": sys.executable, "env": {"SOFTHSM2_CONF": sys.argv[3]}},
    "token": {"label": "partition", "user_pin": "env:SHARED_PIN", "disposable": False}, "provisioning": {"kind": "none"}})
log = Path(sys.argv[1])
with taking_turns(profile):
    with log.open("a") as f:
        f.write(f"in {sys.argv[2]}\\n")
    time.sleep(0.3)
    with log.open("a") as f:
        f.write(f"out {sys.argv[2]}\\n")
"""


def test_processes_on_one_shared_token_take_turns(tmp_path: Path) -> None:
    """Three processes on one token that is not disposable: each one's turn ends before the next one's begins."""
    log, conf = tmp_path / "turns.log", str(tmp_path / "softhsm2.conf")
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(log), str(i), conf]) for i in range(3)]
    assert [p.wait(timeout=30) for p in procs] == [0, 0, 0]
    lines = log.read_text().splitlines()
    assert len(lines) == 6
    for first, second in zip(lines[::2], lines[1::2]):
        assert first.startswith("in ") and second == "out " + first[3:], lines


def test_one_lock_per_token(tmp_path: Path) -> None:
    """The lock is named for the token the profile reaches: the same selection and environment share it; another
    token store or label has its own."""
    a = profile(False, conf=str(tmp_path / "a.conf"))
    assert lock_path(a) == lock_path(profile(False, conf=str(tmp_path / "a.conf")))
    assert lock_path(a) != lock_path(profile(False, conf=str(tmp_path / "b.conf")))
    assert lock_path(a) != lock_path(profile(False, conf=str(tmp_path / "a.conf"), label="other"))


def test_a_disposable_token_is_never_waited_for(tmp_path: Path) -> None:
    """A disposable token is each process's own: nothing to wait for, no lock file made."""
    mine = profile(True, conf=str(tmp_path / "own.conf"))
    with taking_turns(mine):
        with taking_turns(mine):  # would deadlock if it locked
            pass
    assert not lock_path(mine).exists()
