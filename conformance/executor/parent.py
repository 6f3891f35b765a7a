"""Parent side of the executor: a child process that holds the module and runs schedules; crash- and hang-proof.

The pytest process never calls the module during a scenario. It sends a Schedule, reads back step results as
they happen, and turns a dead child into `crashed` (with the signal) and a stuck one into `hung` (with every
thread's stack), then starts a fresh child for the next example.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..engine.schedule import Schedule, StepResult, Trace

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)


class ExecutorError(RuntimeError):
    """The child could not be started or initialised, or died or stalled answering; the message says why."""

    status = "crashed"  # or "hung": the child stopped answering without dying


class StartFailed(ExecutorError):
    """The child died ("crashed") or went silent ("hung") while loading the module; its stderr holds the stacks."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    block_window: float = 0.3  # how long a call expected to block is watched before the executor moves on
    step_timeout: float = 1.0  # a call not expected to block that takes longer is `hung`
    startup_timeout: float = 60.0


class Executor:
    def __init__(self, init: dict[str, Any], workdir: Path, limits: Limits = Limits(), *,
                 launcher: Sequence[str] = (), cwd: str | None = None) -> None:
        self._init = init  # holds the PIN: never printed, only written to the child's stdin
        self.workdir = workdir
        self.limits = limits
        self.launcher = tuple(launcher)  # e.g. nsenter into the vendor's private namespace
        self.cwd = cwd
        self.facts: dict[str, Any] = {}  # library, token and mechanism facts from the child's first start
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._eof = False
        self.restarts = 0
        self.pids: list[int] = []

    # --- process management ----------------------------------------------------------------------------

    def _start(self, timeout: float | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        stderr = open(self.workdir / f"child-{len(self.pids)}.stderr", "w")
        env = {**os.environ, **self._init.get("env", {}),
               "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))}
        self._stderr_path = self.workdir / f"child-{len(self.pids)}.stderr"
        self._proc = subprocess.Popen(
            [*self.launcher, sys.executable, "-X", "faulthandler", "-m", "conformance.executor.child"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, bufsize=1, cwd=self.cwd,
        )
        stderr.close()
        self._lines = queue.Queue()
        self._eof = False
        threading.Thread(target=self._pump, args=(self._proc, self._lines), daemon=True).start()
        self._send({"cmd": "init", **self._init})
        wait = self.limits.startup_timeout if timeout is None else timeout
        reply = self._read(wait)
        if reply is None:
            cause = self._death()
            if cause == "unresponsive":
                self._abort()
                raise StartFailed(f"the module process did not finish loading the module in {wait:.0f} s", "hung")
            self._kill()
            raise StartFailed(f"the module process died while loading the module ({cause})", "crashed")
        if reply.get("event") != "ready":
            self.close()
            # A binding error may have no text (DeviceError from C_Initialize): then its class is the cause.
            raise ExecutorError(reply.get("detail") or reply.get("error") or "the module process did not start")
        self.pids.append(reply["pid"])
        self.facts = self.facts or reply.get("facts", {})

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)  # EOF: the child is gone

    def _send(self, msg: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(msg) + "\n")
        self._proc.stdin.flush()

    def _read(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or None when the child closed its output (died) or said nothing for `timeout` s."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            self._eof = True
            return None
        return json.loads(line)

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
                self._send({"cmd": "quit"})
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                pass
        self._kill()

    # --- running -----------------------------------------------------------------------------------------

    def run(self, schedule: Schedule) -> Trace:
        self.ensure()
        self._send({"cmd": "run", "schedule": schedule.to_dict(), "block_window": self.limits.block_window,
                    "step_timeout": self.limits.step_timeout})
        results: dict[int, StepResult] = {}
        budget = len(schedule.steps) * (self.limits.step_timeout + self.limits.block_window) + 10.0
        deadline = time.monotonic() + budget
        while True:
            msg = self._read(max(0.0, deadline - time.monotonic()))
            if msg is None:
                # Dead (crashed) or silent past every bound (hung without being able to say so).
                cause = self._death()
                self._kill()
                status = "hung" if cause == "unresponsive" else "crashed"
                return self._cut(schedule, results, status, crashed=None if status == "hung" else cause)
            event = msg.pop("event")
            if event == "step":
                result = StepResult.from_dict(msg)
                results[result.index] = result
            elif event == "error":
                raise ExecutorError(msg.get("detail") or msg.get("error", "executor error"))
            elif event == "hung":
                self._kill()
                return self._cut(schedule, results, "hung", stacks=msg["stacks"], at=msg["index"])
            elif event == "done":
                trace = Trace(tuple(results[i] for i in sorted(results)), reset_us=msg["reset_us"],
                              run_us=msg.get("run_us", 0.0), final=msg["final"])
                if msg.get("restart"):
                    self._kill()
                return trace

    def _cut(self, schedule: Schedule, results: dict[int, StepResult], status: str, *, crashed: str | None = None,
             stacks: str | None = None, at: int | None = None) -> Trace:
        """The trace of an example that ended early: step `at` (default: the first that never reported) gets
        `status`, steps that reported keep their result, the rest are `not_run`."""
        if at is None:
            at = next((i for i in range(len(schedule.steps)) if i not in results), len(schedule.steps))
        out = tuple(
            StepResult(i, status) if i == at else results.get(i, StepResult(i, "not_run"))
            for i in range(len(schedule.steps))
        )
        return Trace(out, crashed=crashed, stacks=stacks)

    def check(self, module: str, function: str, args: Sequence[str], timeout: float) -> dict[str, Any]:
        """Run one check's body in the child: {"outcome": passed|failed|skipped|crashed|hung, "message", ...}.
        A child silent past `timeout` gets SIGABRT, so faulthandler writes every thread's stack before it dies."""
        try:
            # After a crash the module is loaded afresh for this check: that is bounded by its timeout too, and a
            # module that dies, stalls or refuses while loading is this check's outcome, not a harness error.
            self.ensure(min(timeout, self.limits.startup_timeout) if self.pids else None)
        except StartFailed as exc:
            return {"outcome": exc.status, "message": f"{exc}, before the check could run", "stacks": self._stderr_tail()}
        except ExecutorError as exc:
            return {"outcome": "failed", "message": f"the module process could not load the module for the check: {exc}"}
        self._send({"cmd": "check", "module": module, "function": function, "args": list(args),
                    "limits": {"block_window": self.limits.block_window, "step_timeout": self.limits.step_timeout}})
        msg = self._read(timeout)
        if msg is not None:
            msg.pop("event", None)
            return msg
        if self._eof:
            cause = self._death()
            self._kill()
            return {"outcome": "crashed", "message": f"the module process died ({cause}) during the check",
                    "stacks": self._stderr_tail()}
        self._abort()
        return {"outcome": "hung", "message": f"the check did not finish in {timeout:.0f} s (--check-timeout)",
                "stacks": self._stderr_tail()}

    def capabilities(self) -> dict[str, str]:
        """The token's missing capabilities (capability -> why), probed once in the child; kept in facts."""
        if "capabilities_missing" not in self.facts:
            self.facts["capabilities_missing"] = self.ask("capabilities")["missing"]
        return self.facts["capabilities_missing"]

    def sibling(self, name: str, env: Mapping[str, str]) -> Executor:
        """Another process on the same module and token (another application), launched as this one is; `env`
        overrides some of its environment. Not started yet."""
        init = {**self._init, "env": {**self._init["env"], **env}}
        return Executor(init, self.workdir.with_name(f"{self.workdir.name}-{name}"), self.limits,
                        launcher=self.launcher, cwd=self.cwd)

    def ask(self, cmd: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """One request/answer with the child (snapshot, sweep); ExecutorError if it dies or stays silent (each of
        starting it and answering bounded by `timeout`, default the startup timeout)."""
        wait = self.limits.startup_timeout if timeout is None else timeout
        self.ensure(wait)
        self._send({"cmd": cmd, **args})
        msg = self._read(wait)
        if msg is None or msg.get("event") != cmd:
            cause = self._death()
            self._kill()
            error = ExecutorError(f"the module process died or stalled during {cmd} ({cause})")
            error.status = "hung" if cause == "unresponsive" else "crashed"
            raise error
        msg.pop("event")
        return msg

    def login_check(self) -> dict[str, Any]:
        self.ensure()
        self._send({"cmd": "login_check"})
        msg = self._read(self.limits.startup_timeout)
        if msg is None:
            cause = self._death()
            self._kill()
            return {"problem": "other", "error": f"the module process died ({cause}) while logging in"}
        return msg

    def _stderr_tail(self, limit: int = 20000) -> str:
        """faulthandler's dump (all threads) from the dead child's stderr, bounded."""
        try:
            text = self._stderr_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""
        return text[-limit:]

    def queue_floor(self, n: int = 20000) -> float:
        """The child's bare thread hand-off round trip in µs (benchmark baseline)."""
        self.ensure()
        self._send({"cmd": "floor", "n": n})
        msg = self._read(60.0)
        if msg is None or msg.get("event") != "floor":
            raise ExecutorError("executor child did not measure the queue floor")
        return float(msg["round_trip_us"])

    def stress(self, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.ensure()
        self._send({"cmd": "stress", **params})
        msg = self._read(timeout)
        if msg is None:
            cause = self._death()
            self._kill()
            return {"status": "hung" if cause == "unresponsive" else "crashed", "cause": cause}
        msg.pop("event", None)
        return msg
