"""Small instruments the checks use: run a call on another thread and see whether it blocks, name an outcome."""

from __future__ import annotations

import gc
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pkcs11
import pytest
from pkcs11 import ObjectClass
from pkcs11.constants import Attribute

from ..binding import session_handle
from ..engine.cryptoki import rv_name
from ..labels import label

OK = "ok"
# Objects the harness creates carry this label prefix, so leftovers are recognisable as ours.


def outcome_of(call: Callable[[], Any]) -> str:
    """'ok', or the class name of the PKCS#11 exception the call raised (other exceptions propagate); a return value
    the binding has no exception class for ("Unmapped error code 0x..." in a bare PKCS11Error) by its CKR name:
    PKCS11Error(CKR_ACTION_PROHIBITED)."""
    try:
        call()
    except pkcs11.exceptions.PKCS11Error as exc:
        return refusal_name(exc)
    return OK


def refusal_name(exc: BaseException) -> str:
    """The name a refusal is recorded by: its exception class, with the CKR where the class is the generic one."""
    name = type(exc).__name__
    unmapped = _UNMAPPED.search(str(exc)) if type(exc) is pkcs11.exceptions.PKCS11Error else None
    return f"{name}({rv_name(int(unmapped.group(1), 16))})" if unmapped else name


_UNMAPPED = re.compile(r"Unmapped error code (0x[0-9a-fA-F]+)")


