"""Characterise first, then explore: the model parameters that differ between setups (conformance.engine.params),
measured on this run's module and binding at the start, in the module's process.

Each probe is the smallest experiment that shows one behaviour, by what the binding and the module do — never by a
version number or a declaration. Two setups that behave the same get the same parameters, so they explore the same
schedules and are judged the same (a declaration only turns a known failure into an expected one). A probe that
cannot reach its behaviour (the module takes another allowed path first) leaves the parameter at its default and
says why; a probe that breaks says so too, and the run goes on with the default.
"""

from __future__ import annotations

import gc
from typing import Any, Callable

import pkcs11
import pytest
from pkcs11 import KeyType, Mechanism

from ..binding import session_handle
from ..engine.params import Characterisation, Finding
from ..engine.vocabulary import GENERATORS
from .groundtruth import GroundTruthError
from .probes import (OK, NotReached, ParkedThread, ThreadCall, harness_objects, make_data_objects, outcome_of,
                     search_failed_under_its_iterator, search_started_by_get_objects, sessions_left_by_a_refused_login)

OBJECTS = 3
TAG = "characterise"
HANDLE_TRIES = 5
TRIES = 3  # a probe the module answered with a pkcs11 error is run again, up to this many times in all
# Where the binding hides its session lock, a search on another thread that has not run after this long is taken as
# waiting on a lock held for good (a search on a token takes milliseconds; this is the last resort, after evidence).
LOCK_WAIT_S = 10.0


def _search(session: Any) -> Any:
    it = session.get_objects(harness_objects(TAG))
    next(it)  # C_FindObjectsInit runs at the first next() (0.9 and later; at creation before)
    return it


def _searches(vendor: Any) -> dict[str, Finding]:
    """v3.0 §5.7.7: at most one search per session. Does the module refuse a second one (or run it), and when it
    refuses, does the first search go on (CKR_OPERATION_ACTIVE means the new operation did not start, §5.1.6)?"""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS, tag=TAG)
    first = _search(session)
    second = outcome_of(lambda: list(session.get_objects(harness_objects(TAG))))
    if second == OK:
        return {"concurrent_searches": Finding(True, "a second search on a session with one open ran"),
                "refused_search_ends_active_search": Finding(None, "not reached: the module runs a second search")}
    if second != "OperationActive":
        raise ProbeFailed(f"a second search gave {second}")
    rest = outcome_of(lambda: list(first))
    return {"concurrent_searches": Finding(False, "a second search was refused (OperationActive)"),
            "refused_search_ends_active_search": Finding(
                rest != OK, f"after a second search was refused, the first search's next items gave {rest}")}


def _search_start(vendor: Any) -> dict[str, Finding]:
    """When does get_objects() start the search: at once (the lock and C_FindObjectsInit; 0.7, 0.8) or at the first
    next() (0.9 and later)? The tap's log of the calls it made, else ground truth."""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS, tag=TAG)
    started = search_started_by_get_objects(vendor, session, harness_objects(TAG))
    how = "the tap's log" if vendor.calls is not None else "C_FindObjects on the session"
    if started is None:
        return {"search_starts_at_creation": Finding(None, "not measured: no tap, and the module answers "
                                                           "C_FindObjects with no search active")}
    return {"search_starts_at_creation": Finding(
        started, f"get_objects() {'called' if started else 'did not call'} C_FindObjectsInit before any next() ({how})")}


def _failed_search(vendor: Any) -> dict[str, Finding]:
    """A search ended under its iterator: its next() fails; is the session's lock free afterwards?"""
    name = "failed_search_keeps_lock"
    try:
        ended = search_failed_under_its_iterator(vendor, TAG, OBJECTS)
    except NotReached as exc:
        return {name: Finding(None, f"not reached: {exc}")}
    free, how = _lock_free(ended.session)
    return {name: Finding(not free, f"ended by {ended.how_ended}, its next() raised {ended.failed}; then {how}")}


