"""The reference provider (the documented refcounted session) with a fake session and a counting fake opener."""

from __future__ import annotations

import pytest

from conformance.refsession import reference_session


class FakeSession:
    """Stands in for a pkcs11.Session: only records how often it was closed."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.closes = 0

    def close(self) -> None:
        self.closes += 1


class FakeOpenerError(RuntimeError):
    pass


class FakeOpener:
    """The open_session callable: counts calls, hands out new FakeSessions, raises on the calls listed in fail_on."""

    def __init__(self, fail_on: tuple[int, ...] = ()) -> None:
        self.calls = 0
        self.opened: list[FakeSession] = []
        self._fail_on = fail_on

    def __call__(self) -> FakeSession:
        self.calls += 1
        if self.calls in self._fail_on:
            raise FakeOpenerError(f"open #{self.calls} made to fail")
        session = FakeSession(self.calls)
        self.opened.append(session)
        return session


@pytest.fixture
def opener() -> FakeOpener:
    """A fresh counting fake opener."""
    return FakeOpener()


def test_first_acquire_opens_once(opener):
    """The first acquire calls the opener exactly once and returns the session it opened."""
    provider = reference_session(opener)
    session = provider.acquire()
    assert opener.calls == 1
    assert session is opener.opened[0]


def test_nested_acquires_share_the_session(opener):
    """A second acquire while the first is held returns the same session without opening another."""
    provider = reference_session(opener)
    first = provider.acquire()
    second = provider.acquire()
    assert second is first
    assert opener.calls == 1


def test_last_release_closes_exactly_once(opener):
    """Only the release that drops the last holder closes the session, and it closes it once."""
    provider = reference_session(opener)
    session = provider.acquire()
    provider.acquire()
    provider.release()
    assert session.closes == 0
    provider.release()
    assert session.closes == 1


def test_acquire_after_last_release_opens_a_new_session(opener):
    """Once the session was closed by the last release, the next acquire opens a new one."""
    provider = reference_session(opener)
    first = provider.acquire()
    provider.release()
    second = provider.acquire()
    assert second is not first
    assert opener.calls == 2


def test_providers_do_not_share_state():
    """Two factory calls give independent providers: each opens and closes its own session."""
    one, two = FakeOpener(), FakeOpener()
    first, second = reference_session(one), reference_session(two)
    a = first.acquire()
    b = second.acquire()
    assert a is not b
    assert (one.calls, two.calls) == (1, 1)
    first.release()
    assert (a.closes, b.closes) == (1, 0)


def test_with_statement_acquires_and_releases(opener):
    """`with provider as s` gives the opened session and closes it when the block ends."""
    provider = reference_session(opener)
    with provider as session:
        assert session is opener.opened[0]
        assert session.closes == 0
    assert session.closes == 1


def test_with_statement_releases_on_exception(opener):
    """Leaving the `with` block by an exception still releases (and here closes) the session."""
    provider = reference_session(opener)
    with pytest.raises(ZeroDivisionError):
        with provider as session:
            1 / 0
    assert session.closes == 1


def test_failed_open_leaves_no_holder():
    """An opener that raises leaves the refcount at 0: the next acquire opens, and its release closes."""
    opener = FakeOpener(fail_on=(1,))
    provider = reference_session(opener)
    with pytest.raises(FakeOpenerError):
        provider.acquire()
    session = provider.acquire()
    assert opener.calls == 2
    assert session is opener.opened[0]
    provider.release()
    assert session.closes == 1


def test_unbalanced_release_is_not_guarded(opener):
    """A release() without an acquire drives the refcount to -1, so the next acquire opens nothing and returns None.

    This is the documented pattern's flaw, asserted as it is on purpose: refsession.py is a faithful port of the
    python-pkcs11 docs' example and must not fix anything (its module docstring says so); the checks report such
    behaviour, the reference provider does not hide it.
    """
    provider = reference_session(opener)
    provider.release()
    assert provider.acquire() is None
    assert opener.calls == 0
