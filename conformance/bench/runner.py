"""Running the benchmark: per vendor, its token provisioned as the checks provision it (without the tap: nothing
here needs evidence, and the module is timed as the application's stack has it); per mechanism, a worker program
in the module's process; trials in rounds — round r runs trial r of every strategy × thread count, so each row's
trials are spread over the whole mechanism's run and its spread measures the drift a run sees, not only the
jitter of a few consecutive seconds. A worker that crashes, hangs or fails a call ends its row there (`unsafe at 2
threads: SIGSEGV`) and a fresh worker carries on with the rest. bench.json is rewritten after every mechanism."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..labels import ensure_run_tag
from ..pins import PinUnavailable
from ..vendor.profile import VendorProfile
from ..vendor.provisioning import ProvisioningError, set_up
from . import stats
from .process import Ended, Unusable, WorkerProcess
from .progress import Progress
from .protocol import Measured, OverheadAsked, OverheadMeasured, Ready, Run, Start, Stopped
from .record import BenchDoc, Overhead, Row, Settings, Trial, VendorFacts

MIN_CALLS = 20  # a trial lasts at least this many single-thread calls (slow modules: tpm2's RSA signs)
OVERHEAD_S = 0.03  # each loop of the overhead measurement lasts about this long: many short loops, their minimum
OVERHEAD_REPEATS = 21
STRIDE_US = 25.0  # latencies are recorded for one call in every this many µs' worth (all, for slower calls)
ANSWER_MARGIN_S = 10.0  # the worker says `hung` itself; the runner kills it only if it cannot even do that


class VendorProblem(Exception):
    """The vendor cannot be benchmarked at all; one line naming the fix (never a PIN)."""


@dataclass
class Cell:
    """One row in the making (not a boundary type: becomes a Row)."""

    strategy: str
    threads: int
    trials: list[Trial] = field(default_factory=list)
    histograms: list[dict[int, int]] = field(default_factory=list)
    outcome: str = "measured"
    detail: str = ""

    @property
    def live(self) -> bool:
        return self.outcome == "measured"

    def end(self, outcome: str, what: str) -> None:
        self.outcome = outcome
        if outcome == "hung":
            self.detail = f"hung at {self._at}: {what}"
        elif outcome == "error":
            self.detail = what
        else:
            self.detail = f"unsafe at {self._at}: {what}"

    @property
    def _at(self) -> str:
        return f"{self.threads} thread{'s' * (self.threads != 1)}"

    def row(self, vendor: str, mechanism: str) -> Row:
        if not self.live or not self.trials:
            return Row(vendor, mechanism, self.strategy, self.threads, self.outcome, trials=tuple(self.trials),
                       detail=self.detail)
        merged = stats.merge(self.histograms)
        return Row(vendor, mechanism, self.strategy, self.threads, "measured",
                   ops_per_s=stats.median([t.ops_per_s for t in self.trials]),
                   p50_ms=stats.percentile_ms(merged, 50), p95_ms=stats.percentile_ms(merged, 95),
                   p99_ms=stats.percentile_ms(merged, 99), trials=tuple(self.trials), detail=self.detail)


class VendorBench:
    """One vendor's token and its workers, for the whole vendor."""

    def __init__(self, profile: VendorProfile, settings: Settings, sut: str, logs: Path, progress: Progress) -> None:
        self.profile, self.settings, self.sut, self.logs, self.progress = profile, settings, sut, logs, progress
        self.facts = VendorFacts(module=profile.module or "", stack=tuple(profile.via))
        self._workdir = Path(tempfile.mkdtemp(prefix=f"bench-{profile.name}-"))
        self._launched = 0
        try:
            self._pin = profile.user_pin.reveal()
        except PinUnavailable as exc:
            raise VendorProblem(f"{profile.name}: {exc}") from None
        try:
            self._stage = set_up(profile, self._workdir / "token", profile.module or "", profile.via, tap=False)
            self._provisioned = self._stage.freeze()
        except (ProvisioningError, PinUnavailable) as exc:
            shutil.rmtree(self._workdir, ignore_errors=True)
            raise VendorProblem(f"{profile.name}: {exc}") from None

    def close(self) -> None:
        try:
            self._stage.close()
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def _worker(self, mechanism: str) -> WorkerProcess:
        p = self._provisioned
        self._launched += 1
        start = Start(module=p.module, token_label=p.token_label, token_uri=p.token_uri, mechanism=mechanism,
                      disposable=self.profile.disposable, pool_size=self.settings.pool_size, sut=self.sut)
        return WorkerProcess(start, self._pin, env=p.env, launcher=p.launcher, cwd=p.cwd,
                             log=self.logs / f"{self.profile.name}-{mechanism}-{self._launched}.log")

    def _open(self, worker: WorkerProcess) -> Ready | Stopped | Ended:
        try:
            return worker.open()
        except Unusable as exc:
            raise VendorProblem(self._unusable(exc)) from None

    def _unusable(self, exc: Unusable) -> str:
        name, source = self.profile.name, self.profile.user_pin.source
        if exc.error == "PinIncorrect":
            return f"{name}: the user PIN (from {source}) is wrong; set PKCS11_TOKEN_PIN or fix token.user_pin"
        if exc.error == "PinLocked":
            return f"{name}: the token's user PIN is locked; have the SO unlock it"
        return f"{name}: the module or token cannot be used ({exc}); check the profile with `pkcs11-conformance vendors`"

    def mechanism(self, mechanism: str) -> list[Row]:
        """Every strategy × thread count of one mechanism, as rows."""
        s = self.settings
        cells = [Cell(strategy, threads) for strategy in s.strategies for threads in s.threads]
        worker = self._worker(mechanism)
        first = self._open(worker)
        try:
            if not isinstance(first, Ready) or first.skipped:
                if isinstance(first, Ready):
                    outcome, detail = "skipped", first.skipped
                    self.progress.skipped(self.profile.name, mechanism, detail)
                else:  # the set-up's first calls (one thread, its own session) raised, crashed or hung
                    outcome, detail = first.outcome, f"the first calls, on one thread: {first.outcome} ({first.detail})"
                    self.progress.ended(self.profile.name, mechanism, detail)
                for cell in cells:
                    cell.outcome, cell.detail = outcome, detail
                return [c.row(self.profile.name, mechanism) for c in cells]
            self._library(first)
            stride = max(1, min(64, int(STRIDE_US / max(first.call_us, 0.1))))
            sampled = f"latency of every {stride}th call" if stride > 1 else ""
            for cell in cells:
                cell.detail = "; ".join(filter(None, (first.note, sampled)))
            call_s = max(first.call_us, 1.0) / 1e6
            if not self._overhead(worker, mechanism, call_s, stride):
                worker.kill()
                worker = None  # died or stuck measuring: the trials get a fresh one (and meet the fault themselves)
            trial_s = max(s.trial_s, MIN_CALLS * call_s)
            self.progress.mechanism(self.profile.name, mechanism, first.call_us, trial_s, len(cells))
            for round_ in range(s.trials):
                for cell in (c for c in cells if c.live):
                    run = Run(cell.strategy, cell.threads, s.warmup_s, trial_s,
                              max(s.hang_s, 100 * call_s * cell.threads), stride)
                    worker = self._trial(mechanism, worker, cell, run, round_ + 1)
            rows = [c.row(self.profile.name, mechanism) for c in cells]
            self.progress.rows(rows)
            return rows
        finally:
            if worker is not None:
                worker.close()

    def _trial(self, mechanism: str, worker: WorkerProcess | None, cell: Cell, run: Run,
               round_: int) -> WorkerProcess | None:
        """One trial of `cell` on `worker` (a fresh one if None); the worker to go on with, None once it is gone
        or its state is unknown (it failed, crashed or hung: the row ends there)."""
        if worker is None:
            worker = self._worker(mechanism)
            again = self._open(worker)
            if not isinstance(again, Ready) or again.skipped:
                cell.end("error", f"a fresh worker did not set up again: {_said(again)}")
                worker.kill()
                return None
        answer = worker.ask(run, run.warmup_s + run.trial_s + run.hang_s + ANSWER_MARGIN_S)
        if isinstance(answer, Measured):
            cell.trials.append(Trial(answer.ops, answer.seconds))
            cell.histograms.append(dict(answer.histogram))
            self.progress.trial(self.profile.name, mechanism, cell.strategy, cell.threads, round_,
                                self.settings.trials, cell.trials[-1].ops_per_s)
            return worker
        if isinstance(answer, (Stopped, Ended)):
            stacks = f" (the worker's stderr, stacks included: logs/{worker.log.name})" if answer.outcome in (
                "hung", "crashed") else ""
            cell.end(answer.outcome, answer.detail + stacks)
        else:
            cell.end("error", f"the worker answered {answer!r}; a harness bug — please report it")
        if isinstance(answer, Stopped):
            worker.wait(10.0)  # it exits by itself after saying so
        worker.kill()
        self.progress.ended(self.profile.name, mechanism, cell.detail)
        return None

    def _library(self, ready: Ready) -> None:
        if not self.facts.library:
            library = dict(ready.facts.get("library", {}))
            token = str(ready.facts.get("token", {}).get("label", ""))
            self.facts = replace(self.facts, library=library, token=token)

    def _overhead(self, worker: WorkerProcess, mechanism: str, call_s: float, stride: int) -> bool:
        """Measure the benchmark's own overhead (progress prints it); False if the worker did not answer."""
        calls = max(10, int(OVERHEAD_S / call_s))
        hang_s = max(self.settings.hang_s, 100 * call_s)
        expected = OVERHEAD_REPEATS * 2 * calls * call_s
        answer = worker.ask(OverheadAsked(OVERHEAD_REPEATS, calls, hang_s, stride),
                            3 * expected + 2 * hang_s + ANSWER_MARGIN_S)
        if not isinstance(answer, OverheadMeasured):
            self.progress.ended(self.profile.name, mechanism, f"overhead not measured: {_said(answer)}")
            return False
        o = Overhead(mechanism, answer.bare_us, answer.timed_us)
        self.facts = replace(self.facts, overhead=(*self.facts.overhead, o))
        self.progress.overhead(self.profile.name, o)
        return True


