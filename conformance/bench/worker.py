"""The benchmark's worker: `python -m conformance.bench.worker`, the module's process for one mechanism (started by
runner.py through the vendor's launcher, in its environment). The first stdin line is a Start with the PIN beside
it; the worker loads the module, logs in on a set-up session it keeps, makes what the mechanism's calls use, answers
Ready, then one trial per Run line (warm-up, then the timed trial on fresh threads), or the overhead measurement.

A call that raises stops the trial (`stopped: failed`); a call that does not return is `stopped: hung` with every
thread's stack on stderr, and the worker exits — a module that crashes the process is seen by the runner."""

from __future__ import annotations

import faulthandler
import functools
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from ..live.programs import Answers, die_with_parent
from . import stats
from .protocol import Measured, OverheadAsked, OverheadMeasured, Ready, Run, Start, Stopped, decode, encode
from .strategies import Found, PerThread, Pool, ProviderRaised, ProviderStrategy, Request, Strategy
from .workloads import WORKLOADS, Unsupported, Variant, WrongAnswer, choose, destroy, make

HUNG_EXIT = 3
NOOP_CALLS, NOOP_REPEATS = 200_000, 9  # the loop's own cost, measured on a call that does nothing: ~20 ms a loop
PROBE_CALLS = 5  # calls timed at set-up: the runner derives trial and hang times from their median


class Hung(Exception):
    """A call did not return (the module's hang, never the worker's bug)."""


def timed_loop(request: Request, latencies: list[int], running: list[bool], stride: int) -> int:
    """The loop every thread runs, until told to stop: `stride` requests at a time, the last of them timed (two
    clock reads and an append cost about 0.15 µs: on calls of a few µs only every stride-th is timed — an unbiased
    sample of the latencies — and the count is of every call). Returns the calls made."""
    clock, record = time.perf_counter_ns, latencies.append
    untimed = (None,) * (stride - 1)
    n = 0
    while running[0]:
        for _ in untimed:
            request()
        before = clock()
        request()
        record(clock() - before)
        n += stride
    return n


def _nothing(session: Any, found: Any) -> None:
    return None


def _bare_loop(call: Callable[[Any, Any], Any], session: Any, found: Any, calls: int) -> float:
    """µs per call of `calls` calls in a plain for loop: what a user's own loop does."""
    t0 = time.perf_counter()
    for _ in range(calls):
        call(session, found)
    return (time.perf_counter() - t0) / calls * 1e6


def _threaded(measure: Callable[[], float], timeout: float) -> float:
    """`measure()` on a fresh thread (as a trial's loops run); Hung if it does not return in `timeout`."""
    out: list[float] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(measure())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise Hung("a call of the bare loop did not return")
    if errors:
        raise errors[0]
    return out[0]


class Phase:
    """Threads running the timed loop together from a barrier for `seconds`; the first exception stops them all."""

    def __init__(self, requests: list[Request], stride: int = 1) -> None:
        self.requests, self.stride = requests, stride
        self.ops = [0] * len(requests)
        self.running = [True]
        self.latencies: list[list[int]] = [[] for _ in requests]
        self.ends = [0.0] * len(requests)
        self.error: BaseException | None = None
        self._barrier = threading.Barrier(len(requests) + 1)

    def _thread(self, i: int) -> None:
        self._barrier.wait()
        try:
            self.ops[i] = timed_loop(self.requests[i], self.latencies[i], self.running, self.stride)
        except BaseException as exc:  # noqa: BLE001 - judged by the main thread (module's answer or our bug)
            self.error = self.error or exc
            self.running[0] = False
        self.ends[i] = time.perf_counter()

    def run(self, seconds: float, hang_s: float) -> tuple[float, bool]:
        """(wall seconds from the start to the last thread's last call, hung?)."""
        threads = [threading.Thread(target=self._thread, args=(i,), daemon=True) for i in range(len(self.requests))]
        for t in threads:
            t.start()
        self._barrier.wait()
        started = time.perf_counter()
        time.sleep(seconds)
        self.running[0] = False
        deadline = started + seconds + hang_s
        for t in threads:
            t.join(max(0.0, deadline - time.perf_counter()))
        if any(t.is_alive() for t in threads):
            return time.perf_counter() - started, True
        return max(self.ends) - started, False


def _describe(exc: BaseException) -> Stopped:
    import pkcs11.exceptions

    text = " ".join(str(exc).split())[:200]
    what = f"{type(exc).__name__}" + (f": {text}" if text else "")
    if isinstance(exc, (pkcs11.exceptions.PKCS11Error, WrongAnswer)):
        return Stopped("failed", what)
    if isinstance(exc, ProviderRaised):
        return Stopped("failed", str(exc))
    return Stopped("error", f"the benchmark's worker failed ({what}); a harness bug — please report it")


