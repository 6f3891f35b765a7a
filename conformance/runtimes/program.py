"""A runtime program: `python -m conformance.runtimes.program`, a fresh interpreter per runtime. The first stdin
line is a Start (with the PIN beside it); the program patches where the runtime says — before python-pkcs11 is
imported, after it, or after the first job's sessions were made — loads the module, answers `ready`, then runs one
Job per stdin line, answering one JSON line per event as it happens (a crash loses nothing already done).

Greenlet acts are forced into the schedule's order and judged by evidence, not by waiting: after handing an act to
its greenlet the driver lets every runnable greenlet run; an act that has started and not finished once nothing can
run any more is parked (`blocked`) — on one OS thread only another greenlet's progress can wake it. Only an act
offloaded to a threadpool is waited for (a hang there is the launcher's to see).
"""

from __future__ import annotations

import _thread
import gc
import json
import os
import sys
import time
from typing import Any, Callable

from .greening import LIBRARIES, REQUIREMENT, Greenlets
from .plan import BURST_ACTORS, BURST_ROUNDS, Act, ActResult, Job, Start

# Only the standard library's smallest parts are imported before the runtime patches (asyncio and threading are
# imported by the asyncio driver alone): a greenlet runtime patches as a service does, first thing.
NATIVE_IDENT = _thread.get_ident  # taken before any patching: the OS thread, never a greenlet's id
WRITE = os.write  # eventlet greens os.write: on a pipe whose reader died it retries for good instead of raising
SETTLE_ROUNDS = 3  # yields per round while greenlets still make progress


class Answers:
    """One JSON line per event on a private copy of stdout (fd 1 goes to stderr: a module's printf never lands
    between two answers); the PIN is masked in anything that could echo it."""

    def __init__(self, pin: str) -> None:
        self._fd = os.dup(1)
        os.dup2(2, 1)
        self._pin = pin

    def __call__(self, **event: Any) -> None:
        line = json.dumps(event)
        if self._pin:
            line = line.replace(self._pin, "***")
        WRITE(self._fd, (line + "\n").encode())


class Fixture:
    """A job's sessions (the first logged in; the others share its login, UG §2.6.5) and its data objects."""

    def __init__(self, pkcs11: Any, token: Any, pin: str, job: Job) -> None:
        from pkcs11 import Attribute, ObjectClass

        self.template = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: job.label}
        self.sessions = [token.open(rw=True, user_pin=pin)]
        self.sessions += [token.open(rw=True) for _ in range(job.sessions - 1)]
        # Destroyed at the end (a token may keep session objects past their session: tpm2).
        self.objects = [self.sessions[0].create_object({**self.template, Attribute.TOKEN: False,
                                                        Attribute.PRIVATE: job.private, Attribute.VALUE: bytes([i])})
                        for i in range(job.objects)]
        self.iterators: dict[str, Any] = {}
        self.offload_threads: set[int] = set()
        self.token_keys, self.label = job.token_keys, job.label

    def close(self) -> None:
        self.iterators.clear()
        gc.collect()
        for obj in self.objects:
            try:
                obj.destroy()
            except Exception:  # noqa: BLE001 - a session the schedule broke; the harness sweeps its labels
                pass
        self.objects.clear()
        for session in reversed(self.sessions):
            try:
                session.close()
            except Exception:  # noqa: BLE001 - a session the schedule broke; the token is reset by the harness
                pass


