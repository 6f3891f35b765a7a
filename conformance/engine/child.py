"""The executor child: holds the module, runs schedules on pinned actor threads, answers in JSON lines.

Run as `python -m conformance.engine.child`; the parent (executor.py) speaks to it over stdin/stdout. The PIN
arrives on stdin, never on the command line or in the environment, and never leaves this process.
Anything here may crash or hang with the module: the parent survives and reports it.
"""

from __future__ import annotations

import faulthandler
import gc
import json
import os
import queue
import sys
import tempfile
import threading
import time
from typing import Any

from .actions import ACTIONS, FIXTURE_LABEL, FIXTURE_OBJECTS, World
from .families import FAMILIES
from .schedule import Schedule, Step, StepResult

_RESET = object()
_STOP = object()


class Actor:
    """One pinned OS thread; runs the steps it is handed, one at a time, and reports to the shared done queue."""

    def __init__(self, number: int, world_ref: list[World], done: queue.SimpleQueue) -> None:
        self.number = number
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._world_ref = world_ref
        self._done = done
        self.busy_step: int | None = None
        self.thread = threading.Thread(target=self._loop, name=f"actor{number}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            item = self.inbox.get()
            if item is _STOP:
                return
            if item is _RESET:
                self._done.put(("reset", self.number, None))
                continue
            index, step = item
            self.busy_step = index
            world = self._world_ref[0]
            started = time.perf_counter()
            try:
                value = ACTIONS[step.op](world, self.number, **dict(step.args))
                status, error = "ok", None
            except BaseException as exc:  # recorded as data; the message is dropped (it may echo arguments)
                status, error, value = "raised", type(exc).__name__, None
                exc.__traceback__ = None  # frames must not keep iterators alive
                del exc
            duration = (time.perf_counter() - started) * 1e6
            if step.op in ("next", "consume", "use_partial") and status == "ok":
                world.iterator_owner.setdefault(step.args.get("iterator", step.args.get("ref")), self.number)
            self.busy_step = None
            self._done.put(("step", index, (status, error, value, duration)))


class Child:
    def __init__(self, init: dict[str, Any]) -> None:
        import pkcs11

        from ..groundtruth import GroundTruth
        from ..tokens import find_token

        os.environ.update(init.get("env", {}))
        for path in reversed(init.get("sys_path", [])):
            if path not in sys.path:
                sys.path.insert(0, path)
        self.lib = pkcs11.lib(init["module"])
        self.token = find_token(self.lib, init.get("token_label"), init.get("token_uri"))
        self.ground_truth = GroundTruth(init["module"])
        self.pin = init["pin"]
        self.factory = None
        self.sut_spec = init.get("sut") or ""
        if init.get("sut"):
            from ..sut import load_factory

            self.factory = load_factory(init["sut"])
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.world_ref: list[World] = [self._new_world()]
        self.actors: list[Actor] = []
        self.fixture: Any = None
        self.ignored: list[tuple[str, str]] = []  # (thread name, exception class) from sys.unraisablehook
        sys.unraisablehook = self._unraisable

    def _unraisable(self, unraisable: Any) -> None:
        self.ignored.append((threading.current_thread().name, type(unraisable.exc_value).__name__))

    def _new_world(self) -> World:
        return World(self.token, self.pin, self.ground_truth)

    def _open_fixture(self, login: bool) -> None:
        """The session holding the data objects every search finds (public objects); with login=True it also
        stands for "the application is already logged in", so key operations work on every session."""
        from pkcs11 import ObjectClass
        from pkcs11.constants import Attribute

        self.fixture = self.token.open(rw=True, user_pin=self.pin if login else None)
        for i in range(FIXTURE_OBJECTS):
            self.fixture.create_object({
                Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False, Attribute.PRIVATE: False,
                Attribute.LABEL: FIXTURE_LABEL, Attribute.VALUE: b"%d" % i,
            })

    def _ensure_actors(self, n: int) -> None:
        while len(self.actors) < n:
            self.actors.append(Actor(len(self.actors), self.world_ref, self.done))

    # --- running one schedule ----------------------------------------------------------------------------

    def run(self, msg: dict[str, Any]) -> None:
        schedule = Schedule.from_dict(msg["schedule"])
        window, timeout = float(msg["block_window"]), float(msg["step_timeout"])
        self._ensure_actors(schedule.actors)
        world = self.world_ref[0]
        if schedule.family == "provider":
            from ..sut import SutError, check_provider

            try:
                world.provider = check_provider(self.factory(world.open_session), self.sut_spec)  # type: ignore[misc]
            except (SutError, TypeError) as exc:
                _emit({"event": "error", "error": type(exc).__name__, "detail": str(exc)[:300]})
                return
        family = FAMILIES[schedule.family]
        if family.fixture:
            self._open_fixture(login=family.logged_in)
        results: dict[int, StepResult] = {}
        finished: set[int] = set()
        self.ignored.clear()

        def absorb(item: tuple[str, int, Any], after: int) -> None:
            kind, index, payload = item
            if kind != "step":
                return
            status, error, value, duration = payload
            ignored = tuple(e for t, e in self.ignored if t == f"actor{schedule.steps[index].actor}")
            self.ignored[:] = [(t, e) for t, e in self.ignored if t != f"actor{schedule.steps[index].actor}"]
            was_blocked = index in results and results[index].status == "blocked"
            result = StepResult(index, status, error, value, duration, after if was_blocked else None, ignored)
            results[index] = result
            finished.add(index)
            _emit({"event": "step", **result.to_dict()})

        def wait_for(index: int, seconds: float, after: int) -> bool:
            deadline = time.monotonic() + seconds
            while index not in finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    absorb(self.done.get(timeout=remaining), after)
                except queue.Empty:
                    return False
            return True

        for i, step in enumerate(schedule.steps):
            actor = self.actors[step.actor]
            if actor.busy_step is not None:
                # The model believed this actor free; it is still inside an earlier call.
                result = StepResult(i, "not_run", "ActorBusy")
                results[i] = result
                _emit({"event": "step", **result.to_dict()})
                continue
            actor.inbox.put((i, step))
            if step.expect_block:
                if not wait_for(i, window, i):
                    results[i] = StepResult(i, "blocked")
                    _emit({"event": "step", **results[i].to_dict()})
            elif not wait_for(i, timeout, i):
                self._hung(i, schedule)
                return
            for j in step.unblocks:
                if j not in finished and not wait_for(j, timeout, i):
                    self._hung(j, schedule)
                    return
        # Let any unexpected late completions land before the verdict.
        while True:
            try:
                absorb(self.done.get_nowait(), len(schedule.steps))
            except queue.Empty:
                break
        final = self._final(world)
        started = time.perf_counter()
        restart = not self._reset(timeout)
        _emit({"event": "done", "final": final, "reset_us": (time.perf_counter() - started) * 1e6, "restart": restart})

    def _final(self, world: World) -> dict[str, Any]:
        """Ground truth at the end of the example: which session refs are open, and sessions nobody accounts for."""
        alive = sorted(ref for ref, s in world.sessions.items() if self.ground_truth.session_info(s.handle))
        known = {s.handle for s in world.sessions.values()} | ({self.fixture.handle} if self.fixture else set())
        known |= {s.handle for held in world.provider_holds.values() for s in held if s is not None}
        known |= set(world.opened_handles)
        leaked: int | None = None
        lo, hi = (min(known), max(known)) if known else (0, 0)
        if known and hi - lo <= 4096:
            probe = range(lo, hi + 9)
            leaked = sum(1 for h in probe if h not in known and self.ground_truth.session_info(h) is not None)
        final: dict[str, Any] = {"alive_refs": alive, "leaked": leaked}
        if world.provider is not None:
            final["provider_open"] = sum(1 for h in world.provider_handles if self.ground_truth.session_info(h) is not None)
            final["open_calls"] = world.open_calls
        return final

    def _reset(self, timeout: float) -> bool:
        """Back to a clean state: iterators dropped by their owners, every session closed, logged out.

        Returns False when an actor cannot be reached (stuck in a call for good): the parent restarts us.
        """
        world = self.world_ref[0]
        owners = dict(world.iterator_owner)
        for ref, owner in owners.items():
            if ref in world.iterators and owner < len(self.actors):
                self.actors[owner].inbox.put((-1, Step(owner, "drop", {"iterator": ref})))
        for actor in self.actors:
            actor.inbox.put(_RESET)
        pending = len(self.actors)
        deadline = time.monotonic() + timeout
        while pending:
            try:
                kind, _, _ = self.done.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if kind == "reset":
                pending -= 1
        world.iterators.clear()
        world.provider = None
        self.world_ref[0] = self._new_world()
        gc.collect()
        self.fixture = None
        self.ground_truth.close_all_sessions(self.token.slot.slot_id)
        return True

    def _hung(self, index: int, schedule: Schedule) -> None:
        with tempfile.TemporaryFile("w+") as fh:
            faulthandler.dump_traceback(fh, all_threads=True)
            fh.seek(0)
            stacks = fh.read()
        _emit({"event": "hung", "index": index, "stacks": stacks})
        sys.stdout.flush()
        os._exit(3)  # a thread is stuck inside the module or on a lock: this process cannot be reused


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    child: Child | None = None
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg.get("cmd")
        if cmd == "init":
            try:
                child = Child(msg)
            except Exception as exc:  # reported as data; the parent turns it into a clear error
                from ..pins import redact

                _emit({"event": "error", "error": type(exc).__name__, "detail": redact(str(exc)[:300], [msg.get("pin", "")])})
                return 2
            _emit({"event": "ready", "pid": os.getpid()})
        elif cmd == "run" and child is not None:
            child.run(msg)
        elif cmd == "stress" and child is not None:
            from .stress import run_calls, run_stress

            result = (run_calls if msg.get("mode") == "calls" else run_stress)(child, msg)
            _emit({"event": "stress", **result})
            if result.get("restart"):
                os._exit(3)  # stress threads are stuck: this process cannot be reused
        elif cmd == "quit":
            break
    sys.stdout.flush()
    os._exit(0)  # actor threads may be parked inside the module; do not wait for them


if __name__ == "__main__":
    sys.exit(main())
