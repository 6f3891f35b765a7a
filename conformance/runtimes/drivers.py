"""How a runtime program runs a job's acts: on one greenlet per actor (gevent, eventlet), or through
asyncio.to_thread, in the schedule's order, answering each act's result as it is known."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from .acts import Fixture, attempt_burst, perform, where_of
from .greening import Greenlets
from .plan import BURST_ACTORS, BURST_ROUNDS, Act, ActResult, Job

SETTLE_ROUNDS = 3  # yields per round while greenlets still make progress
Answer = Callable[..., None]


class GreenletDriver:
    """Runs a job's acts on one greenlet per actor, in the schedule's order."""

    def __init__(self, g: Greenlets, answer: Answer) -> None:
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
                    answer(broken=where_of(exc))
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

    def __init__(self, answer: Answer) -> None:
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
