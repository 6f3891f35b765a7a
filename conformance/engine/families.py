"""Scenario families as data: actors, length, starting state, and the concrete steps an actor may take next.

Candidates are listed simplest-first: hypothesis shrinks a sampled_from choice toward earlier elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .model import Model
from .params import ModelParams
from .schedule import Step

MAX_SESSIONS = 3
MAX_ITERATORS = 3
USES = ("digest", "random", "search", "encrypt", "encrypt_gen", "decrypt_gen", "sign", "attribute")
GENERATOR_STEPS = ("encrypt_gen", "decrypt_gen")
CALLS = ("digest", "random", "encrypt", "find_all", "decrypt", "sign", "verify")  # simplest (earliest) first


@dataclass(frozen=True)
class Family:
    """A scenario family: how many actors and steps, the starting state, and the steps an actor may take."""

    name: str
    max_actors: int
    max_steps: int
    fixture: bool  # the executor opens the fixture session (search objects) before the first step
    logged_in: bool  # ... and logs the application in through it
    candidates: Callable[[Model, int, dict[str, int]], list[Step]]
    # Regressions, run before any drawn schedule (hypothesis' @example): schedules that once caught a bug of the
    # harness or a module. Plain steps; the planner adds the timing hints.
    examples: tuple[tuple[Step, ...], ...] = ()

    def new_model(self, params: ModelParams) -> Model:
        return Model(params, fixture=self.fixture, logged_in=self.logged_in)


def _new(counter: dict[str, int], prefix: str) -> str:
    return f"{prefix}{counter.get(prefix, 0)}"


def _sessions_candidates(m: Model, actor: int, n: dict[str, int]) -> list[Step]:
    out: list[Step] = []
    if len(m.sessions) < MAX_SESSIONS + 1:
        out += [Step(actor, "open", {"ref": _new(n, "s"), "login": False}),
                Step(actor, "open", {"ref": _new(n, "s"), "login": True})]
    out += [Step(actor, "state", {"session": s}) for s in m.sessions]
    out += [Step(actor, "close", {"session": s}) for s in m.open_sessions()]
    return out


def _iterator_candidates(m: Model, actor: int, *, menu: tuple[str, ...]) -> list[Step]:
    return [Step(actor, op, {"iterator": it}) for it in m.live_iterators() for op in menu]


def _operations_candidates(m: Model, actor: int, n: dict[str, int]) -> list[Step]:
    out: list[Step] = []
    if not m.open_sessions() or (len(m.sessions) < MAX_SESSIONS and actor not in _owners(m)):
        out.append(Step(actor, "open", {"ref": _new(n, "s"), "login": False}))
    out += _iterator_candidates(m, actor, menu=("next", "consume", "drop"))
    for s in m.open_sessions():
        if len(m.iters) < MAX_ITERATORS:
            out += [Step(actor, "search", {"ref": _new(n, "it"), "session": s, "batch": b}) for b in (10, 1, 2)]
            out += [Step(actor, op, {"ref": _new(n, "it"), "session": s}) for op in GENERATOR_STEPS]
        out += [Step(actor, op, {"session": s}) for op in CALLS]
    out += [Step(actor, "close", {"session": s}) for s in m.open_sessions()]
    return out


def _owners(m: Model) -> set[int]:
    return {i.owner for i in m.iters.values() if i.owner is not None}


def _release_candidates(m: Model, actor: int, n: dict[str, int]) -> list[Step]:
    # Iterators handed between threads: started by one actor, advanced, consumed, dropped or outlived by others.
    out: list[Step] = []
    if not m.open_sessions():
        out.append(Step(actor, "open", {"ref": _new(n, "s"), "login": False}))
    out += _iterator_candidates(m, actor, menu=("drop", "next", "consume"))
    for s in m.open_sessions():
        if len(m.iters) < MAX_ITERATORS:
            out.append(Step(actor, "search", {"ref": _new(n, "it"), "session": s, "batch": 10}))
            out += [Step(actor, op, {"ref": _new(n, "it"), "session": s}) for op in GENERATOR_STEPS]
        out += [Step(actor, "find_all", {"session": s}), Step(actor, "close", {"session": s})]
    return out


def _provider_candidates(m: Model, actor: int, n: dict[str, int]) -> list[Step]:
    out: list[Step] = []
    holds = m.holds.get(actor, 0)
    if holds < 2:
        out.append(Step(actor, "acquire", {}))
    if holds:
        out.append(Step(actor, "release", {}))
        out += [Step(actor, "use", {"what": w}) for w in USES]
        if len(m.iters) < MAX_ITERATORS:
            out.append(Step(actor, "use_partial", {"ref": _new(n, "it")}))
    out += _iterator_candidates(m, actor, menu=("consume", "drop"))
    if not m.fail_next_open:
        out.append(Step(actor, "fail_next_open", {}))
    return out


def _steps(*lines: tuple[int, str, dict[str, object]]) -> tuple[Step, ...]:
    return tuple(Step(actor, op, args) for actor, op, args in lines)


# A refused second login leaks the session python-pkcs11 opened for it, and OpenCryptoki and tpm2-pkcs11 hand it
# s0's closed handle: the ground truth once took s0 for open again (CI, 2026-11-25).
_LEAK_REUSES_CLOSED_HANDLE = _steps((0, "open", {"ref": "s0", "login": False}), (0, "open", {"ref": "s1", "login": True}),
                                    (0, "close", {"session": "s0"}), (0, "open", {"ref": "s2", "login": True}))

# actor0's second search is refused (OperationActive: SoftHSM runs one operation per session), so consuming it0
# frees the lock and actor1's find_all resumes — where the plan assumed the search would start and keep the lock.
# The executor raced past the last step and judged the call "still blocked" (deep profile, 2026-11-25).
_RELEASE_THE_PLAN_DID_NOT_FORESEE = _steps(
    (1, "open", {"ref": "s0", "login": False}), (1, "encrypt_gen", {"ref": "it0", "session": "s0"}),
    (0, "search", {"ref": "it1", "session": "s0", "batch": 2}), (0, "next", {"iterator": "it0"}),
    (1, "random", {"session": "s0"}), (1, "drop", {"iterator": "it1"}),
    (0, "search", {"ref": "it2", "session": "s0", "batch": 1}), (1, "find_all", {"session": "s0"}),
    (0, "next", {"iterator": "it2"}), (0, "digest", {"session": "s0"}), (0, "next", {"iterator": "it2"}),
    (0, "consume", {"iterator": "it0"}))

FAMILIES = {
    f.name: f
    for f in (
        Family("sessions", max_actors=3, max_steps=12, fixture=False, logged_in=False, candidates=_sessions_candidates,
               examples=(_LEAK_REUSES_CLOSED_HANDLE,)),
        Family("operations", max_actors=2, max_steps=12, fixture=True, logged_in=True, candidates=_operations_candidates,
               examples=(_RELEASE_THE_PLAN_DID_NOT_FORESEE,)),
        Family("release", max_actors=3, max_steps=12, fixture=True, logged_in=True, candidates=_release_candidates),
        Family("provider", max_actors=3, max_steps=14, fixture=True, logged_in=False, candidates=_provider_candidates),
    )
}
