"""Releasing the operation when an iterator is consumed or garbage-collected (python-pkcs11 Concurrency page)."""

from __future__ import annotations

import gc

import pytest

from ..binding import session_handle
from .test_operations import DATA, OBJECTS, open_search, partly_encrypted
from ..live.probes import (OK, NotReached, ParkedThread, ThreadCall, make_data_objects, outcome_of,
                          search_failed_under_its_iterator, search_started_by_get_objects)


@pytest.mark.check("release.search_iterator_gc", layer="binding", spec="python-pkcs11 docs, Concurrency")
def test_search_iterator_gc(vendor):
    """Docs: "The lock is not released until the iterator is consumed (or garbage collected)" — after the unconsumed
    iterator is dropped and collected, a new search on the session returns every object."""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS)
    it = open_search(session)
    del it
    gc.collect()
    assert len(list(session.get_objects(DATA))) == OBJECTS


@pytest.mark.check("release.search_iterator_gc_other_thread", layer="binding", spec="python-pkcs11 docs, Concurrency")
@pytest.mark.concurrency
def test_search_iterator_gc_other_thread(vendor, limits):
    """Docs: the lock is released when the iterator is garbage collected — a thread waiting on the session gets in."""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS)
    it = open_search(session)
    other = ThreadCall(lambda: len(list(session.get_objects(DATA))), "waiting-search")
    assert not other.finished_within(limits.block_window), "the other thread did not wait for the open iterator"
    del it
    gc.collect()
    assert other.result(timeout=10) == OBJECTS


@pytest.mark.check("release.search_iterator_consumed", layer="binding", spec="python-pkcs11 docs, Concurrency")
@pytest.mark.concurrency
def test_search_iterator_consumed(vendor, limits):
    """Docs: the lock is released when the iterator is consumed — another thread's search then runs at once."""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS)
    assert len(list(session.get_objects(DATA))) == OBJECTS
    other = ThreadCall(lambda: len(list(session.get_objects(DATA))), "after-consumed")
    assert other.finished_within(limits.step_timeout), "search after a consumed iterator did not complete"
    assert other.result(timeout=0) == OBJECTS


@pytest.mark.check("release.encrypt_generator_gc", layer="binding", spec="python-pkcs11 docs, Concurrency")
def test_encrypt_generator_gc(vendor, observe):
    """Docs: a dropped iterator releases the lock when collected, but "further actions will raise OperationActive
    (cancelling iterators is not currently supported)". What matters to a service is whether the session works
    again: records what the next encrypt does, and fails unless it succeeds."""
    key, iv, chunks = partly_encrypted(vendor)
    del chunks
    gc.collect()
    result = outcome_of(lambda: key.encrypt(b"x" * 16, mechanism_param=iv))
    observe(result)
    assert result == OK, f"session unusable after the generator was collected: {result}"


@pytest.mark.check("release.iterator_consumed_by_other_thread", layer="binding", spec="python-pkcs11 docs, Concurrency")
@pytest.mark.concurrency
def test_iterator_consumed_by_other_thread(vendor, limits):
    """Docs: "The lock is not released until the iterator is consumed" — an iterator started by one thread and
    consumed by another yields the rest of the objects, and the session's lock is free afterwards."""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS)
    with ParkedThread(lambda: open_search(session), "starter") as starter:  # alive: its ident is not reused
        it = starter.result(timeout=10)
        rest = ThreadCall(lambda: len(list(it)), "consumer").result(timeout=10)
        assert rest == OBJECTS - 1
        after = ThreadCall(lambda: len(list(session.get_objects(DATA))), "after")
        # On failure the probe thread stays parked on the lock for good; it is a daemon and holds nothing else.
        assert after.finished_within(limits.step_timeout), "the session lock stayed held after the iterator was consumed"


@pytest.mark.check("release.iterator_collected_by_other_thread", layer="binding", spec="python-pkcs11 docs, Concurrency")
@pytest.mark.concurrency
def test_iterator_collected_by_other_thread(vendor, limits):
    """Docs: the lock is released when the iterator is "garbage collected" — also when the last reference goes
    away on a thread other than the one that started it: a new search on the session then completes."""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS)
    with ParkedThread(lambda: open_search(session), "starter") as starter:
        holder = {"it": starter.result(timeout=10)}
        ThreadCall(lambda: (holder.clear(), gc.collect()), "collector").result(timeout=10)
        after = ThreadCall(lambda: len(list(session.get_objects(DATA))), "after")
        assert after.finished_within(limits.step_timeout), "the session lock stayed held after the iterator was collected"
        assert after.result(timeout=0) == OBJECTS


