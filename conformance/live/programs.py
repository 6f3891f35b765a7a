"""The plumbing our helper programs share (the runtime programs, the benchmark's worker): one JSON line per answer
on a private copy of stdout, and death with the parent process. Imported before anything patches the standard
library (a greenlet runtime), so the writes stay native."""

from __future__ import annotations

import json
import os
from typing import Any

WRITE = os.write  # eventlet greens os.write: on a pipe whose reader died it retries for good instead of raising


class Answers:
    """One JSON line per event on a private copy of stdout (fd 1 goes to stderr: a module's printf never lands
    between two answers); the PIN is masked in every string, which is where a library could echo it — never in the
    JSON text, where a PIN of digits would also match inside a number and break the line."""

    def __init__(self, pin: str) -> None:
        self._fd = os.dup(1)
        os.dup2(2, 1)
        self._pin = pin

    def __call__(self, **event: Any) -> None:
        WRITE(self._fd, (json.dumps(self._masked(event)) + "\n").encode())

    def _masked(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(self._pin, "***") if self._pin else value
        if isinstance(value, dict):
            return {k: self._masked(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._masked(v) for v in value]
        return value


def die_with_parent() -> None:
    """Linux: SIGKILL this program when the process that started it dies (a run aborted, a check at its deadline):
    a program parked in the module must not outlive the run holding sessions on the token."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        return