def _lock_free(session: Any) -> tuple[bool, str]:
    """Can another thread take the session's lock now? The lock itself where the binding lets it be seen (0.7,
    0.8: Session._operation_lock), else a search on another thread (LOCK_WAIT_S, the last resort)."""
    lock = getattr(session, "_operation_lock", None)
    if lock is not None and hasattr(lock, "acquire"):
        got = bool(ThreadCall(lambda: lock.acquire(blocking=False) and (lock.release() or True),
                              "characterise-lock").result(timeout=10))
        return got, f"another thread {'took' if got else 'could not take'} the session lock (_operation_lock)"
    other = ThreadCall(lambda: len(list(session.get_objects(harness_objects(TAG)))), "characterise-after")
    if other.finished_within(LOCK_WAIT_S):
        return True, "a search on another thread ran"
    return False, f"a search on another thread did not get the session lock in {LOCK_WAIT_S:.0f} s"


# The generators a probe drives, by kind: (capabilities the token needs, the generator over two 32-byte chunks, a
# one-shot call of the same kind afterwards). Both AES-CBC(-PAD) on a session AES key.
_IV = bytes(16)
_GENERATOR_PROBES: dict[str, tuple[tuple[str, ...], Callable[[Any], Any], Callable[[Any], Any]]] = {
    "encrypt": (("aes_keygen", "aes_cbc_pad"), lambda key: key.encrypt([b"a" * 32, b"b" * 32], mechanism_param=_IV),
                lambda key: key.encrypt(b"x" * 16, mechanism_param=_IV)),
    "decrypt": (("aes_keygen", "aes_cbc"),
                lambda key: key.decrypt([b"a" * 32, b"b" * 32], mechanism=Mechanism.AES_CBC, mechanism_param=_IV),
                lambda key: key.decrypt(b"x" * 16, mechanism=Mechanism.AES_CBC, mechanism_param=_IV)),
}


def _released_at_last_item(kind: str, session: Any, key: Any) -> tuple[bool, str]:
    """A chunked encryption's (decryption's) generator: is the session lock free once its last item (the final
    block) is out, or only at the next() that ends it?"""
    chunks = _GENERATOR_PROBES[kind][1](key)
    for _ in range(3):  # two chunks, then the final block: the last item
        next(chunks)
    free, how = _lock_free(session)
    for _ in chunks:  # ends it (and releases the lock where it is still held)
        pass
    return free, f"with the last item out and the generator not yet ended, {how}"


def _collected_keeps_operation(kind: str, session: Any, key: Any) -> tuple[bool, str]:
    """A chunked encryption's (decryption's) generator collected unfinished: does its module operation end
    (0.9: cancelled), or stay active for good (0.7, 0.8), so the session's next call of that kind meets it?"""
    chunks = _GENERATOR_PROBES[kind][1](key)
    next(chunks)
    del chunks
    gc.collect()
    after = outcome_of(lambda: _GENERATOR_PROBES[kind][2](key))
    return after == "OperationActive", (f"after an unfinished {kind} generator was collected, the next {kind} "
                                        f"gave {after}")


Body = Callable[[str, Any, Any], tuple[bool, str]]


def _generator_probe(kind: str, field: str, body: Body) -> Callable[[Any], dict[str, Finding]]:
    """The probe measuring GENERATORS[kind]'s parameter `field` with `body`, on a session AES key where the token
    has what the generator needs."""
    def probe(vendor: Any) -> dict[str, Finding]:
        name = getattr(GENERATORS[kind], field)
        needs = _GENERATOR_PROBES[kind][0]
        session, key = _aes_key(vendor, needs)
        if key is None:
            return {name: Finding(None, f"not measured: the token lacks {' or '.join(needs)}")}
        return {name: Finding(*body(kind, session, key))}
    probe.__name__, probe.__doc__ = f"_{kind}{body.__name__}", body.__doc__
    return probe


def _aes_key(vendor: Any, needs: tuple[str, ...]) -> tuple[Any, Any] | tuple[None, None]:
    """(session, a session AES key on it), or (None, None) where the token lacks one of `needs`."""
    missing = vendor.missing_capabilities()
    if any(cap in missing for cap in needs):
        return None, None
    session = vendor.open_session()
    return session, session.generate_key(KeyType.AES, 128, store=False)


