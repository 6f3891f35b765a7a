"""Deciding, for a step handed to its actor, whether the call blocked, is slow, or hung — by evidence first.

The evidence is the tap's (live/calls.py): whether the actor's thread is inside a PKCS#11 call right now, and how
many calls it has started. A call that is inside the module has got past every lock above it: it is not blocked,
it is the module's time, however long the module takes. A call that has made no PKCS#11 call since it was handed
over, and is outside the module, is waiting above it (python-pkcs11's session lock, a provider's lock): blocked.
A call that keeps making calls is progressing, not hung. Timing decides only where there is no evidence (no tap),
and a hang is declared only after a whole step timeout without progress.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from typing import Callable

from ..live.calls import InCall, ModuleCalls

# A step whose calls keep progressing is waited for up to this many step timeouts in all (then it is hung: a
# module that answers every call but never finishes the operation).
PATIENCE = 10
STILL = "tap: still making calls"


@dataclass(frozen=True)
class Decision:
    """How a wait ended. `done`: the step returned. Otherwise `inside` names the call the actor was in (the module
    holds it) or None (outside the module), and `evidence` says in one line how this was decided."""

    done: bool
    evidence: str = ""
    inside: str | None = None
    hung: bool = False  # an expected block that reached the module and is held there or never stops calling


class Waiter:
    """Waits for steps of one schedule. `finished(index, seconds)` waits up to `seconds` for the step's result."""

    def __init__(self, calls: ModuleCalls | None, finished: Callable[[int, float], bool], window: float,
                 timeout: float) -> None:
        self._calls = calls
        self._finished = finished
        self.window = window
        self.timeout = timeout

    def look(self, thread: int | None) -> InCall | None:
        return self._calls.where(thread) if self._calls is not None and thread is not None else None

    def expected_block(self, index: int, thread: int | None, before: InCall | None) -> Decision:
        """A call the model expects to block: watched for the block window; blocked only if it never reached the
        module (no call since `before`, the actor's position when the step was handed over, and none running)."""
        if self._finished(index, self.window):
            return Decision(True)
        now = self.look(thread)
        if now is None or before is None:
            return Decision(False, f"timing: no return within the {self.window:g} s block window")
        if now.in_module or now.calls > before.calls:
            # It reached the module: past the lock, so not blocked. The module's time: wait as for any call.
            decision = self.returns(index, thread, now)
            return Decision(decision.done, decision.evidence, decision.inside,
                            hung=decision.inside is not None or decision.evidence.startswith(STILL))
        return Decision(False, f"tap: no PKCS#11 call in {self.window:g} s, outside the module (waiting above it)")

    def returns(self, index: int, thread: int | None, last: InCall | None = None) -> Decision:
        """A call expected to return: hung only after a step timeout without progress (no new call, or one call
        that has not returned)."""
        last = last or self.look(thread)
        waited = 0.0
        while True:
            if self._finished(index, self.timeout):
                return Decision(True)
            waited += self.timeout
            now = self.look(thread)
            if now is None or last is None:
                return Decision(False, f"timing: no return within the {self.timeout:g} s step timeout")
            if now.calls > last.calls and waited < PATIENCE * self.timeout:
                last = now  # progressing: each call returns, the step is just long on this module
                continue
            if now.in_module:
                return Decision(False, f"tap: inside {now.function} for {now.seconds:.1f} s without returning",
                                now.function)
            return Decision(False, f"tap: outside the module with no PKCS#11 call for {self.timeout:g} s "
                                   "(waiting above it)" if now.calls == last.calls else
                                   f"{STILL} after {waited:g} s")

    def released(self, index: int, thread: int | None, seconds: float, since: InCall | None) -> bool:
        """A blocked call watched at the end of the schedule for a release the plan did not foresee: once it
        reaches the module (it was released and is working) it is waited for as any call."""
        if self._finished(index, seconds):
            return True
        now = self.look(thread)
        if now is not None and since is not None and (now.in_module or now.calls > since.calls):
            return self.returns(index, thread, now).done
        return False


def positions(calls: ModuleCalls, prefix: str = "") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Where every thread of this process (named `prefix`...) that has made PKCS#11 calls is, one line each, and
    the PKCS#11 functions threads are held in right now (empty: no thread is inside the module)."""
    lines: list[str] = []
    held: list[str] = []
    for thread in threading.enumerate():
        if thread.native_id is None or thread is threading.current_thread() or not thread.name.startswith(prefix):
            continue
        at = calls.where(thread.native_id)
        if at.calls == 0 and not at.in_module:
            continue  # never called the module (the reader thread, idle workers)
        if at.function is not None:
            held.append(at.function)
            lines.append(f"{thread.name}: inside {at.function} for {at.seconds:.1f} s")
        else:
            lines.append(f"{thread.name}: outside the module ({at.calls} calls made)")
    return tuple(lines), tuple(held)


class Watchdog:
    """At `deadline` seconds, unless cancelled, calls `report(lines, held)` with the threads' positions: the
    evidence a check body that does not finish leaves before the parent aborts the process.

    The parent's SIGABRT follows the report at once, and faulthandler then walks every thread's stack: so this
    thread keeps SIGABRT blocked (the dump starts at the thread stuck in the module, not here) and stays parked
    after reporting (a thread tearing itself down while the dump reads it can crash the dump half-way)."""

    def __init__(self, calls: ModuleCalls, deadline: float,
                 report: Callable[[tuple[str, ...], tuple[str, ...]], None]) -> None:
        self._cancelled = threading.Event()

        def watch() -> None:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGABRT})
            if not self._cancelled.wait(deadline):
                report(*positions(calls))
                self._cancelled.wait()

        self._thread = threading.Thread(target=watch, name="conformance-watchdog", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancelled.set()
