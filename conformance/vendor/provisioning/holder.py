"""Holds a vendor's private mount + IPC namespace open, and cleans it up when its owner goes away.

Started by Isolation.start as `unshare --mount --ipc --propagation private -- python holder.py PIDFILE HOST_MNT_NS`.
It prints "ready", then reads stdin (a pipe from the pytest worker) until EOF: the worker closed it, or died —
even by SIGKILL. Then it stops every PID listed in PIDFILE (SIGTERM, then SIGKILL) and kills whatever else
still runs in the namespace, so a killed worker leaves no daemon behind.

Standalone on purpose (stdlib only, no package imports): it runs with `python -I -S` from any directory.
"""

from __future__ import annotations

import os
import signal
import sys
import time

GRACE = 3.0  # s between SIGTERM and SIGKILL (pkcsslotd takes ~1.5 s to exit on SIGTERM)


def _mnt_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's zombie may wait a while for a lazy init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def _listed(pidfile: str) -> list[int]:
    try:
        with open(pidfile, encoding="ascii") as f:
            return [int(line) for line in f if line.strip().isdigit()]
    except OSError:
        return []


def _kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def sweep(pidfile: str, own_ns: str, isolated: bool) -> None:
    """Stop the adopted daemons, then anything else left in this namespace (never outside it)."""
    # A PID counts only while it is still in our namespace: a recycled PID is some other process.
    pids = [p for p in _listed(pidfile) if p != os.getpid() and _mnt_ns(p) == own_ns]
    _kill(pids, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    _kill([p for p in pids if _alive(p)], signal.SIGKILL)
    if not isolated:  # namespace not ours after all: never sweep the host's processes
        return
    stragglers = [int(d) for d in os.listdir("/proc")
                  if d.isdigit() and int(d) != os.getpid() and _mnt_ns(d) == own_ns]
    _kill(stragglers, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: holder.py PIDFILE HOST_MNT_NS", file=sys.stderr)
        return 2
    pidfile, host_ns = argv[1], argv[2]
    own_ns = _mnt_ns("self") or ""
    isolated = bool(own_ns) and own_ns != host_ns
    # Ctrl-C and hang-ups belong to pytest; we end on EOF (or SIGTERM), after cleaning up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        sys.stdout.write("ready\n" if isolated else "not-isolated\n")
        sys.stdout.flush()
        sys.stdout.close()
        while os.read(0, 4096):
            pass
    except SystemExit:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the sweep short
        sweep(pidfile, own_ns, isolated)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
