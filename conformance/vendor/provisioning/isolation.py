"""A private mount + IPC namespace for one vendor in one pytest worker.

Some modules keep system-wide state at compiled-in paths (OpenCryptoki: /etc/opencryptoki, /var/lib/opencryptoki,
/run, SysV shm), and p11-kit as root reads only /etc/pkcs11 and /usr/share/p11-kit. Inside the namespace every
set-up tool, daemon and the executor child (through `prefix`) sees private copies of those paths, so workers
never meet and the host is never changed.

A holder process (holder.py, started under `unshare`) keeps the namespace alive. Its stdin is a pipe from us:
when we close it — or die, even by SIGKILL — it stops every adopted daemon and anything else left inside.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO, Sequence

from .errors import ProvisioningError

HOLDER = Path(__file__).with_name("holder.py")
READY_TIMEOUT = 10.0  # s for unshare + python start-up
CLOSE_TIMEOUT = 10.0  # s: the holder's SIGTERM grace (3 s) plus margin
NEEDS_ROOT = ("run the harness as root (in a container: --cap-add SYS_ADMIN, or --privileged), "
              "or use a profile that needs no isolation")


class Isolation:
    """The namespace, held open by `holder_pid`. Commands join it through `prefix` (nsenter, same cwd)."""

    def __init__(self, directory: Path, holder: subprocess.Popen[bytes], nsenter: str) -> None:
        self.directory = directory
        self.pidfile = directory / "pids"
        self._holder: subprocess.Popen[bytes] | None = holder
        self.holder_pid = holder.pid
        # --wd=. keeps the caller's working directory (nsenter into a mount namespace would reset it to /).
        self.prefix: tuple[str, ...] = (nsenter, f"--target={holder.pid}", "--mount", "--ipc", "--wd=.", "--")

    @classmethod
    def start(cls, directory: Path) -> Isolation:
        """Make the namespace; ProvisioningError (with the fix) if this process may not."""
        if os.geteuid() != 0:
            raise ProvisioningError(f"a private mount namespace needs root (CAP_SYS_ADMIN); {NEEDS_ROOT}")
        unshare, nsenter = shutil.which("unshare"), shutil.which("nsenter")
        if unshare is None or nsenter is None:
            raise ProvisioningError("unshare/nsenter not found; install them (apt-get install util-linux)")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "pids").write_text("")
        log = directory / "holder.log"
        host_ns = os.readlink("/proc/self/ns/mnt")
        with open(log, "wb") as err:
            # New session: Ctrl-C in the terminal goes to pytest, which closes us in order; cwd / so the holder
            # pins no directory. Our end of the pipe is close-on-exec, so no daemon keeps it open after we die.
            holder = subprocess.Popen(
                [unshare, "--mount", "--ipc", "--propagation", "private", "--",
                 sys.executable, "-I", "-S", str(HOLDER), str(directory / "pids"), host_ns],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, cwd="/", start_new_session=True)
        assert holder.stdout is not None
        line = _read_line(holder.stdout, READY_TIMEOUT)
        holder.stdout.close()
        if line != "ready":
            _end(holder)
            why = _last_line(log) or (line or "no answer")
            raise ProvisioningError(f"could not make a private mount namespace (unshare: {why}); {NEEDS_ROOT}")
        return cls(directory, holder, nsenter)

    # --- used by provisioners ------------------------------------------------------------------------------

    def adopt(self, pid: int) -> None:
        """The holder stops this PID when the namespace ends (also if the worker dies first)."""
        with open(self.pidfile, "a", encoding="ascii") as f:
            f.write(f"{pid}\n")

    def run(self, cmd: Sequence[str], what: str) -> None:
        """Run a command inside (no PINs here: mounts and directories only)."""
        try:
            proc = subprocess.run([*self.prefix, *cmd], capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            raise ProvisioningError(f"{what} in the private namespace did not finish in 30 s") from None
        if proc.returncode != 0:
            out = proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}"
            raise ProvisioningError(f"{what} in the private namespace failed ({out.splitlines()[-1]})")

    def bind(self, source: Path, target: str) -> None:
        """Mount the host directory (or file) `source` over `target`, which must exist inside."""
        self.run(["mount", "--bind", str(source), target], f"bind-mounting {source} on {target}")

    def tmpfs(self, target: str, mode: str = "0755") -> None:
        """An empty private tmpfs over `target` (e.g. /run; /dev/shm wants mode 1777)."""
        self.run(["mount", "-t", "tmpfs", "-o", f"mode={mode}", "tmpfs", target], f"mounting a tmpfs on {target}")

    def path(self, inside: str) -> Path:
        """The host path of `inside` as the namespace sees it (through /proc/<holder>/root).

        Symlinks are followed inside the namespace: an absolute link like /var/run -> /run would otherwise be
        resolved against the host's root and silently reach the host's files."""
        root = Path(f"/proc/{self.holder_pid}/root")
        parts = [p for p in inside.split("/") if p not in ("", ".")]
        done: list[str] = []
        for _ in range(40):  # bound symlink loops like the kernel does
            while parts:
                part = parts.pop(0)
                if part == "..":
                    if done:
                        done.pop()
                    continue
                candidate = root.joinpath(*done, part)
                if candidate.is_symlink():
                    target = os.readlink(candidate)
                    rest = [p for p in target.split("/") if p not in ("", ".")]
                    if target.startswith("/"):
                        done = []
                    parts = rest + parts
                    break
                done.append(part)
            else:
                return root.joinpath(*done)
        raise ProvisioningError(f"too many symbolic links under {inside} in the private namespace")

    def close(self) -> None:
        """End the namespace: EOF to the holder, which stops the adopted daemons; bounded wait."""
        holder, self._holder = self._holder, None
        if holder is not None:
            _end(holder)

    @property
    def alive(self) -> bool:
        return self._holder is not None and self._holder.poll() is None


def _end(holder: subprocess.Popen[bytes]) -> None:
    if holder.stdin is not None:
        try:
            holder.stdin.close()
        except OSError:
            pass
    try:
        holder.wait(timeout=CLOSE_TIMEOUT)
    except subprocess.TimeoutExpired:
        holder.kill()  # its daemons were already told to stop; the namespace goes with its last process
        holder.wait()


def _read_line(stream: IO[bytes], timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline().decode("ascii", "replace").strip() if ready else ""


def _last_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""
