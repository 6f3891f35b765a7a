"""A private tpm2-pkcs11 token per worker: a software TPM (swtpm) on loopback, a private D-Bus session bus with
tpm2-abrmd on it, and a tpm2_ptool store holding one token with pre-provisioned keys.

Why each piece: tpm2_ptool shells out to tpm2_* tools that leak transient objects into a bare swtpm (addtoken then
fails with TPM_RC 0x902, out of object memory), so a resource manager (tpm2-abrmd) sits in front; abrmd talks D-Bus,
and a private session bus per worker keeps two workers (and the host) apart. The module cannot C_GenerateKey
(CKR_FUNCTION_NOT_SUPPORTED), so the secret key the checks need is made here with `tpm2_ptool addkey`.

The daemons run in the foreground as children of this process (posix_spawn, recorded by PID): Stage.close reaps
them with waitpid, where a self-forking daemon would be left to a PID 1 that may never reap it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from .base import ProvisioningError, Stage, stop_pid

APT = ("apt-get install swtpm swtpm-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 libtpm2-pkcs11-1 "
       "libtpm2-pkcs11-tools dbus")
TOOLS = ("swtpm", "dbus-daemon", "tpm2-abrmd", "tpm2_getcap", "tpm2_ptool")
AES_KEY_LABEL = "aes256"
READY_TIMEOUT = 15.0  # per daemon; a cold start on a loaded 2-core box takes well under 1 s
PORT_TRIES = 8  # workers pick ports at once: a clash is retried on fresh ports
SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes; keep a margin


class TPM2:
    kind: ClassVar[str] = "tpm2"
    # (key label, tpm2_ptool algorithm). Only what the module cannot make itself: an RSA pair via addkey costs
    # ~0.55 s a worker, C_GenerateKeyPair (store=True) in the module ~0.15 s.
    keys: ClassVar[tuple[tuple[str, str], ...]] = ((AES_KEY_LABEL, "aes256"),)

    def prepare(self, stage: Stage) -> None:
        exes = _find_tools()
        profile = stage.profile
        assert profile.token_label is not None and profile.so_pin is not None  # validated by the profile
        started = time.monotonic()
        _hold(stage)
        work = stage.workdir / "tpm2"
        store = work / "store"
        shutil.rmtree(work, ignore_errors=True)  # ours alone: a rerun in the same workdir starts from nothing
        store.mkdir(parents=True)

        def remove_token() -> None:  # the token's keys and the TPM's state; the daemons' logs stay for a post-mortem
            for sub in ("store", "state"):
                shutil.rmtree(work / sub, ignore_errors=True)

        stage.cleanups.append(remove_token)

        port = _start_swtpm(stage, exes["swtpm"], work)
        bus = _start_bus(stage, exes["dbus-daemon"], work)
        # A unique name as well as a private bus: harmless, and keeps workers apart should buses ever be shared.
        bus_name = f"com.intel.tss2.Tabrmd.p{port}"
        tcti = f"tabrmd:bus_type=session,bus_name={bus_name}"
        stage.env.update({
            "DBUS_SESSION_BUS_ADDRESS": bus,
            "TPM2TOOLS_TCTI": tcti,  # the tpm2_* tools tpm2_ptool runs
            "TPM2_PKCS11_TCTI": tcti,  # libtpm2_pkcs11.so
            "TPM2_PKCS11_STORE": str(store),
            "TPM2_PKCS11_LOG_LEVEL": "0",  # the module logs to stderr otherwise, into the checks' output
        })
        abrmd = _spawn(stage, "tpm2-abrmd", [exes["tpm2-abrmd"], "--session", "--allow-root", "--flush-all",
                                              f"--dbus-name={bus_name}", f"--tcti=swtpm:host=127.0.0.1,port={port}"],
                       work / "abrmd.log")
        _wait_getcap(stage, exes["tpm2_getcap"], abrmd, work / "abrmd.log")
        daemons_up = time.monotonic()

        ptool = exes["tpm2_ptool"]
        pin, so_pin = profile.user_pin.reveal(), profile.so_pin.reveal()
        out = stage.run([ptool, "init", f"--path={store}"], what=APT, timeout=120).stdout
        found = re.search(r"^id:\s*(\d+)", out, re.MULTILINE)
        if found is None:
            raise ProvisioningError("tpm2_ptool init printed no primary object id; check the libtpm2-pkcs11-tools version")
        try:
            stage.run([ptool, "addtoken", f"--pid={found.group(1)}", f"--label={profile.token_label}",
                       f"--userpin={pin}", f"--sopin={so_pin}", f"--path={store}"], what=APT, timeout=120)
        except ProvisioningError as exc:
            raise ProvisioningError(f"{exc}; check the token label and PINs in {profile.source or profile.name}") from None
        for label, algorithm in self.keys:
            stage.run([ptool, "addkey", f"--label={profile.token_label}", f"--key-label={label}", f"--userpin={pin}",
                       f"--algorithm={algorithm}", f"--path={store}"], what=APT, timeout=120)
        done = time.monotonic()

        stage.created = True
        stage.notes.update({
            "aes_key_label": AES_KEY_LABEL,
            "generate_key": "C_GenerateKey is unsupported by tpm2-pkcs11: secret keys are pre-provisioned",
            "generate_keypair": "key pairs only with CKA_TOKEN=true (store=True); session pairs: AttributeValueInvalid",
            "tpm2_setup_s": f"{done - started:.2f} (daemons {daemons_up - started:.2f})",
        })


def _hold(stage: Stage) -> None:
    """Start the daemons inside the stage's private namespace when we may: its holder stops them even if this
    worker is SIGKILLed. tpm2 needs no isolation otherwise, so without root it runs on (and says what it risks)."""
    if os.geteuid() != 0:
        stage.notes["tpm2_holder"] = "none (not root): a killed worker leaves swtpm, dbus-daemon and tpm2-abrmd running"
        return
    try:
        stage.isolate()
    except ProvisioningError as exc:
        stage.notes["tpm2_holder"] = f"none ({exc}): a killed worker leaves its daemons running"


def _find_tools() -> dict[str, str]:
    exes = {tool: shutil.which(tool) for tool in TOOLS}
    missing = [tool for tool, exe in exes.items() if exe is None]
    if missing:
        raise ProvisioningError(f"{', '.join(missing)} not found; install them ({APT})")
    return {tool: exe for tool, exe in exes.items() if exe is not None}


def _spawn(stage: Stage, name: str, argv: list[str], log: Path, pass_fd: int | None = None) -> int:
    """Start a daemon in the foreground as our child, output to `log` (and `pass_fd` as its fd 3), and record it
    on the stage at once (so any later failure stops it)."""
    full = [*stage.launcher, *argv]
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    # posix_spawn inherits every inheritable fd: close them, or a daemon holds e.g. xdist's pipes open (a close
    # of an fd another thread closed meanwhile is ignored by glibc).
    stray = [int(f) for f in os.listdir("/proc/self/fd") if f.isdigit() and int(f) > 2 and int(f) not in (fd, null)]
    actions: list[tuple[int, ...]] = [(os.POSIX_SPAWN_CLOSE, f) for f in stray if _inheritable(f)]
    actions += [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)]
    if pass_fd is not None:
        actions.append((os.POSIX_SPAWN_DUP2, pass_fd, 3))
    try:
        pid = os.posix_spawnp(full[0], full, stage.tool_env(), file_actions=actions)
    except FileNotFoundError:
        raise ProvisioningError(f"{full[0]} not found; install it ({APT})") from None
    finally:
        os.close(fd)
        os.close(null)
    stage.add_daemon(name, pid)
    return pid


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:  # the fd listdir itself used, closed by now
        return False


def _exited(pid: int) -> bool:
    """True once our child has exited; WNOWAIT leaves it for Stage.close to reap (no PID reuse in between)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def _ctrl_socket() -> tuple[int, socket.socket]:
    """A port P free on 127.0.0.1 for swtpm's server, and a listening socket we hold on P+1 for its control channel
    (the swtpm TCTI wants them adjacent). swtpm binds P itself (its server fd= option takes a connected socket, not
    a listening one): a worker racing us to P makes our swtpm fail to bind, and that is retried."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        ctrl = socket.socket()
        # tpm2-abrmd's swtpm TCTI opens a connection per command: after a few runs thousands of them sit in
        # TIME_WAIT on earlier swtpms' ports (31,000 here after a binding matrix), and a bind without SO_REUSEADDR
        # then finds no free pair at all. TIME_WAIT entries do not stop a new listener with it.
        ctrl.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            ctrl.bind(("127.0.0.1", port + 1))
            ctrl.listen(8)
        except OSError:
            ctrl.close()
            continue
        return port, ctrl
    raise ProvisioningError("no two adjacent free TCP ports on 127.0.0.1 for swtpm; free some ports and retry")


def _listens(pid: int, port: int) -> bool:
    """True when `pid` itself holds the listening socket on 127.0.0.1:`port` — a bare connect could reach another
    worker's swtpm that won the port from ours."""
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    inodes = {f"socket:[{r.split()[9]}]" for r in rows
              if r.split()[3] == "0A" and r.split()[1] == f"0100007F:{port:04X}"}  # LISTEN on 127.0.0.1
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def _start_swtpm(stage: Stage, exe: str, work: Path) -> int:
    log = work / "swtpm.log"
    state = work / "state"
    state.mkdir(parents=True, exist_ok=True)
    for _ in range(PORT_TRIES):
        port, ctrl = _ctrl_socket()
        with ctrl:
            pid = _spawn(stage, "swtpm", [
                exe, "socket", "--tpm2", "--tpmstate", f"dir={state}",
                # Loopback only: the TPM takes commands from anyone who can connect.
                "--server", f"type=tcp,port={port},bindaddr=127.0.0.1", "--ctrl", "type=tcp,fd=3",
                "--flags", "not-need-init,startup-clear"], log, pass_fd=ctrl.fileno())
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if _exited(pid):
                break
            if _listens(pid, port):
                return port
            time.sleep(0.005)
        else:
            raise ProvisioningError(f"swtpm did not listen on 127.0.0.1:{port} in {READY_TIMEOUT:.0f} s; see {log}")
        if "in use" not in _tail(log):
            raise ProvisioningError(f"swtpm exited at start ({_tail(log)}); see {log}")
        _forget(stage, pid)  # lost the port to another worker: reap it and try other ports
    raise ProvisioningError(f"swtpm found no free port in {PORT_TRIES} tries; see {log}")