class ThreadCall:
    """A call started on its own thread; the caller decides how long to wait before calling it blocked."""

    def __init__(self, call: Callable[[], Any], name: str = "probe") -> None:
        self._call = call
        self._done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"conformance-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.value = self._call()
        except BaseException as exc:  # reported to the check, never swallowed
            self.error = exc
        finally:
            self._done.set()

    def finished_within(self, seconds: float) -> bool:
        return self._done.wait(seconds)

    def result(self, timeout: float) -> Any:
        """The call's value; re-raises its exception; TimeoutError if it is still blocked after timeout."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self._thread.name} still blocked after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.value


class ParkedThread(ThreadCall):
    """Runs one call, then stays alive (parked) until released: while it lives, no new thread can be given its
    ident — which matters because threading.RLock tells owners apart by ident."""

    def __init__(self, call: Callable[[], Any], name: str = "parked") -> None:
        self._release = threading.Event()  # before the thread starts: _run waits on it
        super().__init__(call, name)

    def _run(self) -> None:
        super()._run()
        self._release.wait()

    def release(self) -> None:
        self._release.set()

    def __enter__(self) -> ParkedThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# What a token answers when it does not support an object or operation the checks build on.
REFUSED = (pkcs11.exceptions.AttributeValueInvalid, pkcs11.exceptions.TemplateInconsistent,
           pkcs11.exceptions.FunctionNotSupported, pkcs11.exceptions.AttributeTypeInvalid)


def message(n: int) -> bytes:
    """n bytes of a fixed, non-repeating-per-block pattern: the payload checks digest, sign and encrypt."""
    return bytes((i * 7 + 3) % 256 for i in range(n))


def private_flag(vendor: Any) -> bool:
    """CKA_PRIVATE for the data objects of a check: public where the token makes public data objects, else private
    (tpm2-pkcs11 refuses public ones); a skip naming both where it makes neither."""
    missing = vendor.missing_capabilities()
    if "public_data_objects" not in missing:
        return False
    if "private_data_objects" not in missing:
        return True
    pytest.skip(f"token makes no session data objects: public {missing['public_data_objects']}, "
                f"private {missing['private_data_objects']}")


def harness_objects(tag: str = "obj") -> dict[Any, Any]:
    """The search template for the data objects make_data_objects(tag=...) makes — and nothing else on the token
    (a real partition has data objects of its own)."""
    return {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label(tag)}


def make_data_objects(session: Any, count: int, *, private: bool = False, tag: str = "obj") -> list[Any]:
    """Session (not token) data objects: they vanish with the session, so nothing is left behind on the token.
    All carry the label harness_objects(tag) searches for.

    A token that refuses public data objects (tpm2-pkcs11) gets private ones: they serve the same purpose for a
    logged-in session. A token that refuses the kind asked for skips the check, saying so."""
    def make(is_private: bool) -> list[Any]:
        return [
            session.create_object({
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.TOKEN: False,
                Attribute.PRIVATE: is_private,
                Attribute.LABEL: label(tag),
                Attribute.VALUE: b"conformance",
            })
            for i in range(count)
        ]

    try:
        return make(private)
    except REFUSED as exc:
        first = type(exc).__name__
    if not private:
        try:
            return make(True)
        except REFUSED:
            pass
    kind = "private" if private else "public or private"
    pytest.skip(f"token refuses {kind} session data objects ({first}), which this check searches for")


class NotReached(Exception):
    """The module took another allowed path first, so the behaviour an experiment is after cannot be seen."""


def sessions_left_by_a_refused_login(vendor: Any) -> list[int]:
    """Token.open(user_pin=...) opens a session, then logs in: refuse that login (the user is already logged in)
    and return the handles of sessions it left open — located by ground truth (C_GetSessionInfo) on the handles
    issued between two sessions opened around it (the binding never shows the handle of a session whose login
    failed). NotReached if the module accepts a second login, or issues handles out of sequence."""
    vendor.open_session(login=True)
    before = vendor.open_session(login=False)
    try:
        vendor.open_session(login=True)
    except pkcs11.exceptions.UserAlreadyLoggedIn:
        pass
    else:
        raise NotReached("the module accepts a second login, so Token.open's failure path is not reached")
    after = vendor.open_session(login=False)
    lo, hi = session_handle(before), session_handle(after)
    if not 0 < hi - lo <= 64:
        raise NotReached(f"session handles are not issued in sequence ({lo}, then {hi}); cannot locate the session")
    return [h for h in range(lo + 1, hi) if vendor.ground_truth.session_info(h) is not None]


def search_started_by_get_objects(vendor: Any, session: Any, template: Any) -> bool | None:
    """Whether get_objects() itself starts the search (C_FindObjectsInit before any next()): by the tap's log of
    this thread's calls where there is a tap, else by ground truth (C_FindObjects on the session finds a search
    active) when the module answers that truthfully — None where neither can tell."""
    if vendor.calls is not None:
        mark, me = vendor.calls.mark(), threading.get_native_id()
        it = session.get_objects(template)
        started = any(c.function == "C_FindObjectsInit" and c.thread == me for c in vendor.calls.since(mark))
        del it
        return started
    handle = session_handle(session)
    if vendor.ground_truth.search_active(handle):  # a search "active" before any: the answer tells nothing
        return None
    it = session.get_objects(template)
    started = vendor.ground_truth.search_active(handle)
    del it
    return started


@dataclass(frozen=True)
class FailedSearch:
    """A search whose next() failed because the search was ended under its iterator (child-side, never serialised)."""

    session: Any  # the searched session, its lock as the binding left it
    failed: str  # what the iterator's next() raised (outcome_of)
    how_ended: str
    keep: Any = field(repr=False)  # the session holding the searched objects stays open while this lives


def search_failed_under_its_iterator(vendor: Any, tag: str, count: int = 3) -> FailedSearch:
    """End a started search under its iterator and let the iterator's next() fail: by a refused second search where
    the module refuses one (it ends the first), else by closing the search's session (a module that runs two searches
    at once never ends the first; C_FindObjects on a closed session fails on every module). The second route
    searches on a session not logged in through, so its close calls no C_Logout. NotReached if the iterator goes on.
    The session's lock is then as the binding left it: the caller tests it (the iterator is collected here)."""
    owner = vendor.open_session()
    make_data_objects(owner, count, tag=tag)
    template = harness_objects(tag)

    def started(session: Any) -> Any:
        it = session.get_objects(template)
        next(it)  # C_FindObjectsInit runs at the first next() (0.9 and later; at creation before)
        return it

    first = started(owner)
    if outcome_of(lambda: list(owner.get_objects(template))) == "OperationActive":
        session, how = owner, "a refused second search"
    else:  # the second search ran and may have disturbed the first: search again where only a close can end it
        first = None  # dropped: its finaliser ends its search now
        gc.collect()
        session, how = vendor.open_session(login=False), "closing its session"
        first = started(session)
        session.close()
    failed = outcome_of(lambda it=first: list(it))
    if failed == OK:
        raise NotReached(f"the search goes on after {how}")
    first = None  # collected: the lock is as the binding leaves it after a failed next() and collection
    gc.collect()
    return FailedSearch(session, failed, how, owner)
