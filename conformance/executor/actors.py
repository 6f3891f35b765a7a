"""Actor threads of the executor child: each a pinned OS thread that runs the steps it is handed, one at a time.

Pinned, because python-pkcs11 ties a session's lock to the thread that took it: a schedule's "actor 1" must be
the same OS thread from its first step to its last.
"""

from __future__ import annotations

import queue
import threading
import time

from ..outcomes import describe, ours
from .actions import ACTIONS, World

RESET = object()
STOP = object()


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
            if item is STOP:
                return
            if item is RESET:
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
                # Our own code breaking is no step outcome: the runner stops the schedule as the harness's error.
                status, error, value = ("broken", describe(exc), None) if ours(exc) else ("raised", type(exc).__name__, None)
                exc.__traceback__ = None  # frames must not keep iterators alive
                del exc
            ended = time.perf_counter()
            duration = (ended - started) * 1e6
            if step.op in ("next", "consume", "use_partial") and status == "ok":
                world.iterator_owner.setdefault(step.args.get("iterator", step.args.get("ref")), self.number)
            self.busy_step = None
            self._done.put(("step", index, (status, error, value, duration, ended)))


def queue_floor(n: int) -> float:
    """The bare cost of handing an item to another Python thread and getting one back (µs per round trip):
    the floor the executor's own per-step overhead is measured against, in the same process."""
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    outbox: queue.SimpleQueue = queue.SimpleQueue()

    def echo() -> None:
        while (item := inbox.get()) is not None:
            outbox.put(item)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    started = time.perf_counter()
    for i in range(n):
        inbox.put(i)
        outbox.get()
    elapsed = time.perf_counter() - started
    inbox.put(None)
    thread.join()
    return elapsed / n * 1e6
