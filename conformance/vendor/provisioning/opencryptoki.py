"""A private OpenCryptoki 3.8.1 soft token (libpkcs11_sw) per worker, with its own pkcsslotd.

OpenCryptoki keeps all its state at compiled-in, system-wide places: /etc/opencryptoki, /var/lib/opencryptoki,
/run/pkcsslotd.{pid,socket}, /run/lock/opencryptoki, /dev/shm and SysV shared memory. There is no option to move
them, so each worker gets a private mount + IPC namespace (Isolation) with empty tmpfs on /run and /dev/shm and
bind-mounted copies of the two directories, and runs its own pkcsslotd and pkcsconf inside. The host's
OpenCryptoki (and any pkcsslotd running there) is never touched.
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import ClassVar

from ...pins import PinUnavailable
from .base import ProvisioningError, Stage

ETC = "/etc/opencryptoki"
VAR = "/var/lib/opencryptoki"
LOCKS = "/run/lock/opencryptoki"  # /var/lock -> /run/lock on Debian
SOCKET = "/run/pkcsslotd.socket"
SLOT = 3  # any id works; the soft token is the only slot configured
FACTORY_SO_PIN = "87654321"  # a fresh soft token's SO PIN (public, documented)
PIN_LENGTHS = range(4, 9)  # the sw token's CKA min/max PIN length
LABEL_MAX = 32
START_TIMEOUT = 10.0
INSTALL = "apt-get install opencryptoki"
WHY = ("OpenCryptoki keeps its configuration, token store, daemon socket and shared memory at compiled-in "
       "system-wide paths, so each worker runs its own pkcsslotd in a private mount + IPC namespace")


def _tool(name: str) -> str:
    # /usr/sbin is not on every PATH (non-login shells, CI images).
    exe = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if exe is None:
        raise ProvisioningError(f"{name} not found; install it ({INSTALL})")
    return exe


def conf_text(slot: int = SLOT) -> str:
    """opencryptoki.conf with only the software token (the package default also lists tpm/ica/cca/ep11)."""
    return f"version opencryptoki-3.1\n\nslot {slot}\n{{\nstdll = libpkcs11_sw.so\n}}\n"


def check_token_fields(stage: Stage) -> tuple[str, str, str]:
    """(label, SO PIN, user PIN) as the sw token accepts them; ProvisioningError naming the profile field."""
    profile = stage.profile
    where = profile.source or profile.name
    label = profile.token_label or ""
    if not label or len(label.encode()) > LABEL_MAX:
        raise ProvisioningError(f"{where}: token.label must be 1-{LABEL_MAX} bytes for OpenCryptoki")
    pins: list[str] = []
    for field, secret in (("token.so_pin", profile.so_pin), ("token.user_pin", profile.user_pin)):
        if secret is None:
            raise ProvisioningError(f"{where}: {field} is missing; OpenCryptoki's token needs it")
        try:
            value = secret.reveal()
        except PinUnavailable as exc:
            raise ProvisioningError(f"{where}: {field}: {exc}") from None
        if len(value) not in PIN_LENGTHS:
            # The length only, never the PIN.
            raise ProvisioningError(f"{where}: {field} has {len(value)} characters; the OpenCryptoki soft token "
                                    f"takes {PIN_LENGTHS.start}-{PIN_LENGTHS.stop - 1}: change it in the profile")
        pins.append(value)
    return label, pins[0], pins[1]


class OpenCryptoki:
    kind: ClassVar[str] = "opencryptoki"

    def prepare(self, stage: Stage) -> None:
        slotd, pkcsconf = _tool("pkcsslotd"), _tool("pkcsconf")
        label, so_pin, user_pin = check_token_fields(stage)
        try:
            gid = grp.getgrnam("pkcs11").gr_gid
        except KeyError:
            raise ProvisioningError(f"group pkcs11 does not exist; the opencryptoki package makes it ({INSTALL})") \
                from None
        root = stage.workdir / "opencryptoki"
        etc, var = root / "etc", root / "lib"
        self._populate(etc, var, gid)
        stage.cleanups.append(lambda: shutil.rmtree(root, ignore_errors=True))

        iso = stage.isolate()
        iso.tmpfs("/run")
        iso.tmpfs("/dev/shm", mode="1777")
        iso.bind(etc, ETC)
        iso.bind(var, VAR)
        # The lock directories live on the private /run; the library wants them group pkcs11, mode 0770.
        for inside in ("/run/lock", LOCKS, f"{LOCKS}/swtok"):
            path = iso.path(inside)
            path.mkdir(exist_ok=True)
            if inside != "/run/lock":
                os.chown(path, 0, gid)
                path.chmod(0o770)
            else:
                path.chmod(0o1777)

        self._start_daemon(stage, slotd, root / "pkcsslotd.log")

        # Factory state: initialise with the factory SO PIN (label from stdin), then set both PINs.
        slot = str(SLOT)
        stage.run([pkcsconf, "-c", slot, "-I", "-S", FACTORY_SO_PIN], input=f"{label}\n", what=INSTALL)
        stage.run([pkcsconf, "-c", slot, "-P", "-S", FACTORY_SO_PIN, "-n", so_pin], what=INSTALL)
        stage.run([pkcsconf, "-c", slot, "-u", "-S", so_pin, "-n", user_pin], what=INSTALL)  # -u: C_InitPIN
        stage.created = True
        stage.notes["isolation"] = WHY

    @staticmethod
    def _populate(etc: Path, var: Path, gid: int) -> None:
        shutil.rmtree(etc.parent, ignore_errors=True)  # a fresh token every time
        etc.mkdir(parents=True)
        if Path(ETC).is_dir():  # keep whatever else the package ships next to opencryptoki.conf
            shutil.copytree(ETC, etc, dirs_exist_ok=True)
        (etc / "opencryptoki.conf").write_text(conf_text())
        for d in (var, var / "swtok", var / "swtok" / "TOK_OBJ"):
            d.mkdir(exist_ok=True)
            if d != var:
                os.chown(d, 0, gid)
                d.chmod(0o770)

    @staticmethod
    def _start_daemon(stage: Stage, slotd: str, log: Path) -> None:
        # -f: in the foreground, so it is our child (stopped and reaped by PID; a self-forked daemon would be
        # orphaned to init, which may leave it a zombie for seconds).
        with open(log, "ab") as out:
            proc = subprocess.Popen([*stage.launcher, slotd, "-f", "-l", str(log)], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, env=stage.tool_env(),
                                    start_new_session=True)
        # nsenter execs the daemon (no fork for mount/IPC namespaces): proc.pid is pkcsslotd's own PID.
        stage.add_daemon("pkcsslotd", proc.pid)
        stage.cleanups.append(lambda: _stop(stage, proc))
        assert stage.isolation is not None
        socket = stage.isolation.path(SOCKET)
        deadline = time.monotonic() + START_TIMEOUT
        while not socket.exists():
            if proc.poll() is not None:
                raise ProvisioningError(f"pkcsslotd exited at start (exit {proc.returncode}: {_last_line(log)})")
            if time.monotonic() > deadline:
                raise ProvisioningError(f"pkcsslotd did not open {SOCKET} in {START_TIMEOUT:.0f} s ({_last_line(log)})")
            time.sleep(0.005)


def _stop(stage: Stage, proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (pkcsslotd -f exits in a few ms), SIGKILL after 3 s; reaped through the Popen (no ResourceWarning),
    then struck off the stage's daemons so its PID, free again, is never signalled a second time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    stage.daemons[:] = [d for d in stage.daemons if d.pid != proc.pid]


def _last_line(log: Path) -> str:
    # The log goes with the work directory when the failed stage is closed: quote it instead of pointing at it.
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "no log"
