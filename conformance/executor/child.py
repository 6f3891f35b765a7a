"""The executor child: holds the module, runs schedules on pinned actor threads, answers in JSON lines.

Run as `python -m conformance.executor.child`; the parent (parent.py) speaks to it over stdin/stdout. The PIN
arrives on stdin, never on the command line or in the environment, and never leaves this process.
Anything here may crash or hang with the module: the parent survives and reports it.
"""

from __future__ import annotations

import faulthandler
import json
import os
import queue
import sys
import tempfile
import threading
import time
from typing import Any

from .actions import FIXTURE_LABEL, FIXTURE_OBJECTS, World
from .actors import RESET, Actor, queue_floor
from ..engine.families import FAMILIES
from ..engine.schedule import Schedule, Step, StepResult

_STDOUT = sys.stdout.fileno()


class SetupFailed(RuntimeError):
    """The module or token cannot be used; the message names the fix."""



class Child:
    def __init__(self, init: dict[str, Any]) -> None:
        import pkcs11

        from ..live.groundtruth import GroundTruth
        from ..live.vendor import LiveVendor
        from ..live.tokens import LOAD_ERRORS, find_token

        os.environ.update(init.get("env", {}))
        for path in reversed(init.get("sys_path", [])):
            if path not in sys.path:
                sys.path.insert(0, path)
        try:
            self.lib = pkcs11.lib(init["module"])
        except LOAD_ERRORS as exc:
            raise SetupFailed(f"{init.get('module_shown', init['module'])} could not be loaded as a PKCS#11 module "
                              f"({type(exc).__name__}: {exc or 'no C_GetFunctionList, or not a shared library'}); "
                              "point module.path at the vendor's PKCS#11 library") from None
        self.token = find_token(self.lib, init.get("token_label"), init.get("token_uri"))
        self.ground_truth = GroundTruth(init.get("ground_truth") or init["module"])
        self.live = LiveVendor(self.lib, self.token, self.ground_truth, init["pin"], init.get("name", ""))
        self.token_selection = (init.get("token_label"), init.get("token_uri"))
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
        self.app_session: Any = None  # this process's own logged-in session, for checks across applications
        self.ignored: list[tuple[str, str]] = []  # (thread name, exception class) from sys.unraisablehook
        sys.unraisablehook = self._unraisable

    def _unraisable(self, unraisable: Any) -> None:
        self.ignored.append((threading.current_thread().name, type(unraisable.exc_value).__name__))

    def _new_world(self) -> World:
        return World(self.token, self.pin, self.ground_truth)

    def sut_check(self) -> dict[str, Any]:
        """Make one provider with the --sut factory, as every provider scenario will: a factory that raises or
        returns no provider is a usage error at start, not a failure in every provider check."""
        from ..sut import SutError, check_provider

        if self.factory is None:
            return {"ok": True}
        try:
            check_provider(self.factory(self._new_world().open_session), self.sut_spec)
        except SutError as exc:
            return {"problem": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the factory is user code; its failure is reported as such
            return {"problem": f"--sut={self.sut_spec!r}: the factory raised {type(exc).__name__}: {exc}; it must "
                               "return a provider (acquire/release/with) without failing"}
        finally:
            self.close_everything()  # whatever it opened
        return {"ok": True}

    def close_everything(self) -> None:
        """C_CloseAllSessions, fixture included (after free-running stress, where handles are not tracked)."""
        self.ground_truth.close_all_sessions(self.token.slot.slot_id)
        self.fixture = None
        self.app_session = None

    def prepare(self, family: Any) -> None:
        """The family's starting state: the fixture session there or not, the application logged in or not.
        Kept from example to example (re-creating it, with a C_Login, would cost more than the example)."""
        if not family.fixture:
            if self.fixture is not None:
                self.ground_truth.close_session(self.fixture.handle)
                self.fixture = None
            return
        if self.fixture is None or self.ground_truth.session_info(self.fixture.handle) is None:
            self._open_fixture()
        self.ground_truth.set_login(self.fixture.handle, self.pin if family.logged_in else None)

    def _open_fixture(self) -> None:
        """The session holding the data objects every search finds (public session objects); it also carries the
        application's login for the families that start logged in."""
        from pkcs11 import ObjectClass
        from pkcs11.constants import Attribute

        # Public objects where the token allows them; else private ones (tpm2-pkcs11), which the application
        # sees while logged in — the families that search start logged in or search through logged-in sessions.
        # (Probed before the fixture opens: the probe logs in and out on a session of its own.)
        missing = self.live.missing_capabilities()
        self.fixture = self.token.open(rw=True)
        private = "public_data_objects" in missing
        if "session_objects_end" in missing:  # earlier fixtures' objects outlived their sessions
            from ..live.integrity import sweep_token

            sweep_token(self.token, self.pin, labels={FIXTURE_LABEL})
        if private:
            self.ground_truth.set_login(self.fixture.handle, self.pin)
        for i in range(FIXTURE_OBJECTS):
            self.fixture.create_object({
                Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False, Attribute.PRIVATE: private,
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
        self.prepare(FAMILIES[schedule.family])
        results: dict[int, StepResult] = {}
        finished: set[int] = set()
        self.ignored.clear()

        dispatched: list[float] = []  # when each step was handed to its actor

        def absorb(item: tuple[str, int, Any]) -> None:
            kind, index, payload = item
            if kind != "step":
                return
            status, error, value, duration, ended = payload
            ignored = tuple(e for t, e in self.ignored if t == f"actor{schedule.steps[index].actor}")
            self.ignored[:] = [(t, e) for t, e in self.ignored if t != f"actor{schedule.steps[index].actor}"]
            was_blocked = index in results and results[index].status == "blocked"
            # A blocked call returned after the last step that had been dispatched by then (timestamps, not the
            # moment we happened to read the result).
            after = max((k for k, t in enumerate(dispatched) if t <= ended), default=None) if was_blocked else None
            result = StepResult(index, status, error, value, duration, after, ignored)
            results[index] = result
            finished.add(index)
            _emit({"event": "step", **result.to_dict()})

        def wait_for(index: int, seconds: float) -> bool:
            deadline = time.monotonic() + seconds
            while index not in finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    absorb(self.done.get(timeout=remaining))
                except queue.Empty:
                    return False
            return True

        run_started = time.perf_counter()
        for i, step in enumerate(schedule.steps):
            actor = self.actors[step.actor]
            if actor.busy_step is not None:
                # The model believed this actor free; it is still inside an earlier call.
                result = StepResult(i, "not_run", "ActorBusy")
                dispatched.append(float("inf"))
                results[i] = result
                _emit({"event": "step", **result.to_dict()})
                continue
            dispatched.append(time.perf_counter())
            actor.inbox.put((i, step))
            if step.expect_block:
                if not wait_for(i, window):
                    results[i] = StepResult(i, "blocked")
                    _emit({"event": "step", **results[i].to_dict()})
            elif not wait_for(i, timeout):
                self._hung(i, schedule)
                return
            for j in step.unblocks:
                if j not in finished and not wait_for(j, timeout):
                    self._hung(j, schedule)
                    return
        run_us = (time.perf_counter() - run_started) * 1e6
        # A call the plan expected to stay blocked may have been released by the last steps (the plan assumed the
        # other allowed outcome of an implementation-defined point): watch it one more block window, so "still
        # blocked at the end" means blocked, not slow to wake.
        deadline = time.monotonic() + window
        for index in sorted(k for k, r in results.items() if r.status == "blocked" and k not in finished):
            wait_for(index, max(0.0, deadline - time.monotonic()))
        # Let any unexpected late completions land before the verdict.
        while True:
            try:
                absorb(self.done.get_nowait())
            except queue.Empty:
                break
        final = self._final(world)
        started = time.perf_counter()
        restart = not self._reset(timeout)
        _emit({"event": "done", "final": final, "reset_us": (time.perf_counter() - started) * 1e6, "run_us": run_us,
               "restart": restart})

    def _final(self, world: World) -> dict[str, Any]:
        """Ground truth at the end of the example: which session refs are open, and sessions nobody accounts for."""
        alive = sorted(ref for ref in world.sessions if world.is_open(ref))
        known = {s.handle for s in world.sessions.values()} | ({self.fixture.handle} if self.fixture else set())
        known |= {s.handle for held in world.provider_holds.values() for s in held if s is not None}
        known |= set(world.opened_handles)
        leaked: int | None = None
        lo, hi = (min(known), max(known)) if known else (0, 0)
        if known and hi - lo <= 4096:
            probe = range(lo, hi + 9)
            leaked = sum(1 for h in probe if h not in known and self.ground_truth.session_info(h) is not None)
            leaked += world.unaccounted_open()
        final: dict[str, Any] = {"alive_refs": alive, "leaked": leaked}
        if self.fixture is not None and (self.ground_truth.session_info(self.fixture.handle) is None
                                         or self.fixture.handle in world.opened_handles):
            final["fixture_closed"] = True  # a step closed a session it did not open (its handle may be reused)
            self.fixture = None  # prepare() opens a new one; the reset closes whatever has the old handle now
        if world.provider is not None:
            # A set: a module may hand a closed session's handle to the next session (OpenCryptoki does).
            final["provider_open"] = sum(1 for h in set(world.provider_handles) if self.ground_truth.session_info(h) is not None)
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
                # The owner drops it, so the session lock is released by the thread that holds it.
                self.actors[owner].inbox.put((-1, Step(owner, "discard", {"iterator": ref})))
        for actor in self.actors:
            actor.inbox.put(RESET)
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
        # Close every session the example opened (leaked ones too: live handles around the ones we know), but
        # not the fixture: cheaper than C_CloseAllSessions followed by a new fixture and a new C_Login.
        fixture = self.fixture.handle if self.fixture is not None else None
        slot = self.token.slot.slot_id
        if fixture is None:
            self.ground_truth.close_all_sessions(slot)  # nothing to keep: complete and cheap
            return True
        known = set(world.opened_handles) | {s.handle for s in world.sessions.values()}
        if known:
            lo, hi = min(known | {fixture}), max(known)
            probe = range(lo, hi + 9) if hi - lo <= 4096 else sorted(known)
            for handle in probe:
                if handle != fixture:
                    self.ground_truth.close_session(handle)
        # A session no step accounts for (a failed Token.open leaks one) may have any handle, below the fixture's
        # too when the module reuses handles: if the module still counts more than the fixture, close them all.
        if (self.ground_truth.session_counts(slot).sessions or 1) > 1:
            self.ground_truth.close_all_sessions(slot)
            self.fixture = None
        return True

    def _hung(self, index: int, schedule: Schedule) -> None:
        with tempfile.TemporaryFile("w+") as fh:
            faulthandler.dump_traceback(fh, all_threads=True)
            fh.seek(0)
            stacks = fh.read()
        _emit({"event": "hung", "index": index, "stacks": stacks})
        os._exit(3)  # a thread is stuck inside the module or on a lock: this process cannot be reused


def _emit(obj: dict[str, Any]) -> None:
    # One unbuffered write per message: each step's result is out of the process before the next step starts,
    # so a crash loses nothing already done.
    os.write(_STDOUT, (json.dumps(obj) + "\n").encode())


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the pytest process that started it dies, even by kill -9 — a child stuck
    in the module would otherwise outlive the run, holding sessions (and their objects) on the token."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(4)


def main() -> int:
    _die_with_parent()
    child: Child | None = None
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg.get("cmd")
        if cmd == "init":
            from ..pins import redact

            try:
                child = Child(msg)
                from ..live.tokens import describe

                facts = describe(child.lib, child.token)
                if msg.get("real_module") and msg["real_module"] != msg["module"]:
                    # Under p11-kit or the spy the binding sees the wrapper's C_GetInfo: record the module's own
                    # (the same instance the wrapper loaded), and the wrapper's beside it.
                    from ..live.groundtruth import GroundTruth

                    facts["loaded_library"] = facts["library"]
                    facts["library"] = GroundTruth(msg["real_module"]).library_info()
            except Exception as exc:  # reported as data; the parent turns it into a clear error
                _emit({"event": "error", "error": type(exc).__name__, "detail": redact(str(exc)[:500], [msg.get("pin", "")])})
                return 2
            _emit({"event": "ready", "pid": os.getpid(), "facts": json.loads(redact(json.dumps(facts), [child.pin]))})
        elif cmd == "check" and child is not None:
            from .checkrun import run_check

            _emit({"event": "check", **run_check(child.live, msg)})
        elif cmd in ("snapshot", "sweep") and child is not None:
            from ..live import integrity

            child.live.reset()
            if cmd == "snapshot":
                _emit({"event": "snapshot", **integrity.take(child.lib, *child.token_selection, child.pin).to_dict()})
            else:
                prefix = msg.get("prefix") or integrity.LABEL_PREFIX
                _emit({"event": "sweep", "destroyed": integrity.sweep(child.lib, *child.token_selection, child.pin,
                                                                      prefix)})
        elif cmd == "sut_check" and child is not None:
            _emit({"event": "sut_check", **child.sut_check()})
        elif cmd == "capabilities" and child is not None:
            _emit({"event": "capabilities", "missing": child.live.missing_capabilities()})
        elif cmd == "login_check" and child is not None:
            from .checkrun import login_check

            _emit({"event": "login_check", **login_check(child.live)})
        elif cmd == "run" and child is not None:
            child.run(msg)
        elif cmd == "stress" and child is not None:
            from .stress import run_calls, run_stress

            result = (run_calls if msg.get("mode") == "calls" else run_stress)(child, msg)
            _emit({"event": "stress", **result})
            if result.get("restart"):
                os._exit(3)  # stress threads are stuck: this process cannot be reused
        elif cmd in ("login_rounds", "app") and child is not None:
            from .applications import app_step, login_rounds

            _emit({"event": cmd, **(login_rounds if cmd == "login_rounds" else app_step)(child, msg)})
        elif cmd == "floor":
            _emit({"event": "floor", "round_trip_us": queue_floor(int(msg.get("n", 20000)))})
        elif cmd == "quit":
            break
    sys.stdout.flush()
    os._exit(0)  # actor threads may be parked inside the module; do not wait for them


if __name__ == "__main__":
    sys.exit(main())
