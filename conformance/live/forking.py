"""Running part of a check in a forked process, as a service's workers run: `os.fork` (a gunicorn --preload worker,
celery prefork) or multiprocessing's "fork" context. The forked process answers through a pipe; it is isolated as
the module's process is: a child that dies is `crashed:SIGNAL`, one that does not finish is `hung` (killed).

The child ends the way its kind of worker ends: a forked worker runs the interpreter's exit handlers — python-pkcs11
and the module may call C_Finalize there — then leaves without returning into the parent's code; a
multiprocessing worker leaves through multiprocessing (which runs no atexit handlers)."""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import select
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable

import pkcs11

from .probes import OK, refusal_name

# A forked child's step (one call, or its start) that has not answered after this long is hung — at least this,
# or the vendor's step timeout (derived from the module's measured latency and login time) where that is longer.
STEP_FLOOR_S = 5.0


@dataclass(frozen=True)
class ChildResult:
    """What the forked child answered: its steps' outcomes in order, or how it ended without answering."""

    steps: tuple[tuple[str, str], ...] = ()  # (step, outcome)
    ended: str = OK  # ok | crashed:SIGNAL | exit N | hung

    def outcome(self, step: str) -> str | None:
        return dict(self.steps).get(step)

    def summary(self) -> dict[str, str]:
        return {**dict(self.steps), **({"ended": self.ended} if self.ended != OK else {})}


def attempt(call: Callable[[], Any]) -> str:
    """'ok' or what the call raised: a PKCS#11 refusal by name, anything else by its class."""
    try:
        call()
    except pkcs11.exceptions.PKCS11Error as exc:
        return refusal_name(exc)
    except Exception as exc:  # noqa: BLE001 - in the child anything raised is an outcome to report
        return type(exc).__name__
    return OK


Steps = Callable[[Callable[[str, Callable[[], Any]], str]], None]


def in_forked_child(steps: Steps, limits: Any, *, how: str = "fork") -> ChildResult:
    """Run `steps(step)` in a forked process: `step(name, call)` runs one call there and reports its outcome at
    once (so a crash or hang later still shows what came before). how: "fork" (os.fork: the child runs the
    interpreter's exit handlers) or "multiprocessing" (its "fork" context). `limits`: the vendor's derived waits."""
    step_s = max(STEP_FLOOR_S, float(getattr(limits, "step_timeout", 0.0) or 0.0))
    read, write = os.pipe()
    if how == "multiprocessing":
        process = multiprocessing.get_context("fork").Process(target=_child, args=(steps, write, False), daemon=True)
        process.start()
        os.close(write)
        return _collect(read, step_s, lambda: _joined(process), process.kill)
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        _child(steps, write, True)
        os._exit(0)
    os.close(write)
    return _collect(read, step_s, lambda: _wait(pid), lambda: os.kill(pid, signal.SIGKILL))


def _child(steps: Steps, write: int, run_exit_handlers: bool) -> None:
    code = 0
    try:
        def step(name: str, call: Callable[[], Any]) -> str:
            outcome = attempt(call)
            os.write(write, (json.dumps([name, outcome]) + "\n").encode())
            return outcome
        steps(step)
    except BaseException:  # noqa: BLE001 - reported by the parent as the exit code
        code = 3
    finally:
        os.close(write)
    if run_exit_handlers:
        # As the interpreter's exit does (python-pkcs11 finalises the module there); CPython's own entry point for
        # it, as the child must not return into the parent's code to exit.
        atexit._run_exitfuncs()
        os._exit(code)
    if code:
        raise SystemExit(code)


def _collect(read: int, step_s: float, reap: Callable[[], int | None], kill: Callable[[], None]) -> ChildResult:
    """The child's answers, each within `step_s` of the one before; then how it ended."""
    steps: list[tuple[str, str]] = []
    buffer = b""
    with os.fdopen(read, "rb", buffering=0) as pipe:
        while True:
            if not select.select([pipe], [], [], step_s)[0]:
                kill()
                reap()
                return ChildResult(tuple(steps), "hung")  # no answer within step_s of its last one
            chunk = pipe.read(65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            steps += [tuple(json.loads(line)) for line in lines if line]  # type: ignore[misc]
    code = reap()
    if code is None or code == 0:
        return ChildResult(tuple(steps))
    return ChildResult(tuple(steps), f"crashed:{signal.Signals(-code).name}" if code < 0 else f"exit {code}")


def _joined(process: Any) -> int | None:
    process.join(10)
    return process.exitcode


def _wait(pid: int) -> int:
    """The child's exit code (negative: the signal), waiting at most a few seconds after its pipe closed."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status)
