"""What every provisioner and wrapper works on: the Stage (a vendor being set up for one worker), and what it
leaves behind for the executor child: Provisioned (module to load, environment, cwd, launcher, daemons).

Provisioners make the token (`prepare`), wrappers change how the module is reached (p11-kit, pkcs11-spy).
Every process they start is recorded by PID and stopped by PID in `Stage.close` — never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, Sequence

from ...pins import redact
from .errors import ProvisioningError
from .isolation import Isolation

if TYPE_CHECKING:
    from ..profile import VendorProfile

__all__ = ["Daemon", "Provisioned", "Provisioner", "ProvisioningError", "Stage", "Wrapper", "stop_pid"]


@dataclass(frozen=True)
class Provisioned:
    """How the executor child reaches the token: load `module` with `env`, in `cwd`, through `launcher`."""

    module: str
    env: Mapping[str, str]
    token_label: str | None
    token_uri: str | None
    workdir: str | None = None
    cwd: str | None = None
    launcher: tuple[str, ...] = ()  # command prefix (e.g. nsenter into the vendor's private namespace)
    tap: bool = False  # ground truth needs the tap: the module hands out a new instance per C_GetFunctionList
    trace_log: str | None = None  # pkcs11-spy's call trace, when the module is wrapped by the spy
    created: bool = False
    notes: Mapping[str, str] = field(default_factory=dict)
    # What differs for a further process on the token (another application; executor/applications.py).
    sibling_env: Mapping[str, str] = field(default_factory=dict)
    ground_truth: str | None = None  # the library ctypes opens for ground truth (same instance as the binding's)
    evidence: str | None = None  # the tap watching the calls (native/tap.c), or None: timing only


class Provisioner(Protocol):
    """One kind of token set-up. `prepare` makes the token (or finds it) before any process loads the module."""

    kind: ClassVar[str]

    def prepare(self, stage: Stage) -> None: ...


class Wrapper(Protocol):
    """A layer between python-pkcs11 and the module under test (p11-kit-proxy, pkcs11-spy)."""

    name: ClassVar[str]

    def apply(self, stage: Stage) -> None: ...


@dataclass
class Daemon:
    name: str
    pid: int


@dataclass
class Stage:
    """A vendor being set up for one worker. Mutable while provisioners and wrappers run; `freeze()` gives the
    Provisioned the executor uses, `close()` undoes everything (daemons by PID, namespace, created files)."""

    profile: VendorProfile
    workdir: Path
    module: str  # what the binding will load (wrappers replace it)
    real_module: str  # the module under test
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    token_label: str | None = None
    token_uri: str | None = None
    tap: bool = False
    trace_log: str | None = None
    ground_truth: str | None = None
    evidence: str | None = None
    sibling_env: dict[str, str] = field(default_factory=dict)
    created: bool = False
    notes: dict[str, str] = field(default_factory=dict)
    daemons: list[Daemon] = field(default_factory=list)
    isolation: Isolation | None = None
    cleanups: list[Any] = field(default_factory=list)  # callables run by close(), last first

    # --- helpers for provisioners --------------------------------------------------------------------------

    def secrets(self) -> list[str]:
        return self.profile.pin_values()

    def isolate(self) -> Isolation:
        """The vendor's private mount + IPC namespace (made on first use); later commands run inside it."""
        if self.isolation is None:
            self.isolation = Isolation.start(self.workdir / "ns")
        return self.isolation

    @property
    def launcher(self) -> tuple[str, ...]:
        return self.isolation.prefix if self.isolation is not None else ()

    def tool_env(self) -> dict[str, str]:
        """The environment for the vendor's own tools and daemons: this process's, without the PYTHONPATH that
        leads our Python children to the harness's packages (tpm2_ptool is a script on the system's python3: with
        it, it imported this environment's `cryptography`, which the system's tpm2-pytss cannot use), plus the
        stage's variables."""
        return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **self.env}

    def run(self, cmd: Sequence[str], *, input: str | None = None, timeout: float = 60.0, what: str | None = None,
            cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a set-up tool inside the vendor's namespace and environment; a failure is a ProvisioningError
        naming the tool, with its last line of output (PINs redacted: tools echo their arguments)."""
        full = [*self.launcher, *cmd]
        try:
            proc = subprocess.run(full, input=input, env=self.tool_env(), cwd=cwd or self.cwd,
                                  capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise ProvisioningError(f"{cmd[0]} not found; install it ({what or 'see the profile'})") from None
        except subprocess.TimeoutExpired:
            raise ProvisioningError(f"{cmd[0]} did not finish in {timeout:.0f} s") from None
        if proc.returncode != 0:
            out = (proc.stderr.strip() or proc.stdout.strip())
            detail = redact(out.splitlines()[-1], self.secrets()) if out else f"exit {proc.returncode}"
            raise ProvisioningError(f"{os.path.basename(cmd[0])} failed ({detail})")
        return proc

    def add_daemon(self, name: str, pid: int) -> None:
        """Record a process this stage started, to be stopped by PID (also by the namespace holder if we die)."""
        self.daemons.append(Daemon(name, pid))
        if self.isolation is not None:
            self.isolation.adopt(pid)

    def freeze(self) -> Provisioned:
        return Provisioned(
            module=self.module, env=dict(self.env), token_label=self.token_label, token_uri=self.token_uri,
            workdir=str(self.workdir), cwd=self.cwd, launcher=self.launcher, tap=self.tap,
            trace_log=self.trace_log, created=self.created, notes=dict(self.notes), ground_truth=self.ground_truth,
            evidence=self.evidence, sibling_env=dict(self.sibling_env),
        )

    def close(self) -> None:
        """Undo everything, last first: cleanups, daemons (SIGTERM, then SIGKILL), the namespace."""
        while self.cleanups:
            try:
                self.cleanups.pop()()
            except Exception:  # teardown goes on: one failure must not leave daemons behind
                pass
        for daemon in reversed(self.daemons):
            stop_pid(daemon.pid)
        self.daemons.clear()
        if self.isolation is not None:
            self.isolation.close()
            self.isolation = None


def stop_pid(pid: int, grace: float = 3.0) -> None:
    """SIGTERM, wait up to `grace` s, then SIGKILL: a daemon we started, by its PID."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it
            if done:
                return
        except ChildProcessError:  # not our child (it forked itself): poll for existence
            if not _alive(pid):
                return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for init to reap it (which can take seconds in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
