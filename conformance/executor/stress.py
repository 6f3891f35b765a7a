"""Free-running stress in the module's process: races that steps cannot force. Threads start together at a
barrier with a tiny switch interval. Not replayable step by step — reports give the parameters to run it again.

- run_stress: the session provider under test; threads loop acquire → use → release. The harness keeps its own
  book (under its own lock, never around the provider's calls) and checks as it goes: while anyone holds the
  session every holder has the same, open one; every use works; afterwards no provider session is open.
- run_calls: raw PKCS#11 calls from several threads at once, to see whether the module survives them.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

from pkcs11 import KeyType, Mechanism
from pkcs11.constants import Attribute

from ..engine.families import FAMILIES
from ..labels import label
from ..outcomes import HarnessFault, describe, ours
from .actions import World, use
from .host import ModuleHost
from .protocol import CallStress, ProviderStress, StressAnswer
from .runner import thread_stacks
from .waiting import positions

_AES, _LABEL, _SHA256 = KeyType.AES, Attribute.LABEL, Mechanism.SHA256

MAX_VIOLATIONS = 5


def run_stress(host: ModuleHost, command: ProviderStress) -> StressAnswer:
    """The provider under test, many threads at once (see the module docstring)."""
    threads_n, iterations, uses, timeout = command.threads, command.iterations, command.uses, command.timeout
    if host.factory is None:
        return StressAnswer("error", ("stress needs the executor started with a --sut factory",))
    host.prepare(FAMILIES["provider"])  # the application starts logged out: the provider logs in
    world: World = host.new_world()
    provider = host.factory(world.open_session)
    book = threading.Lock()
    state: dict[str, Any] = {"holders": 0, "current": None}
    violations: list[str] = []
    barrier = threading.Barrier(threads_n)

    broken: list[BaseException] = []

    def violation(text: str, exc: BaseException | None = None) -> None:
        with book:
            if exc is not None and ours(exc):
                broken.append(exc)  # our own code raised: no provider finding (raised after the run)
            elif len(violations) < MAX_VIOLATIONS:
                violations.append(text)

    def worker(number: int) -> None:
        try:
            barrier.wait(timeout)
        except threading.BrokenBarrierError:
            return
        for k in range(iterations):
            try:
                session = provider.acquire()
            except Exception as exc:  # recorded by class name only
                violation(f"thread {number}, round {k}: acquire raised {type(exc).__name__}", exc)
                continue
            with book:
                # No ground-truth C_GetSessionInfo here: it would be one more unserialised concurrent call. A session
                # that is not open shows up as the use failing.
                if session is None:
                    violations.append(f"thread {number}, round {k}: acquire returned no session")
                elif state["holders"] and session is not state["current"]:
                    violations.append(f"thread {number}, round {k}: two different sessions held at the same time")
                state["holders"] += 1
                state["current"] = session
            try:
                world.provider_holds[number] = [session]
                use(world, number, uses[k % len(uses)])
            except Exception as exc:
                violation(f"thread {number}, round {k}: use({uses[k % len(uses)]!r}) raised {type(exc).__name__}", exc)
            finally:
                with book:
                    state["holders"] -= 1
                try:
                    provider.release()
                except Exception as exc:
                    violation(f"thread {number}, round {k}: release raised {type(exc).__name__}", exc)

    started = time.perf_counter()
    if not _free_run(worker, threads_n, "stress", command.switch_interval, timeout):
        return _stuck(host, tuple(violations), "stress")
    elapsed = time.perf_counter() - started
    if broken:
        raise HarnessFault(f"stress: {describe(broken[0])}")
    still_open = sum(1 for h in set(world.provider_handles) if host.ground_truth.session_info(h) is not None)
    if still_open:
        violations.append(f"{still_open} provider session(s) still open after every thread released")
    host.close_everything()
    return StressAnswer("failed" if violations else "passed", tuple(violations), open_calls=world.open_calls,
                        operations=threads_n * iterations, elapsed_s=round(elapsed, 3))


CALLS = {
    "keygen": lambda s, key: s.generate_key(_AES, 128, store=False),
    "attribute": lambda s, key: key[_LABEL],
    "random": lambda s, key: s.generate_random(128),
    "digest": lambda s, key: s.digest(b"conformance", mechanism=_SHA256),
}


def run_calls(host: ModuleHost, command: CallStress) -> StressAnswer:
    """Several threads making PKCS#11 calls at the same time, each on a session of its own (or one shared):
    the binding releases the GIL around every call, so the module sees truly concurrent calls."""
    threads_n, iterations, timeout = command.threads, command.iterations, command.timeout
    calls = [CALLS[c] for c in command.calls]
    host.close_everything()  # start logged out, with no fixture: this opener logs in
    opener = host.token.open(rw=True, user_pin=host.pin)
    sessions = [opener if command.shared else host.token.open(rw=True) for _ in range(threads_n)]
    needs_key = bool({"keygen", "attribute"} & set(command.calls))
    keys = [s.generate_key(_AES, 128, store=False, label=label("race")) if needs_key else None
            for s in sessions]
    errors: list[str] = []
    broken: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout)
            for k in range(iterations):
                calls[k % len(calls)](sessions[n], keys[n])
        except Exception as exc:
            if ours(exc):
                broken.append(exc)
            else:
                errors.append(f"thread {n}: {type(exc).__name__}")

    if not _free_run(worker, threads_n, "calls", command.switch_interval, timeout):
        return _stuck(host, tuple(errors), "calls")
    if broken:
        raise HarnessFault(f"call stress: {describe(broken[0])}")
    host.close_everything()
    return StressAnswer("failed" if errors else "passed", tuple(errors[:MAX_VIOLATIONS]))


def _stuck(host: ModuleHost, violations: tuple[str, ...], threads: str) -> StressAnswer:
    """Threads still running at the timeout: hung, with every stack and, with the tap, where each thread is."""
    lines, _ = positions(host.calls, threads) if host.calls is not None else ((), None)
    cause = ("the tap saw " + "; ".join(lines)) if lines else ""
    return StressAnswer("hung", violations, thread_stacks(), cause=cause, restart=True)


def _free_run(worker: Callable[[int], None], n: int, name: str, switch_interval: float, timeout: float) -> bool:
    """Run worker(0..n-1) on daemon threads under a tiny switch interval; False if any is still running at the
    timeout (the process must then be restarted: a thread is stuck inside the module or on a lock)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    try:
        workers = [threading.Thread(target=worker, args=(i,), name=f"{name}{i}", daemon=True) for i in range(n)]
        for t in workers:
            t.start()
        deadline = time.monotonic() + timeout
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))
    finally:
        sys.setswitchinterval(previous)
    return not any(t.is_alive() for t in workers)

