"""The model: what each step should do, from the PKCS#11 spec, python-pkcs11's documented contract and the
declared parameters — state plus tables, so a prediction can be read off rather than followed through if-chains.

The same model serves twice: while hypothesis draws a schedule (advanced with the predicted outcome, to know
which actors can run and which calls will block) and while a trace is judged (advanced with the actual outcome,
so one allowed implementation-defined choice does not derail every later prediction).
"""

from __future__ import annotations

from typing import Any

from .params import ACTIVE, OK, ModelParams
from .schedule import Step
from .vocabulary import (
    ANY, BLOCKED, ENDS_WITH_LAST_ITEM, FIXTURE_OBJECTS, INVALID, ITEMS, KEYED, LOCK_RULE, ONE_SHOT, USE, USE_VALUES,
    Expectation, IterM, SessionM, Waiter, _one,
)

__all__ = ["ANY", "BLOCKED", "INVALID", "LOCK_RULE", "Expectation", "Model"]


class Model:
    def __init__(self, params: ModelParams = ModelParams(), *, fixture: bool = True, logged_in: bool = False) -> None:
        self.p = params
        self.sessions: dict[str, SessionM] = {}
        self.iters: dict[str, IterM] = {}
        self.app_login = logged_in  # the fixture session logged the application in before the first step
        self.leaked = 0
        self.waiters: dict[str, Waiter] = {}  # session ref -> the one actor waiting on its lock
        self.fixture = fixture
        # the session provider under test
        self.holds: dict[int, int] = {}
        self.provider_session: str | None = None
        self.provider_count = 0
        self.fail_next_open = False
        self.observed: dict[str, set[str]] = {}

    # --- queries the strategies use ------------------------------------------------------------------------

    def blocked_actors(self) -> set[int]:
        return {w.actor for w in self.waiters.values()}

    def open_sessions(self) -> list[str]:
        return [r for r, s in self.sessions.items() if s.open]

    def live_iterators(self) -> list[str]:
        waiting = {w.step.args.get("iterator") for w in self.waiters.values()}
        return [r for r, i in self.iters.items() if not i.done and r not in waiting]

    def holding(self, actor: int) -> bool:
        return self.holds.get(actor, 0) > 0

    def held_session(self) -> str | None:
        return self.provider_session

    # --- predictions ----------------------------------------------------------------------------------------

    def expect(self, actor: int, step: Step) -> Expectation:
        op, a = step.op, step.args
        if op == "open":
            if a["login"] and self.app_login:
                return Expectation(self.p.second_login, "module", "v3.0 §5.6.8, §5.1.6 CKR_USER_ALREADY_LOGGED_IN", "second_login")
            return _one(OK, "module", "v3.0 §5.6.1 C_OpenSession")
        if op in ("fail_next_open",):
            return _one(OK, "harness", "harness control step")
        if op == "acquire":
            return self._expect_acquire()
        if op == "release":
            if not self.holding(actor):
                return ANY
            last = sum(self.holds.values()) == 1
            return _one(f"{OK}:{'closed' if last else 'open'}", "provider",
                        "python-pkcs11 docs, Reenterant Sessions: close on the last release, not before")
        if op in ("use", "use_partial"):
            if not self.holding(actor) or self.provider_session is None:
                return ANY
            session = self.sessions[self.provider_session]
            if op == "use_partial":
                return self._expect_start(actor, session, "search", value=None)
            mapped = USE[a["what"]]
            if mapped is None:
                return _one(f"{OK}:{USE_VALUES[a['what']]}", "module", "attribute read needs no operation")
            exp = self._expect_one_shot(actor, session, mapped)
            value = USE_VALUES.get(a["what"])
            return self._with_value(exp, value)
        if "session" in a and op != "search" and op != "encrypt_gen":
            session = self.sessions.get(a["session"])
            if session is None:
                return ANY
            if op == "close":
                return _one(OK, "binding", "python-pkcs11 Session.close: C_Logout if it logged in, then C_CloseSession")
            if op == "state":
                if not session.open:
                    return _one(f"{OK}:closed", "module", "v3.0 §5.6.2 C_CloseSession")
                return _one(f"{OK}:{'user' if self.app_login else 'public'}", "module",
                            "UG v2.40 §2.6.5: all of an application's sessions share its login state")
            exp = self._expect_one_shot(actor, session, op)
            return self._with_value(exp, FIXTURE_OBJECTS if op == "find_all" else None)
        if op in ("search", "encrypt_gen"):
            if a["session"] not in self.sessions:
                return ANY
            return _one(OK, "binding", "python-pkcs11: get_objects()/encrypt() of an iterable return lazy generators")
        if op in ("next", "consume", "drop"):
            it = self.iters.get(a["iterator"])
            if it is None:
                return ANY
            return self._expect_iter(actor, it, op)
        return ANY

    @staticmethod
    def _with_value(exp: Expectation, value: Any) -> Expectation:
        if value is None or exp.allowed is None:
            return exp
        return Expectation(frozenset(f"{o}:{value}" if o == OK else o for o in exp.allowed), exp.layer, exp.rule, exp.point)

    def _expect_acquire(self) -> Expectation:
        rule = "python-pkcs11 docs, Reenterant Sessions: one shared session, opened by the first acquire"
        if sum(self.holds.values()) > 0 and self.provider_session is not None:
            return _one(f"{OK}:{self.provider_session}", "provider", rule)
        if self.fail_next_open:
            return _one("raises:ProviderOpenFailed", "provider", "--sut contract: an opener failure propagates from acquire")
        if self.app_login:
            # open_session logs in; another session of the application already did (v3.0 §5.6.8).
            allowed = frozenset(f"{OK}:p{self.provider_count}" if o == OK else o for o in self.p.second_login)
            return Expectation(allowed, "provider", "v3.0 §5.6.8: opening the shared session logs in again",
                               "acquire_while_app_logged_in")
        return _one(f"{OK}:p{self.provider_count}", "provider", rule)

    def _blocked_by_other(self, actor: int, session: SessionM) -> bool:
        return session.lock_owner is not None and session.lock_owner != actor

    def _conflict(self, session: SessionM, kind: str | None) -> tuple[frozenset[str], str, str | None]:
        """Module outcome of starting `kind` on the session given the operations already active there."""
        active = set(session.ops)
        if not active:
            return frozenset({OK}), "v3.0 §5.7.7 / §5.8: no operation active", None
        if kind is None:
            return self.p.random_during_operation, "UG §2.6.7: random generation while an operation is active", "random_during_operation"
        if kind == "search":
            if "search" in active:
                return frozenset({ACTIVE}), "v3.0 §5.7.7: at most one search operation per session", None
            return self.p.search_during_crypto, "UG §2.6.7: search while a crypto operation is active", "search_during_crypto"
        if "search" in active:
            return self.p.crypto_during_search, "UG §2.6.7: crypto operation while a search is active", "crypto_during_search"
        if kind == "digest":
            return self.p.digest_during_encrypt, "UG §4.1: digest with encryption only with dual-function support", "digest_during_encrypt"
        return frozenset({ACTIVE}), "UG §4.1: one encryption operation per session", None

    def _expect_one_shot(self, actor: int, session: SessionM, op: str) -> Expectation:
        locks, kind = ONE_SHOT[op]
        if not session.open and (not locks or (kind in KEYED and not session.key_typed)):
            return Expectation(INVALID, "module", "v3.0 §5.1.2 CKR_SESSION_HANDLE_INVALID")
        if locks and self._blocked_by_other(actor, session):
            return _one(BLOCKED, "binding", LOCK_RULE)
        if not session.open:
            return Expectation(INVALID, "module", "v3.0 §5.1.2 CKR_SESSION_HANDLE_INVALID")
        allowed, rule, point = self._conflict(session, kind)
        return Expectation(allowed, "module", rule, point)

    def _expect_start(self, actor: int, session: SessionM, kind: str, value: Any = "item") -> Expectation:
        if kind in KEYED and not session.open and not session.key_typed:
            return Expectation(INVALID, "module", "v3.0 §5.1.2: the key's type is read before the lock is taken")
        if self._blocked_by_other(actor, session):
            return _one(BLOCKED, "binding", LOCK_RULE)
        if not session.open:
            return Expectation(INVALID, "module", "v3.0 §5.1.2 CKR_SESSION_HANDLE_INVALID")
        allowed, rule, point = self._conflict(session, kind)
        return self._with_value(Expectation(allowed, "module", rule, point), value)

    def _expect_iter(self, actor: int, it: IterM, op: str) -> Expectation:
        session = self.sessions[it.session]
        if op == "drop":
            return _one(OK, "binding", "dropping a generator never raises to the caller")
        if it.done:
            return _one(f"{OK}:{'stop' if op == 'next' else 0}", "binding", "an exhausted generator stays exhausted")
        if not it.started:
            total = ITEMS[it.kind]
            return self._expect_start(actor, session, it.kind, value="item" if op == "next" else total)
        if not session.open:
            # Even buffered search results need the session: python-pkcs11 reads each object's attributes.
            return self._finish_outcomes(actor, it, INVALID, "v3.0 §5.1.2: the session was closed under the iterator")
        if it.kind == "search":
            return self._expect_search(actor, it, session, op)
        if op == "next" and it.remaining > 0:
            if it.remaining == 1 and it.kind in ENDS_WITH_LAST_ITEM:
                return self._finish_outcomes(actor, it, frozenset({f"{OK}:item"}), LOCK_RULE)
            return _one(f"{OK}:item", "binding", "python-pkcs11 yields one item per chunk, then the final block")
        value = "stop" if op == "next" else it.remaining
        return self._finish_outcomes(actor, it, frozenset({f"{OK}:{value}"}), LOCK_RULE)

    def _expect_search(self, actor: int, it: IterM, session: SessionM, op: str) -> Expectation:
        """C_FindObjects continues whatever search is active on the session — this iterator's or, once a refused
        search ended it (declared binding finding), the next one's; with none, CKR_OPERATION_NOT_INITIALIZED."""
        if op == "next" and it.buffered > 0:
            return _one(f"{OK}:item", "binding", "python-pkcs11 yields a fetched batch without calling C_FindObjects")
        if "search" not in session.ops:
            return self._finish_outcomes(actor, it, frozenset({"raises:OperationNotInitialized"}),
                                         "v3.0 §5.7.8 CKR_OPERATION_NOT_INITIALIZED: no search is active")
        if op == "next" and session.search_unfetched > 0:
            return _one(f"{OK}:item", "binding", "python-pkcs11 get_objects yields every matching object")
        value = "stop" if op == "next" else it.buffered + session.search_unfetched
        return self._finish_outcomes(actor, it, frozenset({f"{OK}:{value}"}), LOCK_RULE)

    def _finish_outcomes(self, actor: int, it: IterM, allowed: frozenset[str], rule: str) -> Expectation:
        """Finishing an iterator releases the lock; on a thread that does not hold it (declared) that raises."""
        if it.owner is not None and it.owner != actor and self.p.nonowner_finish_keeps_lock:
            return _one("raises:RuntimeError", "binding", "declared: release of the session lock from a non-owner thread")
        layer = "binding" if rule == LOCK_RULE else "module"
        return Expectation(allowed, layer, rule)

    # --- transitions ----------------------------------------------------------------------------------------

    def advance(self, index: int, actor: int, step: Step, outcome: str) -> list[tuple[int, int, Step, Expectation]]:
        """Apply a step's outcome; returns the waiters it resumed (index, actor, step, their expectation now).

        The caller must advance each resumed waiter with its own outcome in turn.
        """
        op, a = step.op, step.args
        released: list[str] = []
        self._note_key_read(step)
        if outcome == BLOCKED:
            target = self.lock_target(actor, step)
            if target is not None:
                self.waiters[target] = Waiter(index, actor, step)
            return []
        ok = outcome.startswith(OK)
        if op == "open":
            if ok:
                self.sessions[a["ref"]] = SessionM(a["ref"], login_via=bool(a["login"]))
                if a["login"]:
                    self.app_login = True
            elif a["login"] and self.p.failed_login_leaks_session:
                self.leaked += 1
        elif op == "close" and ok:
            session = self.sessions[a["session"]]
            if session.login_via and self.app_login:
                self.app_login = False
            session.open = False
            if not self.fixture and not self.open_sessions():
                self.app_login = False  # v3.0 §5.6.2: closing the last session returns to public
        elif op == "fail_next_open":
            self.fail_next_open = True
        elif op == "acquire":
            if outcome == "raises:ProviderOpenFailed":
                self.fail_next_open = False
            elif outcome == "raises:UserAlreadyLoggedIn" and self.p.failed_login_leaks_session:
                self.leaked += 1
            elif ok:
                if sum(self.holds.values()) == 0:
                    ref = outcome.split(":", 1)[1]
                    self.provider_session = ref
                    self.provider_count += 1
                    self.sessions[ref] = SessionM(ref, login_via=True)
                    self.app_login = True
                self.holds[actor] = self.holds.get(actor, 0) + 1
        elif op == "release" and self.holding(actor):
            self.holds[actor] -= 1
            if sum(self.holds.values()) == 0 and self.provider_session is not None:
                session = self.sessions[self.provider_session]
                session.open = False
                self.app_login = False
                self.provider_session = None
        elif op in ("search", "encrypt_gen") and ok:
            self.iters[a["ref"]] = IterM(a["ref"], "search" if op == "search" else "encrypt", a["session"],
                                         batch=int(a.get("batch", 10)))
        elif op == "use_partial" and self.provider_session is not None:
            it = IterM(a["ref"], "search", self.provider_session)
            self.iters[a["ref"]] = it
            released += self._start(actor, it, outcome)
        elif op in ("next", "consume", "drop") and a["iterator"] in self.iters:
            released += self._iterate(actor, self.iters[a["iterator"]], op, outcome)
        elif op == "find_all" or (op == "use" and USE.get(a.get("what")) == "find_all"):
            session = self._session_for(actor, step)
            if session is not None and outcome == ACTIVE and self.p.refused_search_ends_active_search:
                self._end_search(session)
        return self._resume(released)

    def _note_key_read(self, step: Step) -> None:
        """A keyed operation issued while its session is open has read (and cached) the key's type."""
        if step.op == "encrypt":
            session = self.sessions.get(step.args["session"])
        elif step.op in ("next", "consume") and (it := self.iters.get(step.args["iterator"])) is not None \
                and it.kind in KEYED and not it.started:
            session = self.sessions.get(it.session)
        else:
            return
        if session is not None and session.open:
            session.key_typed = True

    def _session_for(self, actor: int, step: Step) -> SessionM | None:
        if "session" in step.args:
            return self.sessions.get(step.args["session"])
        return self.sessions.get(self.provider_session) if self.provider_session else None

    def lock_target(self, actor: int, step: Step) -> str | None:
        if step.op in ("next", "consume"):
            it = self.iters.get(step.args["iterator"])
            return it.session if it else None
        session = self._session_for(actor, step)
        return session.ref if session else None

    def _end_search(self, session: SessionM) -> None:
        """C_FindObjectsFinal ends the session's active search, whichever iterator started it."""
        session.ops.pop("search", None)
        session.search_unfetched = 0

    def _start(self, actor: int, it: IterM, outcome: str) -> list[str]:
        session = self.sessions[it.session]
        if outcome.startswith(OK):
            it.started, it.owner = True, actor
            session.lock_owner = actor
            session.lock_depth += 1
            session.ops[it.kind] = it.ref
            it.remaining = ITEMS[it.kind] - 1
            if it.kind == "search":
                fetched = min(it.batch, ITEMS["search"])
                it.buffered = fetched - 1
                session.search_unfetched = ITEMS["search"] - fetched
            return []
        it.done = True
        if outcome == ACTIVE and it.kind == "search" and self.p.refused_search_ends_active_search:
            self._end_search(session)
        return []

    def _iterate(self, actor: int, it: IterM, op: str, outcome: str) -> list[str]:
        session = self.sessions[it.session]
        if op == "drop":
            del self.iters[it.ref]
            if it.started and not it.done:
                return self._finish(actor, it)
            return []
        if it.done:
            return []
        if not it.started:
            self._start(actor, it, outcome)
            if not outcome.startswith(OK) or op == "next":
                return []
            return self._finish(actor, it)  # consume ran to the end
        if op == "next" and outcome == f"{OK}:item":
            if it.kind == "search":
                if it.buffered > 0:
                    it.buffered -= 1
                else:  # a C_FindObjects call fetched the next batch of the session's active search
                    fetched = min(it.batch, session.search_unfetched)
                    session.search_unfetched -= fetched
                    it.buffered = fetched - 1
                return []
            it.remaining -= 1
            if it.remaining == 0 and it.kind in ENDS_WITH_LAST_ITEM:
                return self._finish(actor, it)
            return []
        return self._finish(actor, it)

    def _finish(self, actor: int, it: IterM) -> list[str]:
        """The iterator is over (exhausted, failed or collected): python-pkcs11 ends the module operation (for a
        search: C_FindObjectsFinal, which ends whatever search is active) and releases the session lock."""
        it.done = True
        session = self.sessions[it.session]
        if it.kind == "search":
            self._end_search(session)
        elif session.ops.get(it.kind) == it.ref:
            del session.ops[it.kind]
        if it.owner is not None and it.owner != actor and self.p.nonowner_finish_keeps_lock:
            session.stuck = True
            return []
        session.lock_depth = max(0, session.lock_depth - 1)
        if session.lock_depth == 0:
            session.lock_owner = None
            return [session.ref]
        return []

    def _resume(self, sessions: list[str]) -> list[tuple[int, int, Step, Expectation]]:
        resumed = []
        for ref in sessions:
            waiter = self.waiters.pop(ref, None)
            if waiter is not None:
                resumed.append((waiter.index, waiter.actor, waiter.step, self.expect(waiter.actor, waiter.step)))
        return resumed

    # --- end of example --------------------------------------------------------------------------------------

    def final_expectations(self) -> dict[str, Any]:
        return {
            "alive_refs": sorted(r for r, s in self.sessions.items() if s.open and not r.startswith("p")),
            "leaked": self.leaked,
            "provider_open": 1 if self.provider_session is not None else 0,
        }
