"""asyncio (issue 14, item 1): a service's tasks calling python-pkcs11 through `asyncio.to_thread` (the default
executor's threads; `run_in_executor(None, ...)` is the same). The session lock is an RLock: it belongs to the
executor thread a call ran on, not to the task — and the executor hands its threads to whichever task calls next.
Each check runs a runtime program (conformance/runtimes/program.py) in an interpreter of its own."""

from __future__ import annotations

import pytest

from ..labels import label
from ..runtimes.plan import BURST_ACTORS, BURST_ROUNDS, Act, Job
from .test_greenlets import _checked, private_objects, run

pytestmark = pytest.mark.concurrency


@pytest.mark.check("asyncio.second_search_waits", layer="binding", spec="python-pkcs11 docs, Concurrency")
def test_second_search_waits(vendor, observe, limits):
    """Docs: the session's lock is there "to prevent threads from interfering with each other": a task's search
    through to_thread on a shared session, while another task's search there (started in an earlier to_thread
    call) is partly consumed, waits until that one is consumed, then finds every object; the first search is
    undisturbed and the session is usable afterwards."""
    job = Job((Act(0, "start", 0, "it0"), Act(1, "all", 0), Act(0, "rest", it="it0")), label=label("asyncio-wait"),
              block_s=limits.block_window, private=private_objects(vendor))
    # Not the sessions afterwards: which executor thread a last search lands on is not the schedule's to say.
    _checked(job, run(vendor, limits, "asyncio", job)[0], observe, after=False)


@pytest.mark.check("asyncio.search_across_to_thread_calls", layer="binding", spec="python-pkcs11 docs, Concurrency")
def test_search_across_to_thread_calls(vendor, observe, limits):
    """A task that takes a search's first object in one to_thread call and the rest in a later one — while
    another task's call keeps the executor thread the first ran on, so the later call runs on another — gets every
    object: the docs' lock must not tie a search to the thread that started it."""
    job = Job((Act(0, "start", 0, "it0"), Act(1, "hold"), Act(0, "rest", it="it0")), label=label("asyncio-across"),
              block_s=limits.block_window, private=private_objects(vendor))
    outcome = run(vendor, limits, "asyncio", job)[0]
    observe({"acts": list(outcome.finals()), "ended": outcome.ended})
    assert outcome.ended == "ok" and outcome.finals() == ("ok", "ok", "ok:2"), (
        f"a search consumed over two to_thread calls on different executor threads: {list(outcome.finals())}, "
        f"program {outcome.ended}")


@pytest.mark.check("asyncio.concurrent_searches", layer="module", spec="python-pkcs11 docs, Concurrency; PKCS#11 v3.0 §5.4")
def test_concurrent_searches(vendor, observe, limits):
    """Tasks at once, each running whole searches through to_thread on one shared session (a FastAPI handler's
    `await asyncio.to_thread(lambda: list(session.get_objects(...)))`): the session lock serialises them across
    the executor's threads, and every search finds every object."""
    job = Job((Act(0, "burst", 0),), label=label("asyncio-burst"), block_s=limits.block_window,
              private=private_objects(vendor))
    outcome = run(vendor, limits, "asyncio", job)[0]
    observe({"searches": BURST_ACTORS * BURST_ROUNDS, "acts": list(outcome.finals()), "ended": outcome.ended})
    assert outcome.ended == "ok" and outcome.finals() == ("ok:3",), (
        f"{BURST_ACTORS} tasks x {BURST_ROUNDS} searches through to_thread on one session: "
        f"{list(outcome.finals())}, program {outcome.ended}")
