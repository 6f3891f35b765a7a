"""Each operation's semantics in one table, OPS (at the end), after h11's _state.py transition tables: per
operation, how the model predicts a step and how the step's outcome changes the model's state — its row, and
the handlers grouped above under its name, read off rather than followed through an if-chain.

A row's predictor is guarded by what the step refers to (on_session, on_iterator, ...): a ref the real run
lost after an allowed divergence leaves the step unjudged (ANY; predicting.py has the guards and the shared
building blocks). What is plain data is in vocabulary.py: which
calls take python-pkcs11's session lock, which module operation they run and what they return (ONE_SHOT, USE),
how long generators run (ITEMS), what the module may do when operations overlap (CONCURRENT). The iterator's
lock and operation bookkeeping the transitions share is the Model's (start, finish, end_search).
"""

from __future__ import annotations

from .params import ACTIVE, OK
from .schedule import Step
from .vocabulary import (
    GENERATORS, INVALID, ITEMS, KEYED, LOCK_RULE, ONE_SHOT, USE, USE_VALUES, Call, Expectation, IterM, SessionM,
    _one,
)

from .state import ModelState as Model  # the handlers read and change the model's state only
from .predicting import (
    CLOSED_UNDER_RULE, EXHAUSTED_RULE, KEY_READ_RULE, LAZY_RULE, NOT_INITIALIZED_RULE, PROVIDER_RULE, Apply, OpSpec,
    finishing, fixed, iterator_of, on_held_session, on_iterator, on_session, starting, while_holding,
)

# --- open, close, state ------------------------------------------------------------------------------------------


def _predict_open(m: Model, actor: int, step: Step) -> Expectation:
    if step.args["login"] and m.app_login:
        return Expectation(m.p.second_login, "module", "v3.0 §5.6.8, §5.1.6 CKR_USER_ALREADY_LOGGED_IN", "second_login")
    return _one(OK, "module", "v3.0 §5.6.1 C_OpenSession")


