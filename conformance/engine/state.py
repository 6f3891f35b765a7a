"""The model's state: the sessions, iterators, locks and login it tracks, the queries the strategies use, and the
iterator bookkeeping several operations share (start, finish, end_search). What each operation predicts and how it
changes this state is semantics.OPS; model.py dispatches to it.
"""

from __future__ import annotations

from typing import Any

from .params import ACTIVE, OK, ModelParams
from .schedule import Step
from .vocabulary import GENERATORS, ITEMS, IterM, SessionM, Waiter

ABANDONED = "(abandoned)"  # a module operation no iterator will ever finish


class ModelState:
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

    def session_of(self, step: Step) -> SessionM | None:
        """The session a call runs on: the step's own, else (a provider step) the provider's."""
        if "session" in step.args:
            return self.sessions.get(step.args["session"])
        return self.sessions.get(self.provider_session) if self.provider_session else None

    def lock_target(self, actor: int, step: Step) -> str | None:
        if step.op in ("next", "consume"):
            it = self.iters.get(step.args["iterator"])
            return it.session if it else None
        session = self.session_of(step)
        return session.ref if session else None

    # --- an iterator's module operation and session lock, for the operations' transitions ------------------

    def start(self, actor: int, it: IterM, outcome: str) -> None:
        """The iterator's first next/consume: on success it takes the session lock and begins its operation."""
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
            return
        it.done = True
        if outcome == ACTIVE and it.kind == "search" and self.p.refused_search_ends_active_search:
            self.end_search(session)

    def finish(self, actor: int, it: IterM, failed: bool = False, dropped: bool = False) -> list[str]:
        """The iterator is over (exhausted, failed or collected): python-pkcs11 ends the module operation (for a
        search: C_FindObjectsFinal, which ends whatever search is active) and releases the session lock.
        Returns the session whose lock it freed, if any. `failed`: the finishing call raised; `dropped`: collected
        before its end."""
        it.done = True
        session = self.sessions[it.session]
        # A search ended under it (by a refused search) or on a closed session fails C_FindObjects(Final).
        search_gone = it.kind == "search" and ("search" not in session.ops or not session.open)
        if it.kind == "search":
            self.end_search(session)
        elif dropped and it.kind in GENERATORS and getattr(self.p, GENERATORS[it.kind].collected_keeps_operation):
            session.ops[it.kind] = ABANDONED  # nothing ends it: every later conflicting call meets it
        elif session.ops.get(it.kind) == it.ref:
            del session.ops[it.kind]
        if it.owner is not None and it.owner != actor and self.p.nonowner_finish_keeps_lock:
            session.stuck = True
            return []
        if it.kind == "search" and (failed or search_gone) and self.p.failed_search_keeps_lock:
            session.stuck = True
            return []
        session.lock_depth = max(0, session.lock_depth - 1)
        if session.lock_depth == 0:
            session.lock_owner = None
            return [session.ref]
        return []

    def start_at_creation(self, actor: int, it: IterM) -> None:
        """get_objects() of a binding that starts the search at once: the lock and C_FindObjectsInit, nothing
        fetched yet (the first next() calls C_FindObjects)."""
        session = self.sessions[it.session]
        it.started, it.owner = True, actor
        session.lock_owner = actor
        session.lock_depth += 1
        session.ops["search"] = it.ref
        it.buffered = 0
        session.search_unfetched = ITEMS["search"]

    @staticmethod
    def end_search(session: SessionM) -> None:
        """C_FindObjectsFinal ends the session's active search, whichever iterator started it."""
        session.ops.pop("search", None)
        session.search_unfetched = 0

    # --- end of example --------------------------------------------------------------------------------------

    def final_expectations(self) -> dict[str, Any]:
        return {
            "alive_refs": sorted(r for r, s in self.sessions.items() if s.open and not r.startswith("p")),
            "leaked": self.leaked,
            "provider_open": 1 if self.provider_session is not None else 0,
        }
