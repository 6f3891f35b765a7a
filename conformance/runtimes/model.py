"""What every actor kind must see of python-pkcs11's session lock, as data, and the schedules hypothesis draws.

The docs (Concurrency): the session's lock controls "access to these multi-step operations, and prevent[s] threads
from interfering with each other"; "The lock is not released until the iterator is consumed (or garbage
collected)". A service's greenlets and asyncio tasks are its actors as threads are: the model holds every kind to
that promise — a second actor's search on a session whose search another actor holds waits until that one is
consumed or collected, then runs. Where a kind's lock is not the actor's (a native RLock that every greenlet on the
one OS thread re-enters; an executor thread two tasks share) the run shows it and the check fails: a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .plan import Act, Job, Outcome


@dataclass(frozen=True)
class Rule:
    """What an op does to its session's lock, and what it gives."""

    locks: bool  # needs the session's lock: waits while another actor holds it
    holds: bool  # keeps the lock afterwards (a started search, until consumed or collected)
    releases: bool  # ends its iterator's search: the lock goes to the next waiter
    gives: str  # outcome; {objects}: the fixture's objects, {rest}: those after the first


RULES = {
    "start": Rule(locks=True, holds=True, releases=False, gives="ok"),
    "all": Rule(locks=True, holds=False, releases=False, gives="ok:{objects}"),
    "rest": Rule(locks=False, holds=False, releases=True, gives="ok:{rest}"),
    "drop": Rule(locks=False, holds=False, releases=True, gives="ok"),
}
DRAWN_OPS = tuple(RULES)
RULE = "python-pkcs11 docs, Concurrency: the session lock is held until the iterator is consumed or collected"


@dataclass(frozen=True)
class Expect:
    """One act's expected result: its outcome, or `blocked` with the act after which it completes and what it
    gives then."""

    outcome: str
    completed_after: int | None = None
    late: str | None = None


@dataclass
class State:
    """The lock state while the model walks a schedule (not a boundary type)."""

    objects: int
    holder: dict[int, int] = field(default_factory=dict)  # session -> actor holding its lock
    iterators: dict[str, tuple[int, int]] = field(default_factory=dict)  # live search -> (actor, session)
    waiting: dict[int, tuple[int, Act]] = field(default_factory=dict)  # actor -> (index, parked act)
    made: int = 0  # iterators named so far

    def gives(self, rule: Rule) -> str:
        return rule.gives.format(objects=self.objects, rest=self.objects - 1)

    def may(self, actor: int, act: Act) -> bool:
        """Whether a schedule may hand `actor` this act: it is not parked, it does not re-enter a lock of its own
        (a second search of one thread on one session is operation.search_then_search_same_thread's), and no two
        actors end up waiting for each other, and one waiter at most per session."""
        if actor in self.waiting:
            return False
        if act.op in ("rest", "drop"):
            return self.iterators.get(act.it, (None,))[0] == actor
        holder = self.holder.get(act.session)
        if holder == actor or any(it == (actor, act.session) for it in self.iterators.values()):
            return False
        if holder is None:
            return True
        waiters = [a for a, (_, w) in self.waiting.items() if w.session == act.session]
        return holder not in self.waiting and not waiters

    def step(self, index: int, act: Act, expected: dict[int, Expect]) -> None:
        rule = RULES[act.op]
        if rule.locks and self.holder.get(act.session) not in (None, act.actor):
            self.waiting[act.actor] = (index, act)
            expected[index] = Expect("blocked")
            return
        expected[index] = Expect(self.gives(rule))
        self._apply(act, rule, index, expected)

    def _apply(self, act: Act, rule: Rule, index: int, expected: dict[int, Expect]) -> None:
        if rule.holds:
            self.holder[act.session] = act.actor
            self.iterators[act.it] = (act.actor, act.session)
        if rule.releases:
            _, session = self.iterators.pop(act.it)
            del self.holder[session]
            self._wake(session, index, expected)

    def _wake(self, session: int, after: int, expected: dict[int, Expect]) -> None:
        for actor, (parked, act) in list(self.waiting.items()):
            if act.session == session:
                del self.waiting[actor]
                rule = RULES[act.op]
                expected[parked] = Expect("blocked", after, self.gives(rule))
                self._apply(act, rule, after, expected)
                return


def predict(job: Job) -> tuple[tuple[Expect, ...], tuple[str, ...]]:
    """Each act's expected result, and the whole search on each session afterwards (nothing left holding it)."""
    state = State(job.objects)
    expected: dict[int, Expect] = {}
    for index, act in enumerate(job.acts):
        state.step(index, act, expected)
    after = tuple("blocked" if s in state.holder else f"ok:{job.objects}" for s in range(job.sessions))
    return tuple(expected[i] for i in range(len(job.acts))), after


