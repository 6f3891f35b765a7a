"""The model with the parameters an older python-pkcs11 is measured to have (0.7, 0.8): get_objects() starting
the search at once, and a failed search keeping the session lock (live/characterise.py measures both)."""

from __future__ import annotations

from conformance.engine.model import BLOCKED, LOCK_RULE
from conformance.engine.params import ACTIVE, ModelParams
from conformance.engine.strategies import step_key
from conformance.engine.schedule import Step

from test_engine_model import Play

EAGER = ModelParams(search_starts_at_creation=True, refused_search_ends_active_search=True)


def _open(params: ModelParams) -> Play:
    play = Play("operations", params)
    play.do(0, "open", ref="s0", login=False)
    return play


def test_an_eager_search_takes_the_lock_at_creation() -> None:
    """0.7/0.8 SearchIter.__init__ takes the session lock and calls C_FindObjectsInit: right after get_objects(),
    another actor's find_all on the session is expected to block (with lazy searches it would run)."""
    play = _open(EAGER)
    assert play.do(0, "search", ref="it0", session="s0", batch=1).allowed == frozenset({"ok"})
    exp = play.expect(1, "find_all", session="s0")
    assert exp.blocks and (exp.layer, exp.rule) == ("binding", LOCK_RULE)


def test_an_eager_search_is_created_blocked_behind_another_actors_lock() -> None:
    """Creating a search while another actor holds the lock waits for it (lazy: creation never waits)."""
    play = _open(EAGER)
    play.do(0, "search", ref="it0", session="s0", batch=1)
    assert play.expect(1, "search", ref="it1", session="s0", batch=1).allowed == frozenset({BLOCKED})


def test_an_eager_search_yields_one_object_per_call() -> None:
    """Nothing is fetched at creation; every next() then yields one object until the fixture objects are out."""
    play = _open(EAGER)
    play.do(0, "search", ref="it0", session="s0", batch=1)
    outcomes = [sorted(play.do(0, "next", iterator="it0").allowed)[0] for _ in range(5)]
    assert outcomes == ["ok:item"] * 4 + ["ok:stop"]


def test_a_refused_eager_search_ends_the_active_one() -> None:
    """A second get_objects() refused at creation (OperationActive) ends the session's active search, as the
    refused search's finaliser calls C_FindObjectsFinal: the first iterator's next item fails."""
    play = _open(EAGER)
    play.do(0, "search", ref="it0", session="s0", batch=1)
    assert play.expect(0, "search", ref="it1", session="s0", batch=1).allowed == frozenset({ACTIVE})
    play.do(0, "search", ACTIVE, ref="it1", session="s0", batch=1)
    assert play.expect(0, "next", iterator="it0").allowed == frozenset({"raises:OperationNotInitialized"})


def test_a_failed_search_keeps_the_lock_for_good() -> None:
    """With failed_search_keeps_lock (0.7/0.8), an iterator whose next() failed leaves the session's lock held:
    the session is stuck (exploration draws no step that would wait on it); without it, the lock comes free."""
    for keeps in (True, False):
        play = _open(ModelParams(search_starts_at_creation=True, refused_search_ends_active_search=True,
                                 failed_search_keeps_lock=keeps))
        play.do(0, "search", ref="it0", session="s0", batch=1)
        play.do(0, "search", ACTIVE, ref="it1", session="s0", batch=1)
        play.do(0, "next", "raises:OperationNotInitialized", iterator="it0")
        session = play.model.sessions["s0"]
        assert (session.stuck, session.lock_owner is not None) == (keeps, keeps)


def test_searches_of_another_batch_are_their_own_step_kind() -> None:
    """A search fetching other than one object per C_FindObjects needs get_objects(batch_size=) (0.9.0 and later):
    it is its own step kind, left out of the menus where the binding lacks it (capability search_batch_size)."""
    assert step_key(Step(0, "search", {"ref": "it0", "session": "s0", "batch": 1})) == "search"
    assert step_key(Step(0, "search", {"ref": "it0", "session": "s0", "batch": 10})) == "search:batch"
