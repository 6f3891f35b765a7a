"""Running one schedule in the module's process: each step handed to its pinned actor thread, waited for as the
plan says (a block window for a call expected to block, the step timeout otherwise), every result sent to the
parent as it happens; then the end-of-example ground truth and the cheap reset to a clean state.
"""

from __future__ import annotations

import faulthandler
import os
import queue
import tempfile
import time
from typing import Any, Callable, NoReturn

from ..binding import session_handle
from ..outcomes import HarnessFault
from ..engine.families import FAMILIES
from ..engine.schedule import Step, StepResult
from ..live.calls import InCall
from ..live.groundtruth import GroundTruthError
from ..sut import SutError
from .actions import World
from .actors import RESET
from .host import ModuleHost
from .protocol import Failed, RunSchedule, ScheduleDone, ScheduleHung, StepEvent, Wire
from .waiting import Decision, Waiter

Emit = Callable[[Wire], None]


def run_schedule(host: ModuleHost, command: RunSchedule, emit: Emit) -> None:
    schedule = command.schedule
    window, timeout = command.limits.block_window, command.limits.step_timeout
    host.ensure_actors(schedule.actors)
    world = host.world_ref[0]
    if schedule.family == "provider":
        try:
            world.provider = host.new_provider(world)
        except (SutError, TypeError) as exc:
            emit(Failed(type(exc).__name__, str(exc)[:300]))
            return
    host.prepare(FAMILIES[schedule.family])
    results: dict[int, StepResult] = {}
    finished: set[int] = set()
    host.ignored.clear()
    dispatched: list[float] = []  # when each step was handed to its actor

    def absorb(item: tuple[str, int, Any]) -> None:
        kind, index, payload = item
        if kind != "step":
            return
        status, error, value, duration, ended = payload
        if status == "broken":
            raise HarnessFault(f"step {index} ({schedule.steps[index].program_line()}): {error}")
        thread = f"actor{schedule.steps[index].actor}"
        ignored = tuple(e for t, e in host.ignored if t == thread)
        host.ignored[:] = [(t, e) for t, e in host.ignored if t != thread]
        was_blocked = index in results and results[index].status == "blocked"
        # A blocked call returned after the last step that had been dispatched by then (timestamps, not the
        # moment we happened to read the result).
        after = max((k for k, t in enumerate(dispatched) if t <= ended), default=None) if was_blocked else None
        evidence = results[index].evidence if was_blocked else None
        result = StepResult(index, status, error, value, duration, after, ignored, evidence)
        results[index] = result
        finished.add(index)
        emit(StepEvent(result))

    def wait_for(index: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while index not in finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                absorb(host.done.get(timeout=remaining))
            except queue.Empty:
                return False
        return True

    waiter = Waiter(host.calls, wait_for, window, timeout)
    blocked_at: dict[int, InCall | None] = {}  # a blocked step: where its actor was when it was judged blocked

    def thread_of(index: int) -> int | None:
        return host.actors[schedule.steps[index].actor].thread.native_id

    def must_return(index: int) -> None:
        decision = waiter.returns(index, thread_of(index))
        if not decision.done:
            _hung(index, decision, emit)

    run_started = time.perf_counter()
    for i, step in enumerate(schedule.steps):
        actor = host.actors[step.actor]
        if actor.busy_step is not None:
            # The model believed this actor free; it is still inside an earlier call.
            results[i] = StepResult(i, "not_run", "ActorBusy")
            dispatched.append(float("inf"))
            emit(StepEvent(results[i]))
            continue
        before = waiter.look(actor.thread.native_id)
        dispatched.append(time.perf_counter())
        actor.inbox.put((i, step))
        if step.expect_block:
            decision = waiter.expected_block(i, actor.thread.native_id, before)
            if not decision.done:
                if decision.hung:
                    _hung(i, decision, emit)  # it reached the module and never came back: not a block
                results[i] = StepResult(i, "blocked", evidence=decision.evidence)
                blocked_at[i] = waiter.look(actor.thread.native_id)
                emit(StepEvent(results[i]))
        else:
            must_return(i)
        for j in step.unblocks:
            if j not in finished:
                must_return(j)
    run_us = (time.perf_counter() - run_started) * 1e6
    # A call the plan expected to stay blocked may have been released by the last steps (the plan assumed the
    # other allowed outcome of an implementation-defined point): watch it a while longer (Limits.end_watch, from
    # the module's latency; and once it reaches the module, for as long as the module takes), so "still blocked
    # at the end" means blocked, not slow to wake.
    deadline = time.monotonic() + command.limits.end_watch
    for index in sorted(k for k, r in results.items() if r.status == "blocked" and k not in finished):
        waiter.released(index, thread_of(index), max(0.0, deadline - time.monotonic()), blocked_at.get(index))
    # Let any unexpected late completions land before the verdict.
    while True:
        try:
            absorb(host.done.get_nowait())
        except queue.Empty:
            break
    started = time.perf_counter()
    try:
        final = _final(host, world)
        restart = not _reset(host, timeout)
    except GroundTruthError:
        # The module answered one of our own calls (C_GetSessionInfo, C_CloseSession) with a code they cannot take:
        # this process starts afresh; its log (the tap's) stays for the module to be judged on.
        final, restart = {}, True
    emit(ScheduleDone(final, (time.perf_counter() - started) * 1e6, run_us, restart))


def _final(host: ModuleHost, world: World) -> dict[str, Any]:
    """Ground truth at the end of the example: which session refs are open, and sessions nobody accounts for."""
    truth = host.ground_truth
    alive = sorted(ref for ref in world.sessions if world.is_open(ref))
    known = {session_handle(s) for s in world.sessions.values()} | ({session_handle(host.fixture)} if host.fixture else set())
    known |= {session_handle(s) for held in world.provider_holds.values() for s in held if s is not None}
    known |= set(world.opened_handles)
    leaked: int | None = None
    lo, hi = (min(known), max(known)) if known else (0, 0)
    if known and hi - lo <= 4096:
        probe = range(lo, hi + 9)
        leaked = sum(1 for h in probe if h not in known and truth.session_info(h) is not None)
        leaked += world.unaccounted_open()
    final: dict[str, Any] = {"alive_refs": alive, "leaked": leaked}
    if host.fixture is not None and (truth.session_info(session_handle(host.fixture)) is None
                                     or session_handle(host.fixture) in world.opened_handles):
        final["fixture_closed"] = True  # a step closed a session it did not open (its handle may be reused)
        host.fixture = None  # prepare() opens a new one; the reset closes whatever has the old handle now
    if world.provider is not None:
        # A set: a module may hand a closed session's handle to the next session (OpenCryptoki does).
        final["provider_open"] = sum(1 for h in set(world.provider_handles) if truth.session_info(h) is not None)
        final["open_calls"] = world.open_calls
    return final


def _reset(host: ModuleHost, timeout: float) -> bool:
    """Back to a clean state: iterators dropped by their owners, every session closed, logged out.

    Returns False when an actor cannot be reached (stuck in a call for good): the parent restarts us.
    """
    world = host.world_ref[0]
    for ref, owner in dict(world.iterator_owner).items():
        if ref in world.iterators and owner < len(host.actors):
            # The owner drops it, so the session lock is released by the thread that holds it.
            host.actors[owner].inbox.put((-1, Step(owner, "discard", {"iterator": ref})))
    for actor in host.actors:
        actor.inbox.put(RESET)
    pending = len(host.actors)
    deadline = time.monotonic() + timeout
    while pending:
        try:
            kind, _, _ = host.done.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return False
        if kind == "reset":
            pending -= 1
    world.iterators.clear()
    world.provider = None
    host.world_ref[0] = host.new_world()
    # Close every session the example opened (leaked ones too: live handles around the ones we know), but
    # not the fixture: cheaper than C_CloseAllSessions followed by a new fixture and a new C_Login.
    fixture = session_handle(host.fixture) if host.fixture is not None else None
    slot = host.token.slot.slot_id
    if fixture is None:
        host.ground_truth.close_all_sessions(slot)  # nothing to keep: complete and cheap
        return True
    known = set(world.opened_handles) | {session_handle(s) for s in world.sessions.values()}
    if known:
        lo, hi = min(known | {fixture}), max(known)
        probe = range(lo, hi + 9) if hi - lo <= 4096 else sorted(known)
        for handle in probe:
            if handle != fixture:
                host.ground_truth.close_session(handle)
    # A session no step accounts for (a failed Token.open leaks one) may have any handle, below the fixture's
    # too when the module reuses handles: if the module still counts more than the fixture, close them all.
    if (host.ground_truth.session_counts(slot).sessions or 1) > 1:
        host.ground_truth.close_all_sessions(slot)
        host.fixture = None
    return True


def thread_stacks() -> str:
    """Every thread's Python stack (faulthandler), for a step or a stress run that does not return."""
    with tempfile.TemporaryFile("w+") as fh:
        faulthandler.dump_traceback(fh, all_threads=True)
        fh.seek(0)
        return fh.read()


def _hung(index: int, decision: Decision, emit: Emit) -> NoReturn:
    emit(ScheduleHung(index, thread_stacks(), decision.evidence, decision.inside))
    os._exit(3)  # a thread is stuck inside the module or on a lock: this process cannot be reused
