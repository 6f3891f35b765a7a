"""Hypothesis strategies that draw schedules, guided by the model, one step at a time.

At each step the runnable actors are offered current-actor-first, so shrinking (which moves sampled_from toward
earlier elements) tends toward fewer context switches; the concrete steps an actor may take are enumerated
simplest-first for the same reason. The model, advanced with its own prediction, says who is blocked and which
earlier blocked call a step releases — the executor's timing hints.
"""

from __future__ import annotations

from hypothesis import strategies as st

from .families import Family
from .model import Model
from .params import ModelParams
from .planning import Planner
from .schedule import Schedule, Step


def _bump(counter: dict[str, int], step: Step) -> None:
    ref = step.args.get("ref")
    if isinstance(ref, str):
        prefix = ref.rstrip("0123456789")
        counter[prefix] = counter.get(prefix, 0) + 1


@st.composite
def schedules(draw: st.DrawFn, family: Family, params: ModelParams) -> Schedule:
    planner = Planner(family, params)
    model = planner.model
    actors = draw(st.integers(1, family.max_actors), label="actors")
    length = draw(st.integers(1, family.max_steps), label="length")
    counter: dict[str, int] = {}
    current = 0
    while len(planner.steps) < length:
        blocked = model.blocked_actors()
        runnable = [a for a in [current] + [a for a in range(actors) if a != current] if a not in blocked]
        if not runnable:
            break
        actor = draw(st.sampled_from(runnable), label="actor")
        options = [s for s in family.candidates(model, actor, counter)
                   if _fits(model, actor, s) and step_key(s) not in params.unsupported_steps
                   and not pinned_elsewhere(model, s)]
        if not options:
            break
        step = draw(st.sampled_from(options), label="step")
        planner.add(step)
        _bump(counter, step)
        current = actor
    return planner.schedule(actors)


def step_key(step: Step) -> str:
    """How conformance.live.capabilities.STEP_NEEDS names a step: its op, use:WHAT, or search:batch for a search
    fetching other than one object per C_FindObjects."""
    if step.op == "use":
        return f"use:{step.args.get('what')}"
    if step.op == "search" and step.args.get("batch", 10) != 1:
        return "search:batch"
    return step.op


def pinned_elsewhere(model: Model, step: Step) -> bool:
    """Steps that would only re-find a declared finding a scripted check already pins down (params.py): left out,
    so exploration goes on past it (the model cannot follow a module that runs two searches at once)."""
    p, a = model.p, step.args
    if p.stale_session_handles and _uses_closed_session(model, step):
        return True
    it = model.iters.get(a.get("iterator", "")) if step.op in ("next", "consume") else None
    starts_iter = it is not None and not it.started
    if not p.concurrent_searches:
        return False
    starts_search = (starts_iter and it.kind == "search") or (step.op == "search" and p.search_starts_at_creation)
    if step.op == "find_all" or starts_search:
        session = model.sessions.get(a.get("session") or (it.session if it else ""))
    elif step.op == "use_partial" or (step.op == "use" and a.get("what") == "search"):
        session = model.sessions.get(model.provider_session or "")
    else:
        return False
    return session is not None and "search" in session.ops


def _uses_closed_session(model: Model, step: Step) -> bool:
    """A step that would reach the module through a closed session's handle — which such a module may have given
    to another session: a call on the session, its iterator advanced or dropped after starting, or its close while
    a call waits on its lock (the call then runs after the close)."""
    a = step.args
    if step.op == "close":
        return a["session"] in model.waiters
    if step.op in ("next", "consume", "drop"):
        it = model.iters.get(a.get("iterator", ""))
        if it is None or (step.op == "drop" and not it.started):  # nothing reaches the module
            return False
        session = it.session
    elif step.op != "state" and isinstance(a.get("session"), str):
        session = a["session"]
    else:
        return False
    return session in model.sessions and not model.sessions[session].open


def _fits(model: Model, actor: int, step: Step) -> bool:
    """At most one waiter per session lock (which of two waiters wakes first is up to the OS, not the schedule),
    and none on a lock the model knows is held for good (a declared finding: it would only cost a restart)."""
    exp = model.expect(actor, step)
    if not exp.blocks:
        return True
    target = model.lock_target(actor, step)
    return target is not None and target not in model.waiters and not model.sessions[target].stuck