def run_bench(profiles: list[VendorProfile], settings: Settings, sut: str, out: Path, progress: Progress,
              write: Callable[[BenchDoc], None]) -> BenchDoc:
    """Every vendor × mechanism; `write` is called with the document so far after every mechanism (and once at the
    end, finished). A KeyboardInterrupt propagates after the rows so far were written."""
    from .record import BenchRun

    ensure_run_tag()  # the labels of what the workers make: one tag for the run, inherited by every worker
    doc = BenchDoc(BenchRun.new(settings, sut))
    logs = out / "logs"
    for profile in profiles:
        try:
            bench = VendorBench(profile, settings, sut, logs, progress)
        except VendorProblem as exc:
            doc = doc.with_vendor(profile.name, VendorFacts(profile.module or "", problem=str(exc)))
            progress.problem(str(exc))
            write(doc)
            continue
        try:
            for mechanism in settings.mechanisms:
                rows = bench.mechanism(mechanism)
                doc = doc.with_vendor(profile.name, bench.facts)
                for row in rows:
                    doc = doc.with_row(row)
                write(doc)
        except VendorProblem as exc:
            doc = doc.with_vendor(profile.name, VendorFacts(profile.module or "", problem=str(exc)))
            progress.problem(str(exc))
            write(doc)
        finally:
            bench.close()
    _drop_empty_logs(logs)
    doc = doc.finished()
    write(doc)
    return doc


def _said(answer: object) -> str:
    if isinstance(answer, (Ended, Stopped)):
        return f"{answer.outcome} ({answer.detail})"
    return repr(answer)


def _drop_empty_logs(logs: Path) -> None:
    for log in logs.glob("*.log") if logs.is_dir() else ():
        if log.stat().st_size == 0:
            log.unlink()
    if logs.is_dir() and not any(logs.iterdir()):
        logs.rmdir()
