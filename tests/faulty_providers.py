"""Session providers with one deliberate fault each — fakes of a *user's pool*, for testing that the `sut` checks
catch them (never used as the system under test of a real run). Each follows the --sut contract:
FACTORY(open_session) -> provider with acquire(), release() and `with provider as session:`.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable


class _Base:
    def __enter__(self) -> Any:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> Any:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


class FaithfulProvider(_Base):
    """Correct: refcounted under a lock, the open failure leaves no phantom holder, closes on the last release, and
    refuses a release by a thread that holds nothing (a stray release in an error path leaves it intact)."""

    def __init__(self, open_session: Callable[[], Any]) -> None:
        self._open = open_session
        self._lock = threading.Lock()
        self._session: Any = None
        self._count = 0
        self._holds: dict[int, int] = {}  # thread -> its acquires not yet released

    def acquire(self) -> Any:
        with self._lock:
            if self._count == 0:
                self._session = self._open()
            self._count += 1
            me = threading.get_ident()
            self._holds[me] = self._holds.get(me, 0) + 1
            return self._session

    def release(self) -> None:
        with self._lock:
            me = threading.get_ident()
            if not self._holds.get(me):
                raise RuntimeError("release() without an acquire() by this thread")
            self._holds[me] -= 1
            self._count -= 1
            if self._count == 0:
                session, self._session = self._session, None
                session.close()


class NoLockProvider(FaithfulProvider):
    """Fault: the refcount and the first open are not under a lock (two threads can both open)."""

    def acquire(self) -> Any:
        if self._count == 0:
            self._session = self._open()
        time.sleep(0)  # a yield point where the real race happens
        self._count += 1
        return self._session

    def release(self) -> None:
        self._count -= 1
        if self._count == 0:
            session, self._session = self._session, None
            if session is not None:
                session.close()


class NeverClosesProvider(FaithfulProvider):
    """Fault: the last release does not close the session (it leaks)."""

    def release(self) -> None:
        with self._lock:
            self._count -= 1
            if self._count == 0:
                self._session = None


class ClosesEarlyProvider(FaithfulProvider):
    """Fault: every release closes the session, even while other holders still use it."""

    def release(self) -> None:
        with self._lock:
            self._count -= 1
            if self._session is not None:
                self._session.close()
            if self._count == 0:
                self._session = None
            else:
                self._session = self._open()  # the next acquirer gets a new one; the holders keep a closed one


class SessionPerAcquireProvider(_Base):
    """Fault: opens a new session for every acquire instead of sharing one."""

    def __init__(self, open_session: Callable[[], Any]) -> None:
        self._open = open_session
        self._held: list[Any] = []

    def acquire(self) -> Any:
        session = self._open()
        self._held.append(session)
        return session

    def release(self) -> None:
        self._held.pop().close()


class CountsFailedOpenProvider(FaithfulProvider):
    """Fault: counts the holder before opening, so a failed open leaves a phantom holder and no session."""

    def acquire(self) -> Any:
        with self._lock:
            self._count += 1
            me = threading.get_ident()
            self._holds[me] = self._holds.get(me, 0) + 1
            if self._count == 1:
                self._session = self._open()
            return self._session


class CrashingProvider(FaithfulProvider):
    """Fault: the process dies (SIGSEGV) on the second acquire, as a module crash would kill it."""

    def acquire(self) -> Any:
        if self._count >= 1:
            os.kill(os.getpid(), signal.SIGSEGV)
        return super().acquire()


class HangingProvider(FaithfulProvider):
    """Fault: release never returns once someone else holds the session (a deadlock)."""

    def release(self) -> None:
        if self._count > 1:
            threading.Event().wait()
        super().release()


faithful = FaithfulProvider
no_lock = NoLockProvider
never_closes = NeverClosesProvider
closes_early = ClosesEarlyProvider
session_per_acquire = SessionPerAcquireProvider
counts_failed_open = CountsFailedOpenProvider
crashing = CrashingProvider
hanging = HangingProvider

# What each fault must be caught as: (check id, acceptable outcomes). The lock-free race is caught by the
# free-running stress, whose outcome depends on how the race falls: a refused second login, a module crash or hang.
EXPECTED = {
    "never_closes": ("scenario.provider", {"failed"}),
    "closes_early": ("scenario.provider", {"failed"}),
    "session_per_acquire": ("scenario.provider", {"failed"}),
    "counts_failed_open": ("scenario.provider", {"failed"}),
    "crashing": ("scenario.provider", {"crashed"}),
    "hanging": ("scenario.provider", {"hung"}),
    "no_lock": ("scenario.provider_stress", {"failed", "crashed", "hung"}),
}