class Worker:
    def __init__(self, start: Start, pin: str, answer: Answers) -> None:
        import pkcs11

        from ..live.tokens import describe, find_token

        self.start, self.answer = start, answer
        self.workload = WORKLOADS[start.mechanism]
        lib = pkcs11.lib(start.module)
        self.token = find_token(lib, start.token_label, start.token_uri)
        self.facts = describe(lib, self.token)
        self.keeper = self.token.open(rw=True, user_pin=pin)  # the application's login, for every session below
        self.tag: str | None = None  # the label of what set-up made (None: nothing made)
        self.strategies: dict[str, Strategy] = {}

    def set_up(self) -> Ready:
        listed = set(self.token.slot.get_mechanisms())
        chosen = choose(self.workload, listed)
        why = chosen if isinstance(chosen, str) else ""
        if not why:
            try:
                self.tag = make(self.workload, self.keeper, self.start.disposable)
            except Unsupported as exc:
                why = str(exc)
        if why:
            return Ready(os.getpid(), self.facts, skipped=why)
        assert self.tag is not None and isinstance(chosen, Variant)
        self.call = chosen.call
        found = self.found = Found(self.workload, self.tag)
        opener: Callable[[], Any] = lambda: self.token.open(rw=True)  # noqa: E731 - logged in through the keeper
        self.per_thread = PerThread(opener, self.call, found)
        self.strategies = {"per_thread": self.per_thread, "pool": Pool(self.start.pool_size, opener, self.call, found)}
        from ..refsession import reference_session

        self.strategies["shared"] = ProviderStrategy("shared", reference_session, opener, self.call, found)
        if self.start.sut:
            from ..sut import check_provider, load_factory

            factory = load_factory(self.start.sut)
            self.strategies["sut"] = ProviderStrategy(
                "sut", lambda open_session: check_provider(factory(open_session), self.start.sut), opener,
                self.call, found)
        request = self.per_thread.begin(1)[0]
        samples = []
        for _ in range(PROBE_CALLS):
            t0 = time.perf_counter_ns()
            request()
            samples.append(time.perf_counter_ns() - t0)
        return Ready(os.getpid(), self.facts, call_us=stats.median(samples) / 1000, note=chosen.note)

    def trial(self, run: Run) -> Measured | Stopped | None:
        """None: hung (said, and the stacks are on stderr; the caller exits)."""
        strategy = self.strategies[run.strategy]
        requests = strategy.begin(run.threads)
        hung = False
        try:
            for seconds, timed in ((run.warmup_s, False), (run.trial_s, True)):
                if seconds <= 0 and not timed:
                    continue
                phase = Phase(requests, run.stride)
                elapsed, hung = phase.run(seconds, run.hang_s)
                if hung:
                    faulthandler.dump_traceback(all_threads=True)
                    self.answer(**encode(Stopped("hung", f"a call did not return {run.hang_s:.0f} s after the trial's end")))
                    return None
                if phase.error is not None:
                    return _describe(phase.error)
                if timed:
                    return Measured(sum(phase.ops), elapsed, stats.histogram(x for lat in phase.latencies for x in lat))
        finally:
            if not hung:  # a hung thread is still in the module: leave its session alone, the process exits
                strategy.end()
        raise AssertionError("a trial with no timed phase")

    def overhead(self, asked: OverheadAsked) -> OverheadMeasured:
        """Per call, µs. `bare_us`: the fastest of the repeats of a bare python-pkcs11 loop of the workload's calls
        on one session (a fresh thread each). What a trial adds per call — its timed loop (stride, clock reads, stop
        flag) on its thread, against a bare loop — is measured on a call that does nothing, where the module's own
        variation (±10 % between repeats on a soft token's µs calls) cannot hide a 0.1 µs cost; `timed_us` is the
        bare call plus that. Both are the fastest of their repeats (as timeit takes the minimum: the other repeats
        measure the machine's noise)."""
        self.per_thread.begin(1)
        session = self.per_thread.sessions[0]
        call, found = self.call, self.found(session)
        bare = [_threaded(lambda: _bare_loop(call, session, found, asked.calls), asked.hang_s + 10.0)
                for _ in range(asked.repeats)]
        nothing = functools.partial(_nothing, None, None)  # shaped as a strategy's request: partial(call, s, found)
        noop_bare, noop_timed = [], []
        for _ in range(NOOP_REPEATS):
            seconds = _bare_loop(_nothing, None, None, NOOP_CALLS) * NOOP_CALLS / 1e6
            noop_bare.append(seconds / NOOP_CALLS * 1e6)
            phase = Phase([nothing], asked.stride)
            elapsed, _ = phase.run(seconds, asked.hang_s)
            noop_timed.append(elapsed / max(1, phase.ops[0]) * 1e6)
        return OverheadMeasured(min(bare), min(bare) + max(0.0, min(noop_timed) - min(noop_bare)))

    def close(self) -> None:
        for strategy in self.strategies.values():
            strategy.close()
        if self.tag is not None:
            destroy(self.keeper, self.tag)
        self.keeper.close()


def main() -> int:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C at a terminal reaches the group: the runner decides
    faulthandler.enable()
    first = json.loads(sys.stdin.readline())
    start, pin = Start.from_dict(first["start"]), str(first["pin"])
    answer = Answers(pin)
    try:
        worker = Worker(start, pin, answer)
    except Exception as exc:  # noqa: BLE001 - the module or token cannot be used: said as data, the runner words it
        answer(unusable={"error": type(exc).__name__, "detail": " ".join(str(exc).split())[:300]})
        return 2
    try:
        answer(**encode(worker.set_up()))
    except Exception as exc:  # noqa: BLE001
        answer(**encode(_describe(exc)))
        return 2
    for line in sys.stdin:
        data = json.loads(line)
        if "stop" in data:
            break
        message = decode(data)
        try:
            if isinstance(message, OverheadAsked):
                answer(**encode(worker.overhead(message)))
                continue
            result = worker.trial(message)
        except Hung as exc:
            faulthandler.dump_traceback(all_threads=True)
            answer(**encode(Stopped("hung", str(exc))))
            return HUNG_EXIT
        except Exception as exc:  # noqa: BLE001 - a strategy's set-up (opening sessions) failed, or our bug
            answer(**encode(_describe(exc)))
            return 2
        if result is None:
            return HUNG_EXIT
        answer(**encode(result))
        if isinstance(result, Stopped):
            return 2  # the next trial gets a fresh process: this one's sessions may be in any state
    try:
        worker.close()
    finally:
        answer(closed=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # threads may be parked inside the module; do not wait for them