def _forget(stage: Stage, pid: int) -> None:
    stop_pid(pid)
    stage.daemons[:] = [d for d in stage.daemons if d.pid != pid]


def _start_bus(stage: Stage, exe: str, work: Path) -> str:
    """A private session bus listening on a socket in the work dir (or a short temp dir: sun_path is short)."""
    sock = work / "bus"
    if len(str(sock)) > SUN_PATH_MAX:
        short = Path(tempfile.mkdtemp(prefix="p11bus."))
        stage.cleanups.append(lambda: shutil.rmtree(short, ignore_errors=True))
        sock = short / "bus"
    address = f"unix:path={sock}"
    log = work / "dbus.log"
    pid = _spawn(stage, "dbus-daemon", [exe, "--session", "--nofork", "--nopidfile", f"--address={address}"], log)
    deadline = time.monotonic() + READY_TIMEOUT
    while not sock.exists():
        if _exited(pid):
            raise ProvisioningError(f"dbus-daemon exited at start ({_tail(log)}); see {log}")
        if time.monotonic() > deadline:
            raise ProvisioningError(f"dbus-daemon made no socket at {sock} in {READY_TIMEOUT:.0f} s; see {log}")
        time.sleep(0.005)
    return address


def _wait_getcap(stage: Stage, exe: str, abrmd: int, log: Path) -> None:
    """Poll tpm2_getcap through abrmd until the TPM answers (abrmd registers its bus name when it is ready)."""
    env = stage.tool_env()
    deadline = time.monotonic() + READY_TIMEOUT
    detail = "no answer"
    while time.monotonic() < deadline:
        if _exited(abrmd):
            raise ProvisioningError(f"tpm2-abrmd exited at start ({_tail(log)}); see {log}")
        try:
            proc = subprocess.run([*stage.launcher, exe, "properties-fixed"], env=env, capture_output=True,
                                  text=True, timeout=5)
        except subprocess.TimeoutExpired:
            continue
        if proc.returncode == 0:
            return
        detail = (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]
        time.sleep(0.02)
    raise ProvisioningError(f"the TPM did not answer through tpm2-abrmd in {READY_TIMEOUT:.0f} s ({detail}); see {log}")