def perform(fixture: Fixture, act: Act, offload: Callable[[Callable[[], Any]], Any] | None,
            burst: Callable[[Callable[[], str]], list[str]]) -> str:
    """Run one act; its outcome as `ok`, `ok:N` or `raises:Name` (never the exception's text)."""
    session = fixture.sessions[act.session] if act.session < len(fixture.sessions) else None
    if act.op in ("rest", "drop") and act.it not in fixture.iterators:
        return "not_run"  # its start did not make it (that act's outcome says why)
    try:
        if act.op == "start":
            iterator = iter(session.get_objects(fixture.template))
            next(iterator)
            fixture.iterators[act.it] = iterator
        elif act.op == "rest":
            iterator = fixture.iterators.pop(act.it)
            n = sum(1 for _ in iterator)
            del iterator
            return f"ok:{n}"
        elif act.op == "drop":
            del fixture.iterators[act.it]
            gc.collect()
        elif act.op == "all":
            return f"ok:{len(list(session.get_objects(fixture.template)))}"
        elif act.op == "random":
            session.generate_random(128)
        elif act.op == "keygen":
            import pkcs11
            from pkcs11 import KeyType

            def keygen() -> None:
                try:
                    session.generate_keypair(KeyType.RSA, 2048, store=False)
                except pkcs11.exceptions.PKCS11Error:
                    if not fixture.token_keys:
                        raise
                    # A token that makes no session key pairs (tpm2): a token pair, destroyed at once.
                    for key in session.generate_keypair(KeyType.RSA, 2048, store=True, label=fixture.label):
                        key.destroy()

            def offloaded() -> None:
                fixture.offload_threads.add(NATIVE_IDENT())
                keygen()

            offload(offloaded) if act.offload and offload is not None else keygen()
        elif act.op == "burst":
            outcomes = burst(lambda: f"ok:{len(list(session.get_objects(fixture.template)))}")
            wrong = [o for o in outcomes if not o.startswith("ok:") or o != outcomes[0]]
            return wrong[0] if wrong else outcomes[0]  # every search alike, or the first that was not
    except Exception as exc:  # noqa: BLE001 - what python-pkcs11 or the module raised is the act's outcome
        if not _from_binding(exc):
            raise  # the program's own bug: the driver reports it as such (Broken), never as an outcome
        name = type(exc).__name__
        exc.__traceback__ = None  # frames must not keep iterators alive
        del exc
        return f"raises:{name}"
    return "ok"


PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # conformance/


def _from_binding(exc: BaseException) -> bool:
    """Raised by python-pkcs11, the module or the libraries under them (a PKCS#11 refusal, the RLock's RuntimeError,
    a green lock's): its innermost frame is not the harness's own code (as outcomes.ours decides it)."""
    import pkcs11

    if isinstance(exc, pkcs11.exceptions.PKCS11Error):
        return True
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = os.path.abspath(tb.tb_frame.f_code.co_filename) if tb is not None else ""
    return not where.startswith(PACKAGE + os.sep)


def _where(exc: BaseException) -> str:
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    return f"{type(exc).__name__}: {exc}" + (f" at {os.path.basename(last.filename)}:{last.lineno}" if last else "")


def attempt_burst(run: Callable[[], str]) -> str:
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - as in perform: the binding's and the module's are outcomes
        if not _from_binding(exc):
            raise
        return f"raises:{type(exc).__name__}"


