"""The model's predictions, step by step, on hand-written sequences (no module, no executor)."""

from __future__ import annotations

from typing import Any


from conformance.engine.families import FAMILIES
from conformance.engine.model import ANY, BLOCKED, INVALID, LOCK_RULE, Expectation, Model
from conformance.engine.params import ACTIVE, ModelParams
from conformance.engine.schedule import Step


def _first(allowed: frozenset[str] | None) -> str:
    return "ok" if allowed is None else sorted(allowed)[0]


class Play:
    """Drives a family's fresh model through hand-written steps, advancing each with its first allowed outcome
    (or a given one) and every waiter it resumes with that waiter's own first allowed outcome."""

    def __init__(self, family: str = "operations", params: ModelParams = ModelParams()) -> None:
        self.model: Model = FAMILIES[family].new_model(params)
        self.index = 0
        self.resumed: list[tuple[int, int, Step, Expectation]] = []

    def expect(self, actor: int, op: str, **args: Any) -> Expectation:
        return self.model.expect(actor, Step(actor, op, args))

    def do(self, actor: int, op: str, outcome: str | None = None, **args: Any) -> Expectation:
        step = Step(actor, op, args)
        exp = self.model.expect(actor, step)
        if outcome is None:
            outcome = BLOCKED if exp.blocks else _first(exp.allowed)
        queue = self.model.advance(self.index, actor, step, outcome)
        self.resumed = list(queue)
        while queue:
            j, a_j, s_j, e_j = queue.pop(0)
            queue += self.model.advance(j, a_j, s_j, _first(e_j.allowed))
        self.index += 1
        return exp


def _one(outcome: str) -> frozenset[str]:
    return frozenset({outcome})


def _searching(params: ModelParams = ModelParams(), *, batch: int = 10, family: str = "operations") -> Play:
    """s0 open and actor 0's search it0 on it started (one item taken): actor 0 holds s0's session lock."""
    play = Play(family, params)
    play.do(0, "open", ref="s0", login=False)
    play.do(0, "search", ref="it0", session="s0", batch=batch)
    assert play.do(0, "next", iterator="it0").allowed == _one("ok:item")
    return play


# --- the session lock (python-pkcs11 docs, Concurrency) ----------------------------------------------------------


def test_unconsumed_search_blocks_another_actors_find_all() -> None:
    """An unconsumed search iterator holds the session lock: another actor's find_all on it is expected to block."""
    play = _searching()
    exp = play.expect(1, "find_all", session="s0")
    assert exp.blocks and exp.allowed == _one(BLOCKED)
    assert (exp.layer, exp.rule) == ("binding", LOCK_RULE)


def test_a_search_not_yet_started_holds_no_lock() -> None:
    """get_objects() is lazy: before its first next, another actor's find_all runs (ok:4, the fixture objects)."""
    play = Play()
    play.do(0, "open", ref="s0", login=False)
    play.do(0, "search", ref="it0", session="s0", batch=10)
    assert play.expect(1, "find_all", session="s0").allowed == _one("ok:4")


def test_consuming_the_iterator_resumes_the_waiter() -> None:
    """Consuming the iterator releases the lock: advance returns the waiter with its expectation now."""
    play = _searching()
    play.do(1, "find_all", session="s0")
    assert play.model.blocked_actors() == {1}
    assert play.do(0, "consume", iterator="it0").allowed == _one("ok:3")
    [(index, actor, step, exp)] = play.resumed
    assert (index, actor, step.op) == (3, 1, "find_all")
    assert exp.allowed == _one("ok:4")
    assert play.model.blocked_actors() == set() and play.model.waiters == {}


def test_dropping_the_iterator_resumes_the_waiter() -> None:
    """A collected (dropped) iterator releases the lock too."""
    play = _searching()
    play.do(1, "digest", session="s0")
    play.do(0, "drop", iterator="it0")
    assert [(j, a) for j, a, _, _ in play.resumed] == [(3, 1)]


def test_the_lock_owner_is_not_blocked_by_its_own_search() -> None:
    """The owner's crypto during its own search is the characterised point crypto_during_search (UG §2.6.7)."""
    exp = _searching().expect(0, "digest", session="s0")
    assert not exp.blocks
    assert exp.allowed == frozenset({"ok", ACTIVE}) and exp.point == "crypto_during_search"


