"""One worker program (worker.py) seen from the runner: started through the vendor's launcher in its environment,
asked one message at a time. A worker that dies answers `Ended("crashed", "SIGSEGV")`, one that stops answering is
killed and answers `Ended("hung", ...)`: the runner turns either into a row, never an abort."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..executor.parent import child_env
from .protocol import Start, decode, encode

START_S = 120.0  # loading the module and making an RSA-3072 key (tpm2: seconds per key) before Ready


@dataclass(frozen=True)
class Ended:
    """The worker is gone: crashed (with the signal or exit status) or hung (it was killed)."""

    outcome: str
    detail: str


class Unusable(Exception):
    """The worker could not load the module or use the token: (error class name, detail), for the runner to word."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}" if detail else error)
        self.error, self.detail = error, detail


def signal_name(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class WorkerProcess:
    def __init__(self, start: Start, pin: str, *, env: Mapping[str, str], launcher: Sequence[str] = (),
                 cwd: str | None = None, log: Path) -> None:
        self.start, self._pin, self._env, self._launcher, self._cwd, self.log = start, pin, env, launcher, cwd, log
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""

    def open(self) -> Any:
        """Start it and return its first answer (Ready, a Stopped set-up, or Ended); Unusable if the module or
        token cannot be used."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as stderr:
            self._process = subprocess.Popen(
                [*self._launcher, sys.executable, "-X", "faulthandler", "-m", "conformance.bench.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=child_env(self._env), cwd=self._cwd)
        self._buffer = b""
        self._write({"start": self.start.to_dict(), "pin": self._pin})
        first = self._read(START_S)
        if isinstance(first, dict) and "unusable" in first:
            self.close()
            raise Unusable(str(first["unusable"].get("error", "")), str(first["unusable"].get("detail", "")))
        return first if isinstance(first, Ended) else decode(first)

    def ask(self, message: Any, wait_s: float) -> Any:
        """Send a protocol message; its answer (decoded), a plain dict for the untyped ones, or Ended."""
        if not self._write(encode(message)):
            return self._ended(0.0)
        answer = self._read(wait_s)
        if isinstance(answer, Ended):
            return answer
        try:
            return decode(answer)
        except ValueError:
            return answer

    def _write(self, data: dict[str, Any]) -> bool:
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write((json.dumps(data) + "\n").encode())
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def _read(self, wait_s: float) -> dict[str, Any] | Ended:
        process = self._process
        assert process is not None and process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + wait_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.kill()
                return Ended("hung", f"no answer in {wait_s:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                return self._ended(5.0)
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:
            self.kill()
            return Ended("error", f"the worker wrote {line[:80]!r}, not a message; a harness bug — please report it")

    def _ended(self, wait_s: float) -> Ended:
        assert self._process is not None
        try:
            code = self._process.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return Ended("hung", "closed its output but did not exit")
        return Ended("crashed", signal_name(code))

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self, seconds: float) -> int | None:
        assert self._process is not None
        try:
            return self._process.wait(seconds)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def close(self) -> None:
        """Ask it to clean up (token objects, sessions) and exit; killed if it does not in time."""
        if self.alive:
            if self._write({"stop": True}):
                self._read(30.0)
            if self.wait(10.0) is None:
                self.kill()
        for pipe in (self._process.stdin, self._process.stdout) if self._process else ():
            if pipe is not None:
                pipe.close()