@pytest.mark.check("release.failed_search_releases_lock", layer="binding", spec="python-pkcs11 docs, Concurrency")
@pytest.mark.concurrency
def test_failed_search_releases_lock(vendor, limits):
    """Docs: the lock "is not released until the iterator is consumed (or garbage collected)" — consumed includes
    an iterator whose search ended under it (by a refused second search, operation.refused_search_keeps_active_
    search, or where the module runs two searches at once, by closing its session): once its next item has failed,
    another thread's search on the session must get the lock (or fail at once on a closed session)."""
    try:
        ended = search_failed_under_its_iterator(vendor, "obj", OBJECTS)  # DATA finds them
    except NotReached as exc:
        pytest.skip(f"no search ends under its iterator: {exc}")
    after = ThreadCall(lambda: outcome_of(lambda: list(ended.session.get_objects(DATA))), "after")
    # On failure the probe thread stays parked on the lock for good; it is a daemon and holds nothing else.
    assert after.finished_within(limits.step_timeout), (
        f"the session lock stayed held after the iterator's next item failed ({ended.failed}; the search was ended "
        f"by {ended.how_ended})")


@pytest.mark.check("binding.search_start", layer="binding", spec="python-pkcs11 docs, Concurrency")
def test_search_start(vendor, observe):
    """Docs: multi-step calls "such as searching for objects ... can be preempted as control is returned to the
    interpreter (e.g. by generators)" — when get_objects() starts the search is the binding's choice: at once
    (the session lock and C_FindObjectsInit) or at the first next(). Characterises it by the tap's log of the calls
    get_objects() made (else ground truth: C_FindObjects on the session before any next())."""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS)
    started = search_started_by_get_objects(vendor, session, DATA)
    if started is None:
        pytest.skip("cannot tell: no tap in the stack, and the module answers C_FindObjects with no search active")
    observe("get_objects" if started else "first next")


def _after_close_and_reopen(vendor, observe, prepare, call, what: str, how: str) -> None:
    """Open a session, `prepare` something on it, close it, open the next one (which the module may give the closed
    one's handle), then `call` with what was prepared: it must fail with SessionClosed / SessionHandleInvalid.
    Records whether the handle was reused; the failure says `how` the call reached the new session if it was."""
    first = vendor.open_session(login=False)
    prepared = prepare(first)
    first.close()
    second = vendor.open_session(login=False)
    reused = session_handle(second) == session_handle(first)
    observe({"handle_reused": reused})
    try:
        outcome = outcome_of(lambda: call(first, prepared))
    except StopIteration:
        outcome = "ok:stop"
    assert outcome in ("SessionClosed", "SessionHandleInvalid"), (
        f"{what} gave {outcome}" + (f" — {how}, which got the closed one's handle" if reused else ""))


@pytest.mark.check("release.iterator_of_closed_session", layer="binding", spec="PKCS#11 v3.0 §5.6.2 C_CloseSession, §5.1.2 CKR_SESSION_HANDLE_INVALID")
def test_iterator_of_closed_session(vendor, observe):
    """v3.0 §5.6.2: once closed, a session's handle no longer names it — a module may hand it to the next session.
    An iterator made on the closed session and started afterwards must fail (SessionClosed / SessionHandleInvalid),
    not search the session that got the same handle. Records whether the module reused the handle."""
    owner = vendor.open_session()  # holds the objects and the login while the others come and go
    make_data_objects(owner, OBJECTS)
    _after_close_and_reopen(vendor, observe,
                            lambda first: first.get_objects(DATA),  # C_FindObjectsInit runs at the first next()
                            lambda first, it: next(it),
                            "the iterator of a closed session", "on the new session")


@pytest.mark.check("release.started_iterator_of_closed_session", layer="binding", spec="PKCS#11 v3.0 §5.6.2 C_CloseSession, §5.1.2 CKR_SESSION_HANDLE_INVALID")
def test_started_iterator_of_closed_session(vendor, observe):
    """v3.0 §5.6.2: closing a session ends its operations, and its handle no longer names it. An iterator started
    on the closed session must fail at its next item (SessionClosed / SessionHandleInvalid) — not go on yielding
    objects read through the session that got the same handle. Records whether the module reused the handle."""
    owner = vendor.open_session()
    make_data_objects(owner, OBJECTS)

    def started(first):
        it = first.get_objects(DATA)
        next(it)
        return it

    _after_close_and_reopen(vendor, observe, started, lambda first, it: next(it),
                            "the started iterator of a closed session", "through the new session")


@pytest.mark.check("release.call_on_closed_session", layer="binding", spec="PKCS#11 v3.0 §5.6.2 C_CloseSession, §5.1.2 CKR_SESSION_HANDLE_INVALID")
def test_call_on_closed_session(vendor, observe):
    """v3.0 §5.1.2: a call with the handle of a closed session fails (SessionClosed / SessionHandleInvalid). A
    service that keeps a Session object past its close must get that error — not have the call run on whichever
    session got the same handle (another thread's, perhaps). Records whether the module reused the handle."""
    _after_close_and_reopen(vendor, observe, lambda first: None, lambda first, _: first.generate_random(128),
                            "C_GenerateRandom on a closed session", "it ran on the new session")
