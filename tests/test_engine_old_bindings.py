"""The model with the parameters an older python-pkcs11 is measured to have (0.7, 0.8): get_objects() starting
the search at once, and a failed search keeping the session lock (live/characterise.py measures both)."""

from __future__ import annotations

from conformance.engine.model import BLOCKED, LOCK_RULE
from conformance.engine.params import ACTIVE, ModelParams
from conformance.engine.strategies import step_key
from conformance.engine.schedule import Step
from conformance.engine.vocabulary import ITEMS

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


def test_a_collected_generator_leaves_its_operation_for_good() -> None:
    """With collected_generator_keeps_operation (0.7/0.8), an encryption generator collected unfinished releases the
    lock but leaves the module's encrypt operation active: the session's next encryption meets it (OperationActive);
    without it (0.9 cancels the operation) the encryption runs."""
    for keeps, want in ((True, frozenset({ACTIVE})), (False, frozenset({"ok"}))):
        play = _open(ModelParams(collected_generator_keeps_operation=keeps))
        play.do(0, "encrypt_gen", ref="it0", session="s0")
        play.do(0, "next", iterator="it0")
        play.do(0, "drop", iterator="it0")
        assert play.expect(0, "encrypt", session="s0").allowed == want, keeps
        assert play.model.sessions["s0"].lock_owner is None


def test_a_search_failing_first_raises_its_own_error_on_another_thread() -> None:
    """0.7/0.8: an iterator whose search was ended under it raises OperationNotInitialized before any lock release,
    so on another thread than its starter it raises that, not the non-owner release's RuntimeError."""
    play = _open(ModelParams(search_starts_at_creation=True, refused_search_ends_active_search=True,
                             failed_search_keeps_lock=True, nonowner_finish_keeps_lock=True))
    play.do(0, "search", ref="it0", session="s0", batch=1)
    play.do(0, "search", ACTIVE, ref="it1", session="s0", batch=1)
    assert play.expect(1, "consume", iterator="it0").allowed == frozenset({"raises:OperationNotInitialized"})


def test_dropping_a_search_of_a_closed_session_keeps_the_lock_where_a_failed_search_does() -> None:
    """0.7/0.8: the finaliser's C_FindObjectsFinal on a closed session fails before the lock is released: the
    session's lock stays held (another actor waiting on it waits for good)."""
    play = _open(ModelParams(search_starts_at_creation=True, failed_search_keeps_lock=True))
    play.do(0, "search", ref="it0", session="s0", batch=1)
    play.do(0, "close", session="s0")
    play.do(0, "drop", iterator="it0")
    assert play.model.sessions["s0"].stuck


def test_a_generator_holding_the_lock_past_its_last_item() -> None:
    """With generator_releases_at_last_item off (0.7/0.8: the final block is yielded inside the lock), the lock is
    still held after the last item and released at the next() that ends the generator (ok:stop)."""
    play = _open(ModelParams(generator_releases_at_last_item=False))
    play.do(0, "encrypt_gen", ref="it0", session="s0")
    for _ in range(ITEMS["encrypt"]):  # every chunk, then the final block
        assert play.do(0, "next", iterator="it0").allowed == frozenset({"ok:item"})
    assert play.model.sessions["s0"].lock_owner == 0
    assert play.do(0, "next", iterator="it0").allowed == frozenset({"ok:stop"})
    assert play.model.sessions["s0"].lock_owner is None


def test_a_refused_eager_search_with_none_active_keeps_the_lock() -> None:
    """0.7/0.8: get_objects() refused because a crypto operation is active takes the lock, and its finaliser's
    C_FindObjectsFinal (no search to end) fails before releasing it: the session is stuck."""
    play = _open(EAGER.declare([("failed_search_keeps_lock", True)]))
    play.do(0, "find_all", ACTIVE, session="s0")
    assert play.model.sessions["s0"].stuck


def test_a_hang_on_a_lock_held_for_good_is_what_the_model_predicts() -> None:
    """When an allowed outcome (a search refused during an encryption, 0.7/0.8) left the lock held for good, a later
    step of another actor that never returns, waiting above the module, is what the model predicts: not a
    finding (the plan had assumed the other allowed outcome)."""
    from conformance.engine.judge import judge
    from conformance.engine.schedule import Schedule, StepResult, Trace

    params = EAGER.declare([("failed_search_keeps_lock", True)])
    steps = (Step(0, "open", {"ref": "s0", "login": False}), Step(0, "encrypt_gen", {"ref": "it0", "session": "s0"}),
             Step(0, "next", {"iterator": "it0"}), Step(0, "find_all", {"session": "s0"}),
             Step(1, "find_all", {"session": "s0"}))
    trace = Trace((StepResult(0, "ok"), StepResult(1, "ok"), StepResult(2, "ok", value="item"),
                   StepResult(3, "raised", "OperationActive"), StepResult(4, "hung")))
    from conformance.engine.families import FAMILIES

    verdict = judge(Schedule("operations", 2, steps), trace, FAMILIES["operations"].new_model(params))
    assert verdict.status == "passed", verdict


def test_an_eager_search_on_a_closed_session_keeps_the_lock() -> None:
    """0.7/0.8: get_objects() on a closed session takes the lock, C_FindObjectsInit fails (SessionHandleInvalid),
    and its finaliser's C_FindObjectsFinal fails too before the release: the lock stays with that actor."""
    play = _open(EAGER.declare([("failed_search_keeps_lock", True)]))
    play.do(0, "close", session="s0")
    play.do(1, "find_all", "raises:SessionHandleInvalid", session="s0")
    session = play.model.sessions["s0"]
    assert (session.stuck, session.lock_owner) == (True, 1)