class GreenletDriver:
    """Runs a job's acts on one greenlet per actor, in the schedule's order."""

    def __init__(self, g: Greenlets, answer: Answers) -> None:
        self.g = g
        self.answer = answer

    def _settle(self, progress: list[int]) -> None:
        while True:
            before = progress[0]
            for _ in range(SETTLE_ROUNDS):
                self.g.sleep(0)
            if progress[0] == before:
                return

    def _burst(self, run: Callable[[], str]) -> list[str]:
        outcomes: list[str] = []

        def searches() -> None:
            for _ in range(BURST_ROUNDS):
                outcomes.append(attempt_burst(run))
                self.g.sleep(0)

        workers = [self.g.spawn(searches) for _ in range(BURST_ACTORS)]
        while len(outcomes) < BURST_ACTORS * BURST_ROUNDS and any(not w.dead for w in workers):
            self.g.sleep(0.001)
        return outcomes

    def run(self, fixture: Fixture, job: Job) -> None:
        g, answer = self.g, self.answer
        actors = max((a.actor for a in job.acts), default=0) + 1
        inbox = [g.queue() for _ in range(actors)]
        started: dict[int, float] = {}
        finished: dict[int, tuple[str, float, float]] = {}
        progress = [0]
        ticks: list[float] = []
        ticking = [job.tick]

        def actor(n: int) -> None:
            while (item := inbox[n].get()) is not None:
                index, act = item
                started[index] = time.perf_counter()
                progress[0] += 1
                try:
                    outcome = perform(fixture, act, g.offload, self._burst)
                except Exception as exc:  # noqa: BLE001 - the program's own bug, said before it exits
                    answer(broken=_where(exc))
                    os._exit(5)
                finished[index] = (outcome, started[index], time.perf_counter())
                progress[0] += 1

        def ticker() -> None:
            while ticking[0]:
                ticks.append(time.perf_counter())
                g.sleep(0.001)

        if any(a.offload for a in job.acts):
            g.offload(lambda: None)  # the threadpool starts its threads on first use: not inside a measured act
        greenlets = [g.spawn(lambda n=n: actor(n)) for n in range(actors)]
        if job.tick:
            greenlets.append(g.spawn(ticker))
            g.sleep(0.005)
        pending: list[int] = []
        for index, act in enumerate(job.acts):
            inbox[act.actor].put((index, act))
            while index not in started:
                g.sleep(0)
            if act.offload:  # parked on the threadpool, not on a lock: wait for it
                while index not in finished:
                    g.sleep(0.001)
            self._settle(progress)
            if job.tick and index in finished:
                g.sleep(0.003)  # the ticker's first tick after the call closes the gap that spans it
            if index in finished:
                outcome, t0, t1 = finished[index]
                answer(result=ActResult(index, outcome, duration_ms=(t1 - t0) * 1e3,
                                        gap_ms=_gap(ticks, t0, t1) if job.tick else None,
                                        ticks=sum(t0 < t < t1 for t in ticks) if job.tick else None).to_dict())
            else:
                pending.append(index)
                answer(result=ActResult(index, "blocked").to_dict())
            for earlier in [p for p in pending if p in finished]:
                pending.remove(earlier)
                outcome, t0, t1 = finished[earlier]
                answer(late={"index": earlier, "completed_after": index, "outcome": outcome})
        ticking[0] = False
        for queue in inbox:
            queue.put(None)
        self._settle(progress)
        after = []
        for session in range(len(fixture.sessions)):  # a fresh actor's whole search on each session
            done: list[str] = []
            probe = g.spawn(lambda s=session: done.append(perform(fixture, Act(actors, "all", s), None, self._burst)))
            self._settle(progress)
            g.sleep(0)
            after.append(done[0] if done else "blocked")
            if not done:
                g.kill(probe)
        for greenlet in greenlets:
            if not greenlet.dead:
                g.kill(greenlet)  # parked for good (the schedule left it so): GreenletExit inside the lock wait
        g.sleep(0)
        answer(after=after)


def _gap(ticks: list[float], t0: float, t1: float) -> float:
    """The hub's largest gap (ms) between two ticks around [t0, t1]: from the last tick before the act to the first
    after it, the longest stretch no tick ran."""
    before = [t for t in ticks if t <= t0][-1:] or [t0]
    span = before + [t for t in ticks if t0 < t < t1] + [t for t in ticks if t >= t1][:1]
    return max((b - a for a, b in zip(span, span[1:])), default=t1 - t0) * 1e3