def test_random_needs_no_lock() -> None:
    """random takes no session lock: another actor's call is characterised (random_during_operation), not blocked."""
    exp = _searching().expect(1, "random", session="s0")
    assert not exp.blocks and exp.point == "random_during_operation"


# --- searches (v3.0 §5.7.7, §5.7.8) ------------------------------------------------------------------------------


def test_second_search_on_a_session_is_refused() -> None:
    """A second search on the same session by the same actor expects OperationActive (v3.0 §5.7.7)."""
    play = _searching()
    play.do(0, "search", ref="it1", session="s0", batch=10)
    exp = play.expect(0, "next", iterator="it1")
    assert exp.allowed == _one(ACTIVE) and exp.point is None
    assert exp.layer == "module" and "§5.7.7" in exp.rule


def test_refused_search_ends_the_active_search_when_declared() -> None:
    """Declared refused_search_ends_active_search: the first iterator's next then expects OperationNotInitialized."""
    play = _searching(ModelParams(refused_search_ends_active_search=True), batch=1)
    play.do(0, "search", ref="it1", session="s0", batch=10)
    play.do(0, "next", iterator="it1")
    exp = play.expect(0, "next", iterator="it0")
    assert exp.allowed == _one("raises:OperationNotInitialized") and "§5.7.8" in exp.rule


def test_refused_search_leaves_buffered_items_to_come_out_first() -> None:
    """With batch=10 the first iterator's three buffered items still come out before OperationNotInitialized."""
    play = _searching(ModelParams(refused_search_ends_active_search=True), batch=10)
    play.do(0, "search", ref="it1", session="s0", batch=10)
    play.do(0, "next", iterator="it1")
    outcomes = [sorted(play.do(0, "next", iterator="it0").allowed) for _ in range(4)]
    assert outcomes == [["ok:item"]] * 3 + [["raises:OperationNotInitialized"]]


def test_refused_search_keeps_the_active_search_by_default() -> None:
    """By default (the documented contract) a refused search leaves the first iterator's search going."""
    play = _searching(batch=1)
    play.do(0, "search", ref="it1", session="s0", batch=10)
    play.do(0, "next", iterator="it1")
    assert play.expect(0, "next", iterator="it0").allowed == _one("ok:item")


def test_refused_find_all_ends_the_active_search_when_declared() -> None:
    """The declared finding applies to find_all too: refused with OperationActive, it ends the active search."""
    play = _searching(ModelParams(refused_search_ends_active_search=True), batch=1)
    assert play.do(0, "find_all", session="s0").allowed == _one(ACTIVE)
    assert play.expect(0, "next", iterator="it0").allowed == _one("raises:OperationNotInitialized")


def test_search_yields_every_fixture_object_then_stops() -> None:
    """A batch=2 search yields 4 items (two C_FindObjects calls), then stop; the next call stays exhausted."""
    play = _searching(batch=2)
    outcomes = [sorted(play.do(0, "next", iterator="it0").allowed)[0] for _ in range(5)]
    assert outcomes == ["ok:item", "ok:item", "ok:item", "ok:stop", "ok:stop"]


# --- encrypt generators ----------------------------------------------------------------------------------------


def test_encrypt_generator_releases_the_lock_with_its_last_item() -> None:
    """python-pkcs11 0.10.1 ends an encrypt generator (lock released) while producing its 4th and last item."""
    play = Play()
    play.do(0, "open", ref="s0", login=False)
    play.do(0, "encrypt_gen", ref="it0", session="s0")
    play.do(0, "next", iterator="it0")
    assert play.do(1, "digest", session="s0").blocks
    for _ in range(2):
        play.do(0, "next", iterator="it0")
        assert play.resumed == [] and play.model.blocked_actors() == {1}
    assert play.do(0, "next", iterator="it0").allowed == _one("ok:item")
    assert [(j, exp.allowed) for j, _, _, exp in play.resumed] == [(3, _one("ok"))]
    assert play.expect(0, "next", iterator="it0").allowed == _one("ok:stop")


# --- closed sessions (v3.0 §5.1.2) -----------------------------------------------------------------------------