def judge(job: Job, outcome: Outcome, *, after: bool = True) -> list[str]:
    """What differs from the model, one line each (empty: the run is what every actor kind must see); `after`:
    whether the sessions' state afterwards is judged too."""
    if outcome.ended != "ok":
        return [f"the runtime program ended {outcome.ended} after {len(outcome.results)} of {len(job.acts)} acts"
                + (f" ({outcome.detail.splitlines()[-1]})" if outcome.detail else "")]
    expected, final = predict(job)
    wrong = []
    for want, got in zip(expected, outcome.results):
        seen = Expect(got.outcome, got.completed_after, got.late)
        if seen != want:
            wrong.append(f"act {got.index} ({job.acts[got.index].line()}): expected {_said(want)}, got {_said(seen)}")
    if after and outcome.after != final:
        wrong.append(f"afterwards a whole search per session: expected {list(final)}, got {list(outcome.after)}")
    return wrong


def _said(e: Expect) -> str:
    if e.outcome == "blocked":
        return f"blocked, then {e.late} after act {e.completed_after}" if e.late else "blocked for good"
    return e.outcome


def draw_job(data: Any, *, actors: int = 2, sessions: int = 2, most: int = 8, label: str = "") -> Job:
    """A schedule drawn act by act from what the model allows next (hypothesis `st.data()`), then ended the way a
    service ends: every live search consumed by its owner."""
    from hypothesis import strategies as st

    state = State(objects=3)
    acts: list[Act] = []
    expected: dict[int, Expect] = {}
    # One "more?" before each act after the first, as st.lists draws: hypothesis shrinks by deleting acts.
    while not acts or (len(acts) < most and data.draw(st.booleans(), label="more")):
        choices = _choices(state, actors, sessions)
        if not choices:
            break
        act = data.draw(st.sampled_from(choices), label="act")
        if act.op == "start":
            state.made += 1
        state.step(len(acts), act, expected)
        acts.append(act)
    job = closed(acts, sessions, state.objects, label)  # every act was drawn from what State.may allows
    assert job is not None
    return job


def _choices(state: State, actors: int, sessions: int) -> list[Act]:
    new_it = f"it{state.made}"
    candidates = [Act(a, op, s, new_it if op == "start" else "") for a in range(actors) for op in ("start", "all")
                  for s in range(sessions)]
    candidates += [Act(owner, op, it=it) for it, (owner, _) in state.iterators.items() for op in ("rest", "drop")]
    return [act for act in candidates if state.may(act.actor, act)]



def closed(acts: list[Act], sessions: int, objects: int, label: str) -> Job | None:
    """`acts` as a schedule the model allows (None if it does not), ended by consuming every live search."""
    state = State(objects)
    expected: dict[int, Expect] = {}
    acts = list(acts)
    for index, act in enumerate(acts):
        if not state.may(act.actor, act):
            return None
        state.step(index, act, expected)
    while state.iterators:  # never a cycle (State.may): someone not parked always owns a live search
        it, (owner, _) = next((it, o) for it, o in state.iterators.items() if o[0] not in state.waiting)
        acts.append(Act(owner, "rest", it=it))
        state.step(len(acts) - 1, acts[-1], expected)
    return Job(tuple(acts), sessions=sessions, objects=objects, label=label)


def smaller(job: Job, fails: Callable[[Job], bool]) -> Job:
    """Greedy deletion after hypothesis's shrinking (which state-dependent draws leave short of minimal): drop one
    act at a time — a start with every act on its search — and keep the shorter schedule while it still fails."""
    acts = list(job.acts)
    i = 0
    while i < len(acts):
        gone = acts[i]
        trial = [a for j, a in enumerate(acts) if j != i and not (gone.op == "start" and a.it == gone.it)]
        started = {a.it for a in trial if a.op == "start"}
        trial = [a for a in trial if a.op not in ("rest", "drop") or a.it in started]
        candidate = closed(trial, job.sessions, job.objects, job.label)
        if candidate is not None and 0 < len(candidate.acts) < len(acts) and fails(candidate):
            acts = list(candidate.acts)
            i = 0
        else:
            i += 1
    return Job(tuple(acts), sessions=job.sessions, objects=job.objects, label=job.label)


# Schedules that once showed a deviation, run before any drawn one (as hypothesis' @example; families.py's
# `examples` for the thread families): the smallest walk-through of a native lock — a second actor's search on a
# session whose search the first holds.
EXAMPLES: tuple[tuple[Act, ...], ...] = (
    (Act(0, "start", 0, "it0"), Act(1, "start", 0, "it1"), Act(0, "rest", it="it0"), Act(1, "rest", it="it1")),
)
