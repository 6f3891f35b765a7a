"""The session provider under test (--sut; default: the documented refcounted session) on a real token."""

from __future__ import annotations

import threading

import pkcs11
import pytest
from pkcs11 import Mechanism

from conformance.capabilities import require_mechanisms
from conformance.groundtruth import SessionState
from conformance.probes import OK, outcome_of

pytestmark = pytest.mark.sut
THREADS = 4


class CountingOpener:
    """Wraps the harness's open_session to count calls; fail_first makes the first call fail on purpose."""

    def __init__(self, open_session, fail_first=False):
        self._open = open_session
        self.calls = 0
        self._fail_first = fail_first

    def __call__(self):
        self.calls += 1
        if self._fail_first and self.calls == 1:
            raise pkcs11.exceptions.TokenNotPresent("made to fail on purpose by the harness")
        return self._open()


def alive(vendor, session) -> bool:
    return vendor.ground_truth.session_info(session.handle) is not None


@pytest.mark.check("provider.threads_share_one_session", layer="provider", spec="python-pkcs11 docs, Reenterant Sessions")
@pytest.mark.concurrency
def test_threads_share_one_session(vendor, make_provider, open_session):
    """Docs: "it can be advantageous to use a single session across multiple threads" — threads that acquire at once
    all get the same session, opened once."""
    opener = CountingOpener(open_session)
    provider = make_provider(opener)
    barrier = threading.Barrier(THREADS)
    got, errors = [], []

    def worker():
        try:
            barrier.wait(timeout=10)
            got.append(provider.acquire())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, f"acquire raised {errors[0]!r}"
    assert len({id(s) for s in got}) == 1 and len(got) == THREADS, "threads got different sessions"
    assert opener.calls == 1, f"the session was opened {opener.calls} times"
    for _ in range(THREADS):
        provider.release()


@pytest.mark.check("provider.closes_on_last_release", layer="provider", spec="python-pkcs11 docs, Reenterant Sessions")
@pytest.mark.concurrency
def test_closes_on_last_release(vendor, provider):
    """Docs: "failing to close a session may leak resources" — once the last holder releases, the session is closed
    (C_GetSessionInfo no longer knows the handle) and no session of ours is left open."""
    holders = [provider.acquire() for _ in range(THREADS)]
    threads = [threading.Thread(target=provider.release) for _ in holders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not alive(vendor, holders[0]), "session still open after the last release"
    counts = vendor.ground_truth.session_counts(vendor.slot_id)
    assert counts.sessions in (None, 0), f"{counts.sessions} session(s) still open"


@pytest.mark.check("provider.stays_open_while_held", layer="provider", spec="python-pkcs11 docs, Reenterant Sessions")
@pytest.mark.concurrency
def test_stays_open_while_held(vendor, provider):
    """A release by one thread must not close the session another thread still holds: the holder's operations work."""
    require_mechanisms(vendor, Mechanism.SHA256)
    session = provider.acquire()
    other = threading.Thread(target=lambda: (provider.acquire(), provider.release()))
    other.start()
    other.join(timeout=30)
    assert outcome_of(lambda: session.digest(b"x", mechanism=Mechanism.SHA256)) == OK
    provider.release()


@pytest.mark.check("provider.nested_acquire", layer="provider", spec="python-pkcs11 docs, Reenterant Sessions")
def test_nested_acquire(vendor, provider):
    """The provider is reentrant: `with provider` inside `with provider` gives the same session, still open after the
    inner block, closed after the outer one."""
    with provider as outer:
        with provider as inner:
            assert inner is outer
        assert alive(vendor, outer), "inner release closed the session the outer block holds"
    assert not alive(vendor, outer), "session still open after the outer block"


@pytest.mark.check("provider.reopens_after_release", layer="provider", spec="python-pkcs11 docs, Reenterant Sessions")
def test_reopens_after_release(vendor, provider):
    """After the last release, the next acquire opens a new working session."""
    require_mechanisms(vendor, Mechanism.SHA256)
    with provider:
        pass
    with provider as session:
        assert outcome_of(lambda: session.digest(b"x", mechanism=Mechanism.SHA256)) == OK


@pytest.mark.check("provider.open_failure_recovers", layer="provider", spec="python-pkcs11 docs, Reenterant Sessions")
def test_open_failure_recovers(vendor, make_provider, open_session):
    """When opening the session fails (token gone, wrong PIN) acquire raises, and the provider is not left counting a
    holder that does not exist: the next acquire opens a session and its release closes it."""
    opener = CountingOpener(open_session, fail_first=True)
    provider = make_provider(opener)
    with pytest.raises(pkcs11.exceptions.TokenNotPresent):
        provider.acquire()
    session = provider.acquire()
    assert session is not None and alive(vendor, session), "acquire after a failed open gave no open session"
    provider.release()
    assert not alive(vendor, session), "release after a failed open did not close the session"


@pytest.mark.check("provider.acquire_while_app_logged_in", layer="provider", spec="PKCS#11 v3.0 §5.6.8; python-pkcs11 docs, Reenterant Sessions")
def test_acquire_while_app_logged_in(vendor, provider, observe):
    """Docs: "a number of PKCS#11 libraries do not support the same token being logged in from simultaneous
    sessions". Characterises what acquire does when another part of the application already has a logged-in
    session (ok, or the exception); either is recorded, the value is what the gate compares."""
    vendor.open_session(login=True)
    result = outcome_of(provider.acquire)
    observe(result)
    if result == OK:
        provider.release()


@pytest.mark.check("provider.release_logs_out_application", layer="provider", spec="PKCS#11 UG v2.40 §2.6.5")
def test_release_logs_out_application(vendor, provider, observe):
    """UG §2.6.5: a logout applies to every session of the application. Characterises whether the provider's last
    release leaves another session of the application (opened without a PIN) logged out or still logged in."""
    other = vendor.open_session(login=False)
    with provider:
        pass
    state = vendor.ground_truth.session_info(other.handle).state
    observe("logged_out" if not state.logged_in else "logged_in")
    assert state in (SessionState.RW_PUBLIC_SESSION, SessionState.RW_USER_FUNCTIONS)