class AsyncioDriver:
    """Runs a job's acts through asyncio.to_thread (the default executor's threads), in the schedule's order. An act
    still running `job.block_s` after it was handed out (the module's process derives it from the module's measured
    latency) is `blocked`; `hold` keeps an executor thread until the job ends.

    Between acts the driver waits until every executor thread not busy with an act is idle again (back in the
    executor's queue): which thread the next call gets is then the executor's rule — an idle thread is reused —
    and never the race between a finished call's result and its thread getting back to the queue."""

    def __init__(self, answer: Answers) -> None:
        self.answer = answer

    def run(self, fixture: Fixture, job: Job) -> None:
        import asyncio

        from concurrent.futures import ThreadPoolExecutor

        # Not asyncio.run(): it would join the executor's threads, and a blocked act's thread may wait for good.
        loop = asyncio.new_event_loop()
        self.executor = ThreadPoolExecutor()  # what asyncio's default executor is, made here to see its threads
        loop.set_default_executor(self.executor)
        loop.run_until_complete(self._run(fixture, job, loop))

    async def _settled(self, busy: int) -> None:
        """Until every executor thread but the `busy` ones is idle (the executor's own count of idle threads)."""
        import asyncio

        idle, threads = getattr(self.executor, "_idle_semaphore", None), getattr(self.executor, "_threads", None)
        if idle is None or threads is None:  # another Python's executor: give its threads a moment instead
            await asyncio.sleep(0.01)
            return
        while getattr(idle, "_value", 0) < len(threads) - busy:
            await asyncio.sleep(0.0002)

    async def _run(self, fixture: Fixture, job: Job, loop: Any) -> None:
        import asyncio
        import threading

        release = threading.Event()

        def burst(run: Callable[[], str]) -> list[str]:
            async def all_of() -> list[str]:
                async def searches() -> list[str]:
                    return [await asyncio.to_thread(attempt_burst, run) for _ in range(BURST_ROUNDS)]
                return [o for part in await asyncio.gather(*(searches() for _ in range(BURST_ACTORS))) for o in part]
            return asyncio.run_coroutine_threadsafe(all_of(), loop).result()

        pending: dict[int, tuple[asyncio.Task[str], float]] = {}
        holds = 0
        for index, act in enumerate(job.acts):
            started = time.perf_counter()
            if act.op == "hold":
                held = threading.Event()
                loop.run_in_executor(None, lambda: (held.set(), release.wait()))
                while not held.is_set():
                    await asyncio.sleep(0.001)
                self.answer(result=ActResult(index, "ok").to_dict())
                holds += 1
                continue
            task = asyncio.ensure_future(asyncio.to_thread(perform, fixture, act, None, burst))
            # A burst is many calls that never wait for each other: waited for, like a greenlet's offloaded act.
            await asyncio.wait({task}, timeout=None if act.op == "burst" else job.block_s)
            if task.done():
                self.answer(result=ActResult(index, task.result(), duration_ms=(time.perf_counter() - started) * 1e3)
                            .to_dict())
            else:
                self.answer(result=ActResult(index, "blocked").to_dict())
            earlier = {i: t for i, (t, _) in pending.items()}
            if earlier:
                await asyncio.wait(set(earlier.values()), timeout=job.block_s)
            for i, t in earlier.items():
                if t.done():
                    del pending[i]
                    self.answer(late={"index": i, "completed_after": index, "outcome": t.result()})
            if not task.done():
                pending[index] = (task, started)
            await self._settled(holds + len(pending))
        release.set()
        self.answer(after=[])  # which executor thread a last search lands on is not the schedule's to say


def _load(start: Start, pin: str, answer: Answers) -> tuple[Any, Any] | None:
    import pkcs11

    try:
        lib = pkcs11.lib(start.module)
        token = lib.get_token(token_label=start.token_label)
    except Exception as exc:  # noqa: BLE001 - reported as data; the launcher turns it into a clear error
        answer(failed=f"{type(exc).__name__}: {str(exc)[:300]}")
        return None
    return pkcs11, token


def _die_with_parent() -> None:
    """Linux: SIGKILL this program when the module's process that started it dies (a check aborted at its
    deadline): a program parked in the module must not outlive the run holding sessions on the token."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        return


def main() -> int:
    _die_with_parent()
    first = json.loads(sys.stdin.readline())
    start, pin = Start.from_dict(first["start"]), str(first["pin"])
    answer = Answers(pin)
    runtime = start.runtime
    g: Greenlets | None = None
    if runtime.greenlets:
        try:
            g = LIBRARIES[runtime.kind]()
        except ImportError:
            answer(unavailable=f"{runtime.kind} is not installed: pip install 'pkcs11-conformance[runtimes]' "
                               f"(or {REQUIREMENT[runtime.kind]})")
            return 0
        if runtime.patch == "before_import":
            g.patch()
    loaded = _load(start, pin, answer)
    if loaded is None:
        return 2
    pkcs11, token = loaded
    if g is not None and runtime.patch == "after_import":
        g.patch()
    answer(ready=os.getpid())
    patched = runtime.patch != "after_sessions"
    driver = GreenletDriver(g, answer) if g is not None else AsyncioDriver(answer)
    for line in sys.stdin:
        job = Job.from_dict(json.loads(line))
        fixture = Fixture(pkcs11, token, pin, job)
        if not patched and g is not None:
            g.patch()  # the sessions above keep the native RLock python-pkcs11 made them with
            patched = True
        try:
            driver.run(fixture, job)
        except Exception as exc:  # noqa: BLE001 - the program's own bug (an asyncio act's included)
            answer(broken=_where(exc))
            return 5
        threads = len(fixture.offload_threads)
        fixture.close()
        answer(done=True, offload_threads=threads)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # greenlets or executor threads may be parked inside the module; do not wait for them
