"""Several applications on one token: one loop per executor process, all started at the same wall-clock moment.

PKCS#11 scopes sessions and login state to an application — a process (UG v2.40 §2.5, §2.6). A service with several
worker processes (gunicorn, uwsgi, Celery) is several applications on one token, each opening its own session and
logging in, often at the same moment (all workers start together). The executor child is one such application; the
vendor's sibling executors (VendorRuntime.applications) are the others, in the same namespace and environment.
"""

from __future__ import annotations

import gc
import time

import pkcs11

from ..binding import session_handle
from .host import ModuleHost
from .protocol import AppAnswer, AppStep, LoginRounds, LoginRoundsAnswer

MAX_WAIT_S = 5.0  # a start moment further away than this is a harness bug, not something to sleep through


def login_rounds(host: ModuleHost, command: LoginRounds) -> LoginRoundsAnswer:
    """From `start_at` (time.time()), `rounds` times: open a R/W session with the user PIN (C_OpenSession +
    C_Login, as Token.open does), close it. Stops at the first error: on a real token every failed C_Login may
    count toward a PIN lockout, so the loop never retries. The error's class only (modules may echo arguments)."""
    rounds = command.rounds
    _fresh(host)
    delay = command.start_at - time.time()
    if delay > 0:
        time.sleep(min(delay, MAX_WAIT_S))
    started = time.perf_counter()
    spans: list[float] = []
    for i in range(rounds):
        spans.append(time.time())
        try:
            session = host.token.open(rw=True, user_pin=host.pin)
        except pkcs11.exceptions.PKCS11Error as exc:
            return _answer(i, started, spans + [time.time()], error=type(exc).__name__)
        spans.append(time.time())
        try:
            session.close()
        except pkcs11.exceptions.PKCS11Error as exc:
            return _answer(i, started, spans, error=f"{type(exc).__name__} (closing)")
    return _answer(rounds, started, spans)


def _fresh(host: ModuleHost) -> None:
    """This process is one application: its own earlier sessions (a fixture, a check's) would make it logged in
    already, and its login would then be refused as a second one (v3.0 §5.6.8) — not what is measured. Dangling
    iterators go first (their finalisers need their sessions), then every session of this process."""
    gc.collect()
    host.close_everything()


def _answer(done: int, started: float, spans: list[float], error: str | None = None) -> LoginRoundsAnswer:
    return LoginRoundsAnswer(done, error, round(time.perf_counter() - started, 4), tuple(spans))


def app_step(host: ModuleHost, command: AppStep) -> AppAnswer:
    """One step of this process as an application of its own, for checks that interleave applications: `login`
    opens a R/W session with the user PIN and keeps it; `close` closes it as python-pkcs11 does (C_Logout, then
    C_CloseSession); `state` is its state per C_GetSessionInfo (ground truth); `end` closes every session of this
    process. The outcome is a word or an exception class, never a message."""
    op = command.op
    if op == "login":
        _fresh(host)
        try:
            host.app_session = host.token.open(rw=True, user_pin=host.pin)
        except pkcs11.exceptions.PKCS11Error as exc:
            return AppAnswer(type(exc).__name__)
        return AppAnswer("ok")
    if op == "end":
        host.close_everything()
        return AppAnswer("ok")
    session = host.app_session
    if session is None:
        return AppAnswer("no session (log in first)")
    if op == "close":
        host.app_session = None
        try:
            session.close()
        except pkcs11.exceptions.PKCS11Error as exc:
            return AppAnswer(type(exc).__name__)
        return AppAnswer("ok")
    if op == "state":
        info = host.ground_truth.session_info(session_handle(session))
        return AppAnswer("closed" if info is None else info.state.name)
    return AppAnswer(f"unknown op {op!r}")