def _failed_login(vendor: Any) -> dict[str, Finding]:
    """Token.open(user_pin=...) opens a session, then logs in: when the login is refused, is that session left
    open? Ground truth on the handles issued around the call (the binding never shows that session's handle)."""
    try:
        leaked = sessions_left_by_a_refused_login(vendor)
    except NotReached as exc:
        return {"failed_login_leaks_session": Finding(None, f"not reached: {exc}")}
    return {"failed_login_leaks_session": Finding(bool(leaked), f"a refused login left {len(leaked)} session(s) open")}


def _nonowner_finish(vendor: Any) -> dict[str, Finding]:
    """An iterator started on one thread and finished on another: does the session's lock come free? python-pkcs11
    takes a threading.RLock in the starting thread; only its owner may release it."""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS, tag=TAG)
    with ParkedThread(lambda: _search(session), "characterise-starter") as starter:  # alive: its ident stays its own
        it = starter.result(timeout=10)
        try:
            ThreadCall(lambda: len(list(it)), "characterise-consumer").result(timeout=10)
        except RuntimeError as exc:
            # The session is unusable from now on (its lock is held for good): vendor.reset() closes it in the
            # module; its Python object is dropped with `it`.
            return {"nonowner_finish_keeps_lock": Finding(
                True, f"finishing an iterator on another thread than its starter's raised RuntimeError ({exc})")}
    return {"nonowner_finish_keeps_lock": Finding(False, "an iterator finished on another thread released the lock")}


def _handle_reuse(vendor: Any) -> dict[str, Finding]:
    """v3.0 §5.6.1 lets a module hand a closed session's handle to the next session; python-pkcs11's Session
    object keeps the old handle. Does this module reuse handles?"""
    for _ in range(HANDLE_TRIES):
        first = vendor.open_session(login=False)
        handle = session_handle(first)
        first.close()
        second = vendor.open_session(login=False)
        if session_handle(second) == handle:
            return {"stale_session_handles": Finding(True, f"a closed session's handle ({handle}) named the next session")}
        second.close()
    return {"stale_session_handles": Finding(False, f"{HANDLE_TRIES} times, the next session got a new handle")}


class ProbeFailed(RuntimeError):
    """A probe got an answer it cannot read as either behaviour; the message says which."""


_GENERATOR_PROBE_FNS = {
    _generator_probe(kind, field, body): (getattr(GENERATORS[kind], field),)
    for kind in _GENERATOR_PROBES
    for field, body in (("collected_keeps_operation", _collected_keeps_operation),
                        ("releases_at_last_item", _released_at_last_item))}
# What each probe measures, for its failure to be recorded against every parameter it would have set.
MEASURES: dict[Callable[[Any], dict[str, Finding]], tuple[str, ...]] = {
    _searches: ("concurrent_searches", "refused_search_ends_active_search"),
    _search_start: ("search_starts_at_creation",), _failed_search: ("failed_search_keeps_lock",),
    **_GENERATOR_PROBE_FNS,
    _failed_login: ("failed_login_leaks_session",), _nonowner_finish: ("nonowner_finish_keeps_lock",),
    _handle_reuse: ("stale_session_handles",)}
PROBES = tuple(MEASURES)
MEASURED = tuple(name for names in MEASURES.values() for name in names)


def characterise(vendor: Any) -> Characterisation:
    """Run every probe, each on clean state (vendor.reset() before and after); never raises for a probe's sake."""
    findings: dict[str, Finding] = {}
    for probe in PROBES:
        findings.update(_run(probe, vendor))
    return Characterisation(findings)


def _run(probe: Callable[[Any], dict[str, Finding]], vendor: Any) -> dict[str, Finding]:
    """One probe; a pkcs11 error is retried (up to TRIES in all: a transient module error, such as SoftHSM 2.6's
    C_Login racing another process's, must not leave one worker measuring other parameters than the next)."""
    why = ""
    for _ in range(TRIES):
        try:
            vendor.reset()
            return probe(vendor)
        except pkcs11.exceptions.PKCS11Error as exc:
            why = type(exc).__name__
        except (GroundTruthError, ProbeFailed, TimeoutError, pytest.skip.Exception) as exc:
            why = str(getattr(exc, "msg", "") or exc) or type(exc).__name__
            break
        finally:
            vendor.reset()
    return {name: Finding(None, f"not measured: {why}") for name in MEASURES[probe]}