def test_keyed_operation_on_a_closed_session_fails_without_blocking() -> None:
    """encrypt reads the key before taking the lock: on a closed session it fails at once, even if the lock is held."""
    play = _searching()
    play.do(0, "close", session="s0")
    exp = play.expect(1, "encrypt", session="s0")
    assert not exp.blocks and exp.allowed == INVALID
    assert exp.allowed == frozenset({"raises:SessionHandleInvalid", "raises:SessionClosed"})
    assert "§5.1.2" in exp.rule


def test_unkeyed_operation_on_a_closed_session_still_waits_for_the_lock() -> None:
    """digest takes the lock first, so on a closed session whose lock another actor holds it blocks."""
    play = _searching()
    play.do(0, "close", session="s0")
    assert play.expect(1, "digest", session="s0").blocks


def test_operation_on_a_closed_session_is_invalid() -> None:
    """With no lock in the way, a call on a closed session expects SessionHandleInvalid/SessionClosed."""
    play = Play()
    play.do(0, "open", ref="s0", login=False)
    play.do(0, "close", session="s0")
    assert play.expect(0, "digest", session="s0").allowed == INVALID
    assert play.expect(1, "random", session="s0").allowed == INVALID
    assert play.expect(0, "state", session="s0").allowed == _one("ok:closed")


def test_a_step_on_an_unknown_ref_is_not_judged() -> None:
    """A step naming a ref the run never made expects anything (ANY, layer harness)."""
    play = Play()
    assert play.expect(0, "digest", session="s9") is ANY
    assert play.expect(0, "next", iterator="it9").allowed is None


# --- login state (UG v2.40 §2.6.5, v3.0 §5.6.8) ----------------------------------------------------------------


def test_second_login_is_characterised() -> None:
    """A second login expects {ok, raises:UserAlreadyLoggedIn}, recorded as point second_login (v3.0 §5.6.8)."""
    play = Play("sessions")
    assert play.do(0, "open", ref="s0", login=True).point is None
    exp = play.expect(1, "open", ref="s1", login=True)
    assert exp.allowed == frozenset({"ok", "raises:UserAlreadyLoggedIn"})
    assert exp.point == "second_login" and "§5.6.8" in exp.rule


def test_failed_login_leak_is_counted_when_declared() -> None:
    """Declared failed_login_leaks_session: a refused second login leaves a session final_expectations counts."""
    play = Play("sessions", ModelParams(failed_login_leaks_session=True))
    play.do(0, "open", ref="s0", login=True)
    play.do(1, "open", "raises:UserAlreadyLoggedIn", ref="s1", login=True)
    assert play.model.final_expectations()["leaked"] == 1
    assert play.model.final_expectations()["alive_refs"] == ["s0"]


def test_failed_login_leaks_nothing_by_default() -> None:
    """By default a refused login leaves no session behind."""
    play = Play("sessions")
    play.do(0, "open", ref="s0", login=True)
    play.do(1, "open", "raises:UserAlreadyLoggedIn", ref="s1", login=True)
    assert play.model.final_expectations()["leaked"] == 0


def test_closing_the_logged_in_session_logs_the_application_out() -> None:
    """Session.close does C_Logout when it logged in; all sessions share the login state (UG v2.40 §2.6.5)."""
    play = Play("sessions")
    play.do(0, "open", ref="s0", login=True)
    play.do(1, "open", ref="s1", login=False)
    assert play.expect(1, "state", session="s1").allowed == _one("ok:user")
    play.do(0, "close", session="s0")
    assert play.expect(1, "state", session="s1").allowed == _one("ok:public")
    assert play.expect(2, "open", ref="s2", login=True).point is None


def test_close_after_logout_is_predicted_by_the_contract() -> None:
    """Session.close() closes the session (python-pkcs11's contract), even after another session's close logged the
    application out. 0.10.1 calls C_Logout first and would raise UserNotLoggedIn there, leaving the session open;
    the model keeps the contract, so on a module that accepts a second login that shows up as a binding finding."""
    play = Play("sessions")
    play.do(0, "open", ref="s0", login=True)
    play.do(1, "open", "ok", ref="s1", login=True)  # a module that accepts the second login
    play.do(0, "close", session="s0")
    assert play.expect(1, "close", session="s1").allowed == _one("ok")