def _apply_open(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    a = step.args
    if outcome.startswith(OK):
        m.sessions[a["ref"]] = SessionM(a["ref"], login_via=bool(a["login"]))
        if a["login"]:
            m.app_login = True
    elif a["login"] and m.p.failed_login_leaks_session:
        m.leaked += 1
    return []


_predict_close = fixed(OK, "binding", "python-pkcs11 Session.close: C_Logout if it logged in, then C_CloseSession")


def _apply_close(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    if outcome.startswith(OK):
        session = m.sessions[step.args["session"]]
        if session.login_via and m.app_login:
            m.app_login = False
        session.open = False
        if not m.fixture and not m.open_sessions():
            m.app_login = False  # v3.0 §5.6.2: closing the last session returns to public
    return []


def _predict_state(m: Model, actor: int, step: Step, session: SessionM) -> Expectation:
    if not session.open:
        return _one(f"{OK}:closed", "module", "v3.0 §5.6.2 C_CloseSession")
    return _one(f"{OK}:{'user' if m.app_login else 'public'}", "module",
                "UG v2.40 §2.6.5: all of an application's sessions share its login state")


# --- one-shot calls: digest, random, encrypt, decrypt, sign, verify, find_all ------------------------------------


def _predict_call(m: Model, actor: int, step: Step, session: SessionM) -> Expectation:
    return starting(m, actor, session, ONE_SHOT[step.op])


def _session_key(m: Model, step: Step) -> tuple[SessionM, str] | None:
    session = m.sessions.get(step.args["session"])
    return None if session is None else (session, KEYED[ONE_SHOT[step.op].kind])


def _apply_find_all(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    """A search refused with OperationActive also ends the one already active (measured binding finding)."""
    session = m.session_of(step)
    if session is not None and outcome.startswith("raises:"):
        _refused_search(m, actor, session, outcome)
    return []


def _refused_search(m: Model, actor: int, session: SessionM, outcome: str) -> None:
    """A get_objects() the module refused: its half-made iterator's finaliser calls C_FindObjectsFinal, which ends
    the search active on the session (refused_search_ends_active_search) — or, with none to end (the refusal was a
    crypto operation's, or the session is closed), fails: where searches start at get_objects() and a failed search
    keeps the lock (0.7, 0.8), the lock that get_objects() took stays held."""
    ends_another = outcome == ACTIVE and "search" in session.ops and session.open
    if ends_another:
        if m.p.refused_search_ends_active_search:
            m.end_search(session)
    elif m.p.failed_search_keeps_lock and m.p.search_starts_at_creation:
        session.lock_owner = actor
        session.lock_depth += 1
        session.stuck = True


def _ends_with_last_item(m: Model, it: IterM) -> bool:
    generator = GENERATORS.get(it.kind)
    return generator is not None and getattr(m.p, generator.releases_at_last_item)


# --- generators: search, encrypt_gen, decrypt_gen (lazy), then next, consume, drop --------------------------------


_predict_generator = fixed(OK, "binding", LAZY_RULE)


def _predict_search(m: Model, actor: int, step: Step, session: SessionM) -> Expectation:
    if m.p.search_starts_at_creation:  # SearchIter() takes the lock and calls C_FindObjectsInit (0.7, 0.8)
        return starting(m, actor, session, Call(True, "search"))
    return _predict_generator(m, actor, step, session)


def _apply_search(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    if not m.p.search_starts_at_creation:
        return _makes("search")(m, actor, step, outcome)
    a = step.args
    if outcome.startswith(OK):
        it = IterM(a["ref"], "search", a["session"], batch=int(a.get("batch", 10)))
        m.iters[a["ref"]] = it
        m.start_at_creation(actor, it)
    elif outcome.startswith("raises:") and a["session"] in m.sessions:
        _refused_search(m, actor, m.sessions[a["session"]], outcome)
    return []


def _makes(kind: str) -> Apply:
    def apply(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
        a = step.args
        if outcome.startswith(OK):
            m.iters[a["ref"]] = IterM(a["ref"], kind, a["session"], batch=int(a.get("batch", 10)))
        return []
    return apply


def _first_use_key(m: Model, step: Step) -> tuple[SessionM, str] | None:
    it = m.iters.get(step.args["iterator"])
    if it is None or it.kind not in KEYED or it.started or it.session not in m.sessions:
        return None
    return m.sessions[it.session], KEYED[it.kind]


def _predict_next(m: Model, actor: int, it: IterM, session: SessionM) -> Expectation:
    if it.done:
        return _one(f"{OK}:stop", "binding", EXHAUSTED_RULE)
    if not it.started:
        return starting(m, actor, session, Call(True, it.kind, "item"), KEY_READ_RULE)  # the first next starts it
    if not session.open:
        # Even buffered search results need the session: python-pkcs11 reads each object's attributes.
        return finishing(m, actor, it, INVALID, CLOSED_UNDER_RULE)
    if it.kind == "search":
        # C_FindObjects continues whatever search is active on the session — this iterator's or, once a refused
        # search ended it (declared binding finding), the next one's; with none, CKR_OPERATION_NOT_INITIALIZED.
        if it.buffered > 0:
            return _one(f"{OK}:item", "binding", "python-pkcs11 yields a fetched batch without calling C_FindObjects")
        if "search" not in session.ops:
            return finishing(m, actor, it, frozenset({"raises:OperationNotInitialized"}), NOT_INITIALIZED_RULE)
        if session.search_unfetched > 0:
            return _one(f"{OK}:item", "binding", "python-pkcs11 get_objects yields every matching object")
    elif it.remaining > 0:
        if it.remaining == 1 and _ends_with_last_item(m, it):
            return finishing(m, actor, it, frozenset({f"{OK}:item"}), LOCK_RULE)
        return _one(f"{OK}:item", "binding", "python-pkcs11 yields one item per chunk, then the final block")
    return finishing(m, actor, it, frozenset({f"{OK}:stop"}), LOCK_RULE)


def _apply_next(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    found = iterator_of(m, step)
    if found is None or found[0].done:
        return []
    it, session = found
    if not it.started:
        m.start(actor, it, outcome)
        return []
    if outcome != f"{OK}:item":
        return m.finish(actor, it, failed=outcome.startswith("raises:"))
    if it.kind == "search":
        if it.buffered > 0:
            it.buffered -= 1
        else:  # a C_FindObjects call fetched the next batch of the session's active search
            fetched = min(it.batch, session.search_unfetched)
            session.search_unfetched -= fetched
            it.buffered = fetched - 1
        return []
    it.remaining -= 1
    if it.remaining == 0 and _ends_with_last_item(m, it):
        return m.finish(actor, it)
    return []


def _predict_consume(m: Model, actor: int, it: IterM, session: SessionM) -> Expectation:
    if it.done:
        return _one(f"{OK}:0", "binding", EXHAUSTED_RULE)
    if not it.started:
        return starting(m, actor, session, Call(True, it.kind, ITEMS[it.kind]), KEY_READ_RULE)
    if not session.open:
        return finishing(m, actor, it, INVALID, CLOSED_UNDER_RULE)
    if it.kind != "search":
        left = it.remaining
    elif "search" not in session.ops:
        return finishing(m, actor, it, frozenset({"raises:OperationNotInitialized"}), NOT_INITIALIZED_RULE)
    else:
        left = it.buffered + session.search_unfetched
    return finishing(m, actor, it, frozenset({f"{OK}:{left}"}), LOCK_RULE)


def _apply_consume(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    found = iterator_of(m, step)
    if found is None or found[0].done:
        return []
    it = found[0]
    if not it.started:
        m.start(actor, it, outcome)
        if not outcome.startswith(OK):
            return []
    return m.finish(actor, it, failed=outcome.startswith("raises:"))  # ran to the end, or failed on the way


_predict_drop = fixed(OK, "binding", "dropping a generator never raises to the caller")


def _apply_drop(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    found = iterator_of(m, step)
    if found is None:
        return []
    it = found[0]
    del m.iters[it.ref]
    return m.finish(actor, it, dropped=True) if it.started and not it.done else []


# --- the session provider: acquire, release, use, use_partial; fail_next_open -------------------------------------


def _predict_acquire(m: Model, actor: int, step: Step) -> Expectation:
    if sum(m.holds.values()) > 0 and m.provider_session is not None:
        return _one(f"{OK}:{m.provider_session}", "provider", PROVIDER_RULE)
    if m.fail_next_open:
        return _one("raises:ProviderOpenFailed", "provider",
                    "--sut contract: an opener failure propagates from acquire")
    if m.app_login:
        # open_session logs in; another session of the application already did (v3.0 §5.6.8).
        return Expectation(m.p.second_login, "provider", "v3.0 §5.6.8: opening the shared session logs in again",
                           "acquire_while_app_logged_in").with_value(f"p{m.provider_count}")
    return _one(f"{OK}:p{m.provider_count}", "provider", PROVIDER_RULE)


def _apply_acquire(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    if outcome == "raises:ProviderOpenFailed":
        m.fail_next_open = False
    elif outcome == "raises:UserAlreadyLoggedIn" and m.p.failed_login_leaks_session:
        m.leaked += 1
    elif outcome.startswith(OK):
        if sum(m.holds.values()) == 0:
            ref = outcome.split(":", 1)[1]
            m.provider_session = ref
            m.provider_count += 1
            m.sessions[ref] = SessionM(ref, login_via=True)
            m.app_login = True
        m.holds[actor] = m.holds.get(actor, 0) + 1
    return []


def _predict_release(m: Model, actor: int, step: Step) -> Expectation:
    last = sum(m.holds.values()) == 1
    return _one(f"{OK}:{'closed' if last else 'open'}", "provider",
                "python-pkcs11 docs, Reenterant Sessions: close on the last release, not before")


def _predict_stray_release(m: Model, actor: int, step: Step) -> Expectation:
    return Expectation(None, "provider", "--sut contract: a stray release is the provider's to refuse or ignore")


def _apply_release(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    if m.holding(actor):
        m.holds[actor] -= 1
        if sum(m.holds.values()) == 0 and m.provider_session is not None:
            m.sessions[m.provider_session].open = False
            m.app_login = False
            m.provider_session = None
    return []


def _predict_use(m: Model, actor: int, step: Step, session: SessionM) -> Expectation:
    what = step.args["what"]
    op = USE[what]
    if op is None:
        return _one(f"{OK}:{USE_VALUES[what]}", "module", "attribute read needs no operation")
    return starting(m, actor, session, ONE_SHOT[op])


def _apply_use(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    op = USE.get(step.args.get("what"))
    return OPS[op].apply(m, actor, step, outcome) if op is not None else []  # what the call it makes does


def _predict_use_partial(m: Model, actor: int, step: Step, session: SessionM) -> Expectation:
    return starting(m, actor, session, Call(True, "search"))


def _apply_use_partial(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    if m.provider_session is not None:
        it = IterM(step.args["ref"], "search", m.provider_session)
        m.iters[it.ref] = it
        m.start(actor, it, outcome)  # the step takes one item: the search starts inside it
    return []


_predict_fail_next_open = fixed(OK, "harness", "harness control step")


def _apply_fail_next_open(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    m.fail_next_open = True
    return []


# --- the table ---------------------------------------------------------------------------------------------------

OPS: dict[str, OpSpec] = {
    "open": OpSpec(_predict_open, _apply_open),
    "close": OpSpec(on_session(_predict_close), _apply_close),
    "state": OpSpec(on_session(_predict_state)),
    # One-shot calls: the lock, module operation and value are ONE_SHOT's.
    "digest": OpSpec(on_session(_predict_call)),
    "random": OpSpec(on_session(_predict_call)),
    "encrypt": OpSpec(on_session(_predict_call), reads_key=_session_key),
    "decrypt": OpSpec(on_session(_predict_call), reads_key=_session_key),
    "sign": OpSpec(on_session(_predict_call), reads_key=_session_key),
    "verify": OpSpec(on_session(_predict_call), reads_key=_session_key),
    "find_all": OpSpec(on_session(_predict_call), _apply_find_all),
    # Generators make no call until their first next/consume, which takes the lock until they finish.
    "search": OpSpec(on_session(_predict_search), _apply_search),
    "encrypt_gen": OpSpec(on_session(_predict_generator), _makes("encrypt")),
    "decrypt_gen": OpSpec(on_session(_predict_generator), _makes("decrypt")),
    "next": OpSpec(on_iterator(_predict_next), _apply_next, reads_key=_first_use_key),
    "consume": OpSpec(on_iterator(_predict_consume), _apply_consume, reads_key=_first_use_key),
    "drop": OpSpec(on_iterator(_predict_drop), _apply_drop),
    # The session provider under test, and the harness's control of its opener.
    "acquire": OpSpec(_predict_acquire, _apply_acquire),
    "release": OpSpec(while_holding(_predict_release), _apply_release),
    # A release no acquire of the actor's stands behind: the provider may refuse it or ignore it, and what it says
    # is characterised; what must not change is what every later step gets (the model's state is left as it was).
    "stray_release": OpSpec(_predict_stray_release),
    "use": OpSpec(on_held_session(_predict_use), _apply_use),
    "use_partial": OpSpec(on_held_session(_predict_use_partial), _apply_use_partial),
    "fail_next_open": OpSpec(_predict_fail_next_open, _apply_fail_next_open),
}
