"""Starting a runtime program and reading its answers, from a check body in the module's process: a program that
dies is `crashed:SIGNAL`, one that stops answering is `hung` (killed) — the check reports either as data."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from typing import Any

from ..outcomes import HarnessFault
from .plan import ActResult, Job, Outcome, Runtime, Start

# An answer that has not come this long after the one before means the program is stuck (at least this, or the
# vendor's derived step timeout where longer); loading a module (tpm2: its store) and an RSA keygen get longer.
STEP_FLOOR_S = 10.0
START_S = 60.0
KEYGEN_S = 60.0


class RuntimeBroken(HarnessFault):
    """The runtime program's own code failed: the harness's error, never a finding."""


class RuntimeUnavailable(RuntimeError):
    """The runtime program could not use the module (the message says why)."""


class RuntimeNotInstalled(RuntimeUnavailable):
    """The runtime's library is not installed; the message says what to install."""


class RuntimeProcess:
    """One runtime program: started, then handed jobs one by one (`run`); restarted after it died."""

    def __init__(self, runtime: Runtime, module: str, token_label: str, pin: str, limits: Any = None) -> None:
        self.runtime = runtime
        self._start = Start(runtime, module, token_label)
        self._pin = pin
        self.step_s = max(STEP_FLOOR_S, float(getattr(limits, "step_timeout", 0.0) or 0.0))
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""

    def __enter__(self) -> RuntimeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the program (RuntimeUnavailable if its runtime is not installed or the module will not load)."""
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen([sys.executable, "-m", "conformance.runtimes.program"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._buffer = b""
        self._send({"start": self._start.to_dict(), "pin": self._pin})
        kind, value = self._read(START_S)
        if kind == "unavailable":
            self.close()
            raise RuntimeNotInstalled(value)
        if kind == "failed" or kind != "ready":
            self.close()
            raise RuntimeUnavailable(f"the {self.runtime.id} program could not use the module: {value or kind}")

    def _send(self, data: dict[str, Any]) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write((json.dumps(data) + "\n").encode())
        self._process.stdin.flush()

    def _read(self, wait_s: float) -> tuple[str, Any]:
        """The next answer as (kind, value); ("ended", how) when the program died or stopped answering."""
        process = self._process
        assert process is not None and process.stdout is not None
        fd = process.stdout.fileno()
        while b"\n" not in self._buffer:
            if not select.select([fd], [], [], wait_s)[0]:
                process.kill()
                process.wait()
                return "ended", "hung"
            chunk = os.read(fd, 65536)
            if not chunk:
                code = process.wait()
                return "ended", (f"crashed:{signal.Signals(-code).name}" if code < 0 else f"exit {code}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        event = json.loads(line)
        (kind, value), *rest = event.items()
        return kind, (event if rest else value)

    def run(self, job: Job) -> Outcome:
        """The job's outcome, as far as the program got; the program is restarted for the next job if it died, and
        for each job where the runtime patches after the sessions (only a fresh program has sessions from before)."""
        if self._process is None or self._process.poll() is not None:
            self.start()
        self._send(job.to_dict())
        results: dict[int, ActResult] = {}
        after: tuple[str, ...] = ()
        while True:
            wait = KEYGEN_S if any(a.op == "keygen" for a in job.acts) else self.step_s
            kind, value = self._read(wait)
            if kind == "result":
                result = ActResult.from_dict(value)
                results[result.index] = result
            elif kind == "late":
                earlier = results[value["index"]]
                results[earlier.index] = ActResult(earlier.index, "blocked", value["completed_after"],
                                                   value["outcome"], earlier.duration_ms, earlier.gap_ms, earlier.ticks)
            elif kind == "after":
                after = tuple(value)
            elif kind == "broken":
                self.close()
                raise RuntimeBroken(f"the {self.runtime.id} runtime program broke: {value}")
            elif kind == "done":
                outcome = Outcome(tuple(results[i] for i in sorted(results)), after,
                                  offload_threads=int(value["offload_threads"]))
                if self.runtime.patch == "after_sessions":
                    self.close()
                return outcome
            else:  # ended
                self._process = None
                return Outcome(tuple(results[i] for i in sorted(results)), after, ended=str(value),
                               detail=self._stderr_tail())

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""
        lines = [line for line in text.splitlines() if line.strip() and self._pin not in line]
        return "\n".join(lines[-5:])

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()


def for_vendor(vendor: Any, runtime: Runtime, limits: Any = None) -> RuntimeProcess:
    """A runtime program on the check's vendor (the module path and token the module's process uses; its
    environment — SOFTHSM2_CONF, p11-kit's config — is inherited)."""
    return RuntimeProcess(runtime, vendor.module, vendor.token.label, vendor.pin, limits)