def test_fixture_login_makes_the_first_login_a_second_one() -> None:
    """In a logged-in family the fixture session already logged in, so any login step is the characterised point."""
    assert Play("operations").expect(0, "open", ref="s0", login=True).point == "second_login"


# --- the session provider (python-pkcs11 docs, Reenterant Sessions) ---------------------------------------------


def test_provider_shares_one_session_and_closes_on_the_last_release() -> None:
    """First acquire ok:p0, nested acquire by another actor ok:p0, release while others hold ok:open, last ok:closed."""
    play = Play("provider")
    assert play.do(0, "acquire").allowed == _one("ok:p0")
    assert play.do(1, "acquire").allowed == _one("ok:p0")
    assert play.model.final_expectations()["provider_open"] == 1
    assert play.do(0, "release").allowed == _one("ok:open")
    assert play.do(1, "release").allowed == _one("ok:closed")
    assert play.model.final_expectations()["provider_open"] == 0
    assert play.do(0, "acquire").allowed == _one("ok:p1")


def test_provider_nested_acquire_by_one_actor_needs_two_releases() -> None:
    """The same actor acquiring twice holds twice: its first release leaves the session open."""
    play = Play("provider")
    play.do(0, "acquire")
    play.do(0, "acquire")
    assert play.do(0, "release").allowed == _one("ok:open")
    assert play.do(0, "release").allowed == _one("ok:closed")


def test_provider_open_failure_propagates_and_is_not_counted() -> None:
    """fail_next_open makes acquire raise ProviderOpenFailed; no session was made, so the next acquire is ok:p0."""
    play = Play("provider")
    play.do(0, "fail_next_open")
    exp = play.do(0, "acquire")
    assert exp.allowed == _one("raises:ProviderOpenFailed") and exp.layer == "provider"
    assert not play.model.holding(0) and play.model.provider_count == 0
    assert play.do(1, "acquire").allowed == _one("ok:p0")


def test_provider_open_failure_waits_for_the_next_open() -> None:
    """An acquire that reuses the held session runs no opener, so fail_next_open applies to the next real open."""
    play = Play("provider")
    play.do(0, "acquire")
    play.do(0, "fail_next_open")
    assert play.do(1, "acquire").allowed == _one("ok:p0")
    play.do(1, "release")
    play.do(0, "release")
    assert play.do(0, "acquire").allowed == _one("raises:ProviderOpenFailed")


def test_release_without_a_hold_is_not_judged() -> None:
    """A release by an actor holding nothing expects anything (the harness's step, not the provider's contract)."""
    assert Play("provider").expect(2, "release") is ANY


def test_provider_use_reads_from_the_held_session() -> None:
    """use(search) finds the 4 fixture objects, use(attribute) reads True; without a hold, use is not judged."""
    play = Play("provider")
    assert play.expect(0, "use", what="search") is ANY
    play.do(0, "acquire")
    assert play.expect(0, "use", what="search").allowed == _one("ok:4")
    assert play.expect(0, "use", what="attribute").allowed == _one("ok:True")


def test_final_alive_refs_leave_out_provider_sessions() -> None:
    """final_expectations()['alive_refs'] lists only step-opened sessions, not the provider's p0."""
    play = Play("provider")
    play.do(0, "acquire")
    assert play.model.final_expectations() == {"alive_refs": [], "leaked": 0, "provider_open": 1}


# --- iterators finished by another thread (declared binding finding) -------------------------------------------


def test_nonowner_consume_raises_and_keeps_the_lock_when_declared() -> None:
    """Declared nonowner_finish_keeps_lock: a non-owner's consume expects RuntimeError and the session stays stuck."""
    play = _searching(ModelParams(nonowner_finish_keeps_lock=True), family="release")
    exp = play.do(1, "consume", iterator="it0")
    assert exp.allowed == _one("raises:RuntimeError") and exp.layer == "binding"
    session = play.model.sessions["s0"]
    assert session.stuck and session.lock_owner == 0
    assert play.expect(1, "find_all", session="s0").blocks


