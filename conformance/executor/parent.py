"""Parent side of the executor: a child process that holds the module and runs schedules; crash- and hang-proof.

The pytest process never calls the module. It sends commands (protocol.py), reads the answers, and turns a dead
child into `crashed` (with the signal) and a stuck one into `hung` (with every thread's stack), then starts a
fresh child for the next example or check.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

from ..engine.params import Characterisation
from ..engine.schedule import Schedule, StepResult, Trace
from ..outcomes import HarnessFault, ReportsFinding
from .protocol import (
    AppAnswer, AppStep, CallStress, Capabilities, Characterise, Characterised, CheckAnswer, ChildInit, Failed, Floor, Limits, LoginCheck,
    LoginChecked, LoginRounds, LoginRoundsAnswer, MeasureFloor, ProbeCapabilities, ProviderStress, Quit, Ready,
    Broken, CallsJudged, JudgeCalls, RunCheck, RunSchedule, ScheduleDone, ScheduleHung, Snapshotted, Stalled, StepEvent, StressAnswer, SutCheck, SutChecked,
    Sweep, Swept, TakeSnapshot, Wire, decode_answer, encode_command,
)
from .waiting import PATIENCE

__all__ = ["Executor", "ExecutorError", "Limits", "StartFailed", "child_env"]

A = TypeVar("A", bound=Wire)
STALL_GRACE_S = 2.0  # past a check's deadline, for the child's Stalled report to arrive
# The directory holding the `conformance` package, installed or a checkout: the child must import this very one.
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)


def child_env(extra: Mapping[str, str] = {}, paths: Sequence[str] = ()) -> dict[str, str]:
    """The environment for a Python process of ours (the module's process, the preflight): this environment,
    `extra` over it, and PYTHONPATH leading to this package first, then `paths`."""
    parts = [PACKAGE_PARENT, *paths, os.environ.get("PYTHONPATH")]
    return {**os.environ, **extra, "PYTHONPATH": os.pathsep.join(dict.fromkeys(filter(None, parts)))}


class ExecutorError(ReportsFinding, RuntimeError):
    """The child could not be started or initialised, or died or stalled answering; the message says why."""

    outcome = "crashed"  # or "hung": the child stopped answering without dying


class StartFailed(ExecutorError):
    """The child died ("crashed") or went silent ("hung") while loading the module; its stderr holds the stacks."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class Executor:
    def __init__(self, init: ChildInit, workdir: Path, limits: Limits = Limits(), *,
                 launcher: Sequence[str] = (), cwd: str | None = None) -> None:
        self._init = init  # holds the PIN: never printed, only written to the child's stdin
        self.workdir = workdir
        self.limits = limits
        self.launcher = tuple(launcher)  # e.g. nsenter into the vendor's private namespace
        self.cwd = cwd
        self.facts: dict[str, Any] = {}  # library, token and mechanism facts from the child's first start
        self._proc: subprocess.Popen[str] | None = None
        self._retiring = False  # its actors are stuck: replaced before it runs anything again (judging aside)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._eof = False
        self.restarts = 0
        self.pids: list[int] = []

    # --- process management ----------------------------------------------------------------------------

    def _start(self, timeout: float | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._stderr_path = self.workdir / f"child-{len(self.pids)}.stderr"
        stderr = open(self._stderr_path, "w")
        self._proc = subprocess.Popen(
            [*self.launcher, sys.executable, "-X", "faulthandler", "-m", "conformance.executor.child"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, env=child_env(self._init.env),
            bufsize=1, cwd=self.cwd,
        )
        stderr.close()
        self._lines = queue.Queue()
        self._eof = False
        threading.Thread(target=self._pump, args=(self._proc, self._lines), daemon=True).start()
        self._send(self._init)
        wait = self.limits.startup_timeout if timeout is None else timeout
        reply = self._read(wait)
        if reply is None:
            cause = self._death()
            if cause == "unresponsive":
                self._abort()
                raise StartFailed(f"the module process did not finish loading the module in {wait:.0f} s", "hung")
            self._kill()
            raise StartFailed(f"the module process died while loading the module ({cause})", "crashed")
        if not isinstance(reply, Ready):
            self.close()
            # A binding error may have no text (DeviceError from C_Initialize): then its class is the cause.
            detail = (reply.detail or reply.error) if isinstance(reply, Failed) else ""
            raise ExecutorError(detail or "the module process did not start")
        self.pids.append(reply.pid)
        self.facts = self.facts or dict(reply.facts)

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        # Ctrl-C must reach the main thread: a SIGINT the kernel handed to this thread would only be acted on when
        # the main thread's wait for an answer ends (up to a check's timeout), not at once.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)  # EOF: the child is gone

    def _send(self, command: Wire) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(encode_command(command) + "\n")
        self._proc.stdin.flush()

    def _read(self, timeout: float) -> Wire | None:
        """The next answer, or None when the child closed its output (died) or said nothing for `timeout` s."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            self._eof = True
            return None
        answer = decode_answer(line)
        if isinstance(answer, Broken):  # the child exits after it; what broke was ours, not the module
            self._kill()
            raise HarnessFault(f"the harness broke in the module process: {answer.detail}")
        return answer

    def _death(self) -> str:
        """Why the child stopped answering: a signal name or exit code if it died, else 'unresponsive'."""
        assert self._proc is not None
        # After EOF the process is exiting (faulthandler may still be writing its dump): give it time to finish.
        try:
            code = self._proc.wait(timeout=10 if self._eof else 0.1)
        except subprocess.TimeoutExpired:
            return "unresponsive"
        return signal.Signals(-code).name if code < 0 else f"exit {code}"

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def ensure(self, startup_timeout: float | None = None) -> None:
        if self._retiring:
            self._kill()
            self._retiring = False
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None  # died between examples
        if self._proc is None:
            if self.pids:
                self.restarts += 1
            self._start(startup_timeout)

    def _abort(self) -> None:
        """SIGABRT, so faulthandler writes every thread's stack to the child's stderr; then make sure it is gone."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGABRT)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._kill()

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._send(Quit())
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                pass
        self._kill()

    def _stopped(self) -> str:
        """The child stopped answering: kill it; 'hung' if it was alive but silent, else 'crashed' (and why)."""
        cause = self._death()
        self._kill()
        return cause

    # --- running -----------------------------------------------------------------------------------------

    def run(self, schedule: Schedule) -> Trace:
        self.ensure()
        self._send(RunSchedule(schedule, self.limits))
        results: dict[int, StepResult] = {}
        # The child answers each step in at most a step timeout without progress (PATIENCE with it) plus the end
        # watch; it says "hung" itself before that. Silence past this bound: it cannot say anything any more.
        patience = PATIENCE * self.limits.step_timeout + self.limits.block_window + self.limits.end_watch + 10.0
        while True:
            answer = self._read(patience)
            if answer is None:
                # Dead (crashed) or silent past every bound (hung without being able to say so).
                cause = self._stopped()
                status = "hung" if cause == "unresponsive" else "crashed"
                return self._cut(schedule, results, status, crashed=None if status == "hung" else cause)
            if isinstance(answer, StepEvent):
                results[answer.result.index] = answer.result
            elif isinstance(answer, Failed):
                raise ExecutorError(answer.detail or answer.error or "executor error")
            elif isinstance(answer, ScheduleHung):
                self._kill()
                return self._cut(schedule, results, "hung", stacks=answer.stacks, at=answer.index,
                                 evidence=answer.evidence or None, inside=answer.inside)
            elif isinstance(answer, ScheduleDone):
                trace = Trace(tuple(results[i] for i in sorted(results)), reset_us=answer.reset_us,
                              run_us=answer.run_us, final=answer.final)
                if answer.restart:
                    self._retiring = True  # replaced before the next run; until then it can still be judged
                return trace

    def _cut(self, schedule: Schedule, results: dict[int, StepResult], status: str, *, crashed: str | None = None,
             stacks: str | None = None, at: int | None = None, evidence: str | None = None,
             inside: str | None = None) -> Trace:
        """The trace of an example that ended early: step `at` (default: the first that never reported) gets
        `status`, steps that reported keep their result, the rest are `not_run`."""
        if at is None:
            at = next((i for i in range(len(schedule.steps)) if i not in results), len(schedule.steps))
        out = tuple(
            StepResult(i, status, evidence=evidence, inside=inside) if i == at else results.get(i, StepResult(i, "not_run"))
            for i in range(len(schedule.steps))
        )
        return Trace(out, crashed=crashed, stacks=stacks)

    def check(self, module: str, function: str, args: Sequence[str], timeout: float,
              params: Mapping[str, Any] = {}) -> CheckAnswer:
        """Run one check's body in the child. A child silent past `timeout` gets SIGABRT, so faulthandler writes
        every thread's stack before it dies: the answer is then hung."""
        try:
            # After a crash the module is loaded afresh for this check: that is bounded by its timeout too, and a
            # module that dies, stalls or refuses while loading is this check's outcome, not a harness error.
            self.ensure(min(timeout, self.limits.startup_timeout) if self.pids else None)
        except StartFailed as exc:
            return CheckAnswer(exc.outcome, f"{exc}, before the check could run", stacks=self._stderr_tail())
        except ExecutorError as exc:
            return CheckAnswer("failed", f"the module process could not load the module for the check: {exc}")
        self._send(RunCheck(module, function, tuple(args), self.limits, dict(params), deadline_s=timeout))
        # The child says where its threads are at the deadline (Stalled, with the tap); a little grace for it.
        answer = self._read(timeout + STALL_GRACE_S)
        if isinstance(answer, CheckAnswer):
            if answer.restart:
                self._retiring = True  # the next command gets a new process
            return answer
        if answer is not None and not isinstance(answer, Stalled):  # ours, never the vendor's
            raise ExecutorError(f"the module process answered {answer.NAME!r} to a check")
        if self._eof:
            cause = self._stopped()
            return CheckAnswer("crashed", f"the module process died ({cause}) during the check",
                               stacks=self._stderr_tail())
        self._abort()
        seen = ("; the tap saw " + "; ".join(answer.threads)) if isinstance(answer, Stalled) and answer.threads else ""
        return CheckAnswer("hung", f"the check did not finish in {timeout:.0f} s (--check-timeout){seen}",
                           stacks=self._stderr_tail(), inside=answer.inside if isinstance(answer, Stalled) else None)

    def ask(self, command: Wire, answer_type: type[A], timeout: float | None = None) -> A:
        """One request/answer with the child; ExecutorError (outcome crashed or hung) if it dies or stays silent
        (each of starting it and answering bounded by `timeout`, default the startup timeout)."""
        wait = self.limits.startup_timeout if timeout is None else timeout
        self.ensure(wait)
        self._send(command)
        answer = self._read(wait)
        if not isinstance(answer, answer_type):
            cause = self._stopped()
            error = ExecutorError(f"the module process died or stalled during {command.NAME} ({cause})")
            error.outcome = "hung" if cause == "unresponsive" else "crashed"
            raise error
        return answer

    def judge_calls(self) -> CallsJudged:
        """The module judged alone on its answers to the last check's or schedule's calls (executor/rawjudge.py).
        Not available (nothing judged) when the process that made them is gone."""
        if self._proc is None or self._proc.poll() is not None:
            return CallsJudged(0, unavailable="the module's process that made the calls is gone")
        self._send(JudgeCalls())  # also to a process about to be replaced (its actors stuck): its log is intact
        answer = self._read(self.limits.startup_timeout)
        if not isinstance(answer, CallsJudged):
            self._kill()
            return CallsJudged(0, unavailable="the module's process did not answer")
        return answer

    def capabilities(self) -> dict[str, str]:
        """The token's missing capabilities (capability -> why), probed once in the child; kept in facts and
        handed to every process started later. Where probing them took the process down, each is probed alone
        in a process of its own, and the one that crashes or hangs it is missing for that reason."""
        if "capabilities_missing" not in self.facts:
            try:
                missing = dict(self.ask(ProbeCapabilities(), Capabilities).missing)
            except ExecutorError:
                missing = self._capabilities_one_by_one()
            self.facts["capabilities_missing"] = missing
            self._init = replace(self._init, capabilities=missing)
        return self.facts["capabilities_missing"]

    def _capabilities_one_by_one(self) -> dict[str, str]:
        from ..live.capabilities import PROBED

        missing: dict[str, str] = {}
        for cap in PROBED:
            try:
                missing.update(self.ask(ProbeCapabilities(only=(cap,)), Capabilities).missing)
            except ExecutorError as exc:
                missing[cap] = f"probing it took the module's process down ({exc})"
        self._retiring = True  # the process that answered last probed alone: the next one starts settled
        return missing

    def characterise(self) -> Characterisation:
        """The model parameters measured on this setup (live/characterise.py), once; kept in facts."""
        if "characterised" not in self.facts:
            self.facts["characterised"] = self.ask(Characterise(), Characterised).characterisation.to_dict()
        return Characterisation.from_dict(self.facts["characterised"])

    def snapshot(self, timeout: float | None = None) -> Mapping[str, Any]:
        return self.ask(TakeSnapshot(), Snapshotted, timeout).snapshot

    def sweep(self, prefix: str | None = None) -> int:
        return self.ask(Sweep(prefix), Swept).destroyed

    def sut_problem(self) -> str | None:
        return self.ask(SutCheck(), SutChecked).problem

    def login_rounds(self, rounds: int, start_at: float, timeout: float) -> LoginRoundsAnswer:
        return self.ask(LoginRounds(rounds, start_at), LoginRoundsAnswer, timeout)

    def app_step(self, op: str, timeout: float) -> str:
        return self.ask(AppStep(op), AppAnswer, timeout).outcome

    def sibling(self, name: str, env: Mapping[str, str] = {}, sut: str | None = None) -> Executor:
        """Another process on the same module and token (another application), launched as this one is; `env`
        overrides some of its environment, `sut` its session provider. Not started yet."""
        init = replace(self._init, env={**self._init.env, **env}, sut=self._init.sut if sut is None else sut)
        return Executor(init, self.workdir.with_name(f"{self.workdir.name}-{name}"), self.limits,
                        launcher=self.launcher, cwd=self.cwd)

    def login_check(self) -> LoginChecked:
        self.ensure()
        self._send(LoginCheck())
        answer = self._read(self.limits.startup_timeout)
        if isinstance(answer, LoginChecked):
            return answer
        return LoginChecked("other", f"the module process died ({self._stopped()}) while logging in")

    def _stderr_tail(self, limit: int = 20000) -> str:
        """faulthandler's dump (all threads) from the dead child's stderr, bounded."""
        try:
            text = self._stderr_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""
        return text[-limit:]

    def queue_floor(self, n: int = 20000) -> float:
        """The child's bare thread hand-off round trip in µs (benchmark baseline)."""
        return self.ask(MeasureFloor(n), Floor, 60.0).round_trip_us

    def stress(self, command: ProviderStress | CallStress, timeout: float) -> StressAnswer:
        self.ensure()
        self._send(command)
        answer = self._read(timeout)
        if isinstance(answer, StressAnswer):
            if answer.restart:
                self._kill()  # it exits on its own; gone before anything else is asked of a new one
            return answer
        cause = self._stopped()
        return StressAnswer("hung" if cause == "unresponsive" else "crashed", cause=cause)
