"""The building blocks of the operations' semantics (semantics.py): an operation's row (OpSpec), the rules a
prediction cites, the guards on what a step refers to (a ref the real run lost after an allowed divergence leaves
the step unjudged: ANY), and how a module operation's start and finish are predicted — shared by one-shot calls,
generators and the session provider's uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .params import ACTIVE, OK
from .schedule import Step
from .vocabulary import (
    ANY, BLOCKED, COMBINATION_RULE, CONCURRENT, INVALID, KEYED, LOCK_RULE, Call, Expectation, IterM, SessionM, _one,
)

from .state import ABANDONED
from .state import ModelState as Model  # the handlers read and change the model's state only

ABANDONED_RULE = "UG v2.40 §2.6.7: an operation its generator left unfinished, never ended (python-pkcs11 < 0.9)"

Predict = Callable[[Model, int, Step], Expectation]
Apply = Callable[[Model, int, Step, str], list[str]]  # -> the sessions whose lock the step freed
KeyRead = Callable[[Model, Step], "tuple[SessionM, str] | None"]  # the session, and which of its keys (KEYED)


def unchanged(m: Model, actor: int, step: Step, outcome: str) -> list[str]:
    return []


@dataclass(frozen=True)
class OpSpec:
    predict: Predict
    apply: Apply = unchanged  # never given BLOCKED: the model parks a blocked call on its lock itself
    # The session and key (KEYED) whose type the step reads first, whatever its outcome (python-pkcs11 caches
    # Key.key_type).
    reads_key: KeyRead | None = None


INVALID_RULE = "v3.0 §5.1.2 CKR_SESSION_HANDLE_INVALID"
KEY_READ_RULE = "v3.0 §5.1.2: the key's type is read before the lock is taken"
PROVIDER_RULE = "python-pkcs11 docs, Reenterant Sessions: one shared session, opened by the first acquire"
EXHAUSTED_RULE = "an exhausted generator stays exhausted"
CLOSED_UNDER_RULE = "v3.0 §5.1.2: the session was closed under the iterator"
CLOSED_SESSION_RULES = frozenset({INVALID_RULE, CLOSED_UNDER_RULE})  # the module's rules on a closed handle
NOT_INITIALIZED_RULE = "v3.0 §5.7.8 CKR_OPERATION_NOT_INITIALIZED: no search is active"
LAZY_RULE = "python-pkcs11: get_objects() and encrypt()/decrypt() of an iterable return lazy generators"


def fixed(outcome: str, layer: str, rule: str) -> Callable[..., Expectation]:
    """A prediction that is plain data: this outcome whatever the state."""
    exp = _one(outcome, layer, rule)
    return lambda *_: exp


# --- what a step refers to ---------------------------------------------------------------------------------------


def on_session(fn: Callable[[Model, int, Step, SessionM], Expectation]) -> Predict:
    def predict(m: Model, actor: int, step: Step) -> Expectation:
        session = m.sessions.get(step.args.get("session"))
        return ANY if session is None else fn(m, actor, step, session)
    return predict


def iterator_of(m: Model, step: Step) -> tuple[IterM, SessionM] | None:
    """The step's iterator and the session it runs on (always known: it was known when the iterator was made)."""
    it = m.iters.get(step.args["iterator"])
    return None if it is None else (it, m.sessions[it.session])


def on_iterator(fn: Callable[[Model, int, IterM, SessionM], Expectation]) -> Predict:
    def predict(m: Model, actor: int, step: Step) -> Expectation:
        found = iterator_of(m, step)
        return ANY if found is None else fn(m, actor, *found)
    return predict


def while_holding(fn: Predict) -> Predict:
    def predict(m: Model, actor: int, step: Step) -> Expectation:
        return fn(m, actor, step) if m.holding(actor) else ANY
    return predict


def on_held_session(fn: Callable[[Model, int, Step, SessionM], Expectation]) -> Predict:
    def predict(m: Model, actor: int, step: Step) -> Expectation:
        if not m.holding(actor) or m.provider_session is None:
            return ANY
        return fn(m, actor, step, m.sessions[m.provider_session])
    return predict


# --- predicting a module operation's start and finish (shared by calls, generators and the provider's uses) ---


def meets_active(m: Model, session: SessionM, kind: str | None) -> Expectation:
    """Module outcome of starting `kind` on the session given the operations already active there."""
    if not session.ops:
        return Expectation(frozenset({OK}), "module", "v3.0 §5.7.7 / §5.8: no operation active")
    if session.ops.get(kind) == ABANDONED:  # measured (characterise: the next encrypt meets it)
        return Expectation(frozenset({ACTIVE}), "module", ABANDONED_RULE)
    if ABANDONED in session.ops.values():
        # What the module does with an operation the binding left behind (a collected generator's, before 0.9)
        # when another kind starts is not what the concurrency points characterise: either answer, unrecorded.
        return Expectation(frozenset({OK, ACTIVE}), "module", ABANDONED_RULE)
    if kind in session.ops:
        return Expectation(frozenset({ACTIVE}), "module", CONCURRENT[(kind, kind)].rule)
    if len(session.ops) > 1:  # two already active (a module that allows the pair): a combination, unrecorded
        return Expectation(frozenset({OK, ACTIVE}), "module", COMBINATION_RULE)
    overlap = CONCURRENT[(kind, next(iter(session.ops)))]
    if overlap.param is None:
        return Expectation(frozenset({ACTIVE}), "module", overlap.rule)
    return Expectation(getattr(m.p, overlap.param), "module", overlap.rule, overlap.point)


def starting(m: Model, actor: int, session: SessionM, call: Call, early: str = INVALID_RULE) -> Expectation:
    """A call starting its module operation. On a closed session it fails before the lock when it takes none or
    must first read an uncached key type (`early` names that rule), else once it has waited for the lock."""
    if not session.open and (not call.locks or (call.kind in KEYED and KEYED[call.kind] not in session.keys_typed)):
        return Expectation(INVALID, "module", early)
    if call.locks and session.lock_owner is not None and session.lock_owner != actor:
        return _one(BLOCKED, "binding", LOCK_RULE)
    if not session.open:
        return Expectation(INVALID, "module", INVALID_RULE)
    return meets_active(m, session, call.kind).with_value(call.value)


def finishing(m: Model, actor: int, it: IterM, allowed: frozenset[str], rule: str) -> Expectation:
    """Finishing an iterator releases the lock; on a thread that does not hold it (measured) that raises — unless
    the search's own call fails first (failed_search_keeps_lock: no release is attempted)."""
    raises_first = m.p.failed_search_keeps_lock and it.kind == "search" and all(a.startswith("raises:") for a in allowed)
    if it.owner is not None and it.owner != actor and m.p.nonowner_finish_keeps_lock and not raises_first:
        return _one("raises:RuntimeError", "binding", "declared: release of the session lock from a non-owner thread")
    return Expectation(allowed, "binding" if rule == LOCK_RULE else "module", rule)