def test_nonowner_consume_releases_the_lock_by_default() -> None:
    """By default a non-owner's consume returns the 3 remaining items and frees the lock."""
    play = _searching(family="release")
    assert play.do(1, "consume", iterator="it0").allowed == _one("ok:3")
    assert not play.model.sessions["s0"].stuck
    assert play.expect(1, "find_all", session="s0").allowed == _one("ok:4")


def test_owner_consume_is_unaffected_by_the_declared_finding() -> None:
    """nonowner_finish_keeps_lock changes nothing when the owner itself consumes."""
    play = _searching(ModelParams(nonowner_finish_keeps_lock=True), family="release")
    assert play.do(0, "consume", iterator="it0").allowed == _one("ok:3")
    assert not play.model.sessions["s0"].stuck


# --- the per-operation tables (semantics.OPS, vocabulary.py) ----------------------------------------------------


def test_an_operation_outside_the_table_is_not_judged() -> None:
    """A step whose op has no row in semantics.OPS expects anything and changes nothing."""
    play = Play()
    step = Step(0, "no_such_op", {})
    assert play.model.expect(0, step) is ANY
    assert play.model.advance(0, 0, step, "ok") == [] and play.model.sessions == {}


def test_every_step_a_family_offers_has_a_row() -> None:
    """Every op the families' menus offer has a row in semantics.OPS: one without would never be judged (ANY)."""
    from conformance.engine.semantics import OPS

    offered: set[str] = set()
    for name, family in FAMILIES.items():
        for pick in range(6):  # walks taking different menu entries, advanced with first-allowed outcomes
            play, counter = Play(name), {}
            for i in range(family.max_steps):
                actor = i % family.max_actors
                options = family.candidates(play.model, actor, counter)
                if actor in play.model.blocked_actors() or not options:
                    continue
                step = options[(pick * 7 + i) % len(options)]
                offered.add(step.op)
                play.do(actor, step.op, **step.args)
                if isinstance(ref := step.args.get("ref"), str):
                    counter[ref.rstrip("0123456789")] = counter.get(ref.rstrip("0123456789"), 0) + 1
    assert len(offered) > 10 and offered <= set(OPS)


def test_every_operation_kind_has_a_concurrency_rule() -> None:
    """CONCURRENT answers for every module operation a call or generator starts while any operation that stays
    active between steps (a search, a generator) runs, and each parameter it names is a ModelParams field (the
    outcomes that pass)."""
    from dataclasses import fields

    from conformance.engine.vocabulary import CONCURRENT, GENERATORS, ITEMS, ONE_SHOT

    kinds = {c.kind for c in ONE_SHOT.values()} | set(ITEMS)
    assert {(k, a) for k in kinds for a in ("search", *GENERATORS)} == set(CONCURRENT)
    params = {o.param for o in CONCURRENT.values() if o.param is not None}
    assert params <= {f.name for f in fields(ModelParams)}
    assert all((o.param is None) == (o.point is None) for o in CONCURRENT.values())


def test_provider_use_is_predicted_as_the_call_it_makes() -> None:
    """use(digest) on the held session during the actor's own partial search is digest's characterised point."""
    play = Play("provider")
    play.do(0, "acquire")
    play.do(0, "use_partial", ref="it0")
    exp = play.expect(0, "use", what="digest")
    assert exp.allowed == frozenset({"ok", ACTIVE}) and exp.point == "crypto_during_search"


def test_refused_provider_search_ends_the_active_search_when_declared() -> None:
    """use(search) refused with OperationActive changes the state as find_all would: it ends the active search."""
    play = Play("provider", ModelParams(refused_search_ends_active_search=True))
    play.do(0, "acquire")
    play.do(0, "use_partial", ref="it0")
    assert play.do(0, "use", ACTIVE, what="search").allowed == _one(ACTIVE)
    assert "search" not in play.model.sessions["p0"].ops


def test_a_blocked_encrypt_has_read_the_key_type() -> None:
    """encrypt reads its key's type before it waits for the lock (python-pkcs11 caches it): once an encrypt has
    blocked, a later encrypt on the closed session waits for the lock like digest instead of failing at once."""
    play = _searching()
    assert play.do(1, "encrypt", session="s0").blocks
    play.do(0, "close", session="s0")
    assert play.expect(2, "encrypt", session="s0").blocks
