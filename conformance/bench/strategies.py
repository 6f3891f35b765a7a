"""How a service's threads get their sessions — the strategies the benchmark compares. Each turns the workload's call
into the request one thread makes, as a service makes it:

- `shared`: the reference refcounted session from python-pkcs11's docs (conformance/refsession.py): every request
  is `with provider as session:`; every thread works on the one session, and python-pkcs11's per-session lock
  serialises the multi-step operations.
- `sut`: the same requests on the user's own provider (`--sut=MODULE:FACTORY`, the session provider contract).
- `per_thread`: a session of its own per thread, opened once.
- `pool`: a pool of N sessions (`--pool-size`); every request checks one out and back in.

The provider strategies are held once by the benchmark for the whole trial, as a service's overlapping requests
hold a refcounted session: the measured number is the shared session's throughput, not a login per request.
The sessions are opened without a PIN: the worker's set-up session logged the application in, and every session
of an application shares its login (v3.0 §5.6; the login checks test that)."""

from __future__ import annotations

import functools
import queue
import threading
from typing import Any, Callable, Protocol

from .workloads import Workload

Request = Callable[[], Any]
Call = Callable[[Any, Any], Any]  # (session, found): the workload's call (workloads.Variant)


class Strategy(Protocol):
    name: str

    def begin(self, threads: int) -> list[Request]:
        """The request each of `threads` threads makes, ready to be timed (its sessions open, keys found)."""
        ...

    def end(self) -> None: ...

    def close(self) -> None:
        """At the worker's end: close what the strategy keeps open between trials."""
        ...


class Found:
    """What each session found of the workload's objects, found once per session (a search: not timed)."""

    def __init__(self, workload: Workload, tag: str) -> None:
        self._workload, self._tag = workload, tag
        self._by_session: dict[int, tuple[Any, Any]] = {}  # id -> (session kept alive, found), so an id is not reused
        self._lock = threading.Lock()

    def __call__(self, session: Any) -> Any:
        entry = self._by_session.get(id(session))
        if entry is None:
            with self._lock:
                entry = (session, self._workload.find(session, self._tag))
                self._by_session[id(session)] = entry
        return entry[1]

    def forget(self) -> None:
        self._by_session.clear()


class ProviderRaised(Exception):
    """The session provider itself raised (not python-pkcs11 or the module under it): the provider's failure."""


def _provider_call(what: str, method: Callable[..., Any], *args: Any) -> Any:
    try:
        return method(*args)
    except Exception as exc:  # noqa: BLE001 - whatever a provider raises is the provider's
        import pkcs11.exceptions

        if isinstance(exc, pkcs11.exceptions.PKCS11Error):
            raise  # the module's or binding's answer, reached through the provider
        text = " ".join(str(exc).split())[:200]
        raise ProviderRaised(f"the session provider's {what} raised {type(exc).__name__}"
                             + (f": {text}" if text else "")) from exc


class ProviderStrategy:
    """`shared` (the reference refcounted session) and `sut` (the user's provider): a new provider per trial.
    Each request is `with provider as session:`, spelt out so that what the provider itself raises is told apart
    from what the call raises."""

    def __init__(self, name: str, factory: Callable[[Callable[[], Any]], Any], open_session: Callable[[], Any],
                 call: Call, found: Found) -> None:
        self.name, self._factory, self._open, self._call, self._found = name, factory, open_session, call, found
        self._provider: Any = None

    def begin(self, threads: int) -> list[Request]:
        provider = self._provider = _provider_call("factory", self._factory, self._open)
        held = _provider_call("acquire()", provider.acquire)  # the benchmark's hold: open between requests
        self._found(held)
        call, found = self._call, self._found
        enter, leave = provider.__enter__, provider.__exit__

        def request() -> Any:
            session = _provider_call("__enter__", enter)
            try:
                result = call(session, found(session))
            except BaseException as exc:
                _provider_call("__exit__", leave, type(exc), exc, exc.__traceback__)
                raise
            _provider_call("__exit__", leave, None, None, None)
            return result

        return [request] * threads

    def end(self) -> None:
        if self._provider is not None:
            provider, self._provider = self._provider, None
            _provider_call("release()", provider.release)
            self._found.forget()

    def close(self) -> None:
        self.end()


class PerThread:
    """A session per thread, opened on first use and kept for the worker's life."""

    name = "per_thread"

    def __init__(self, open_session: Callable[[], Any], call: Call, found: Found) -> None:
        self._open, self._call, self._found = open_session, call, found
        self.sessions: list[Any] = []

    def begin(self, threads: int) -> list[Request]:
        while len(self.sessions) < threads:
            self.sessions.append(self._open())
        return [self._bound(session) for session in self.sessions[:threads]]

    def _bound(self, session: Any) -> Request:
        return functools.partial(self._call, session, self._found(session))  # no Python frame of ours per call

    def end(self) -> None:
        return None

    def close(self) -> None:
        for session in self.sessions:
            session.close()
        self.sessions.clear()


class Pool:
    """N sessions in a queue: a request takes one, makes its call on it and puts it back."""

    name = "pool"

    def __init__(self, size: int, open_session: Callable[[], Any], call: Call, found: Found) -> None:
        self._size, self._open, self._call, self._found = size, open_session, call, found
        self._sessions: list[Any] = []
        self._free: queue.Queue[Any] = queue.Queue()

    def begin(self, threads: int) -> list[Request]:
        while len(self._sessions) < self._size:
            session = self._open()
            self._found(session)
            self._sessions.append(session)
            self._free.put(session)
        free, call, found = self._free, self._call, self._found

        def request() -> Any:
            session = free.get()
            try:
                return call(session, found(session))
            finally:
                free.put(session)

        return [request] * threads

    def end(self) -> None:
        return None

    def close(self) -> None:
        for session in self._sessions:
            session.close()
        self._sessions.clear()


STRATEGIES = ("shared", "per_thread", "pool", "sut")  # in the report's order
