"""The module's process: reads commands on stdin, answers on stdout, one JSON line each (protocol.py).

Run as `python -m conformance.executor.child`; the parent (parent.py) starts it. The first command is ChildInit,
which carries the PIN (on stdin: never on the command line or in the environment; it never leaves this process);
every later command is dispatched through HANDLERS. Anything here may crash or hang with the module: the parent
survives and reports it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Callable

from ..live import integrity
from ..live.groundtruth import GroundTruth, GroundTruthError
from ..live.characterise import characterise
from ..live.tokens import describe
from ..outcomes import describe as describe_fault, ours
from ..pins import redact, redact_data
from .actors import queue_floor
from .applications import app_step, login_rounds
from .checkrun import login_check, run_check
from .host import ModuleHost
from .latency import measure
from .protocol import (
    AppStep, Broken, CallStress, Capabilities, Characterise, Characterised, CheckAnswer, ChildInit, Failed, JudgeCalls, Floor, LoginCheck, LoginRounds, MeasureFloor,
    MeasureLatency, Measured, ProbeCapabilities, ProviderStress, Quit, Ready, RunCheck, RunSchedule, Snapshotted, Stalled, StressAnswer, SutCheck, SutChecked, Sweep,
    Swept, TakeSnapshot, Wire, decode_command, encode_answer,
)
from .rawjudge import judge_last
from .runner import run_schedule
from .waiting import Watchdog
from .stress import run_calls, run_stress

_STDOUT = sys.stdout.fileno()  # until main() gives the protocol a private copy (_own_stdout)
_WRITING = threading.Lock()
RESTART_EXIT = 3  # the parent reads a dead child as crashed; this one only says threads are stuck for good
BROKEN_EXIT = 5  # after a Broken answer


def _emit(answer: Wire) -> None:
    # One unbuffered write per message: each step's result is out of the process before the next step starts,
    # so a crash loses nothing already done. Locked: a watchdog thread may write too.
    line = (encode_answer(answer) + "\n").encode()
    with _WRITING:
        os.write(_STDOUT, line)


def _snapshot(host: ModuleHost, command: TakeSnapshot) -> Snapshotted:
    host.live.reset()
    init = host.init
    return Snapshotted(integrity.take(host.lib, init.token_label, init.token_uri, host.pin).to_dict())


def _sweep(host: ModuleHost, command: Sweep) -> Swept:
    host.live.reset()
    init = host.init
    return Swept(integrity.sweep(host.lib, init.token_label, init.token_uri, host.pin,
                                 command.prefix or integrity.LABEL_PREFIX))


def _stress(run: Callable[[ModuleHost, ProviderStress | CallStress], Wire]) -> Callable[[ModuleHost, Wire], None]:
    def handle(host: ModuleHost, command: Wire) -> None:
        start = host.watching()
        try:
            answer = run(host, command)  # type: ignore[arg-type]
        except GroundTruthError as exc:  # the module refused one of the harness's own calls: a finding, with the log
            answer = StressAnswer("failed", (f"the module answered the harness's own call: {exc}",))
        host.watched(start)
        _emit(answer)
        if getattr(answer, "restart", False):
            os._exit(RESTART_EXIT)  # stress threads are stuck: this process cannot be reused
    return handle


def _stalled(lines: tuple[str, ...], held: tuple[str, ...]) -> None:
    # The module holds the call, and is the one to blame, only where one thread is inside it: with several in it
    # at once under python-pkcs11's C_Initialize(NULL) (no concurrent calls promised, v3.0 §5.4) the check's own
    # layer stays, with the positions quoted.
    _emit(Stalled(lines, held[0] if len(held) == 1 else None))


def _check(host: ModuleHost, command: RunCheck) -> CheckAnswer:
    """A check body; with the tap, a watchdog says at the deadline where each thread is (which call the module
    holds), before the parent aborts this process."""
    watchdog = (Watchdog(host.calls, command.deadline_s, _stalled)
                if host.calls is not None and command.deadline_s else None)
    start = host.watching()
    try:
        return run_check(host.live, command)
    finally:
        host.watched(start)
        if watchdog is not None:
            watchdog.cancel()


def _schedule(host: ModuleHost, command: RunSchedule) -> None:
    start = host.watching()
    run_schedule(host, command, _emit)
    host.watched(start)


def _answering(handler: Callable[[ModuleHost, Wire], Wire]) -> Callable[[ModuleHost, Wire], None]:
    return lambda host, command: _emit(handler(host, command))


# command -> what the module's process does with it (ChildInit and Quit are handled by main()).
HANDLERS: dict[type[Wire], Callable[[ModuleHost, Wire], None]] = {
    RunCheck: _answering(_check),  # type: ignore[arg-type]
    RunSchedule: _schedule,  # type: ignore[arg-type]
    JudgeCalls: _answering(judge_last),  # type: ignore[arg-type]
    ProviderStress: _stress(run_stress),  # type: ignore[arg-type]
    CallStress: _stress(run_calls),  # type: ignore[arg-type]
    LoginRounds: _answering(login_rounds),  # type: ignore[arg-type]
    AppStep: _answering(app_step),  # type: ignore[arg-type]
    TakeSnapshot: _answering(_snapshot),  # type: ignore[arg-type]
    Sweep: _answering(_sweep),  # type: ignore[arg-type]
    SutCheck: _answering(lambda host, c: SutChecked(host.sut_check())),
    ProbeCapabilities: _answering(lambda host, c: Capabilities(host.live.capabilities_only(c.only) if c.only
                                                               else host.live.missing_capabilities())),
    Characterise: _answering(lambda host, c: Characterised(characterise(host.live))),
    LoginCheck: _answering(lambda host, c: login_check(host.live)),
    MeasureFloor: _answering(lambda host, c: Floor(queue_floor(c.n))),  # type: ignore[attr-defined]
    MeasureLatency: _answering(lambda host, c: Measured(measure(host, c))),  # type: ignore[arg-type]
}


def _start(init: ChildInit) -> ModuleHost | None:
    """Load the module and find the token; Ready with the facts, or Failed (PIN redacted)."""
    try:
        host = ModuleHost(init)
        facts = describe(host.lib, host.token)
        if init.real_module != init.module:
            # Under p11-kit the binding sees the wrapper's C_GetInfo: record the module's own (the same instance
            # the wrapper loaded), and the wrapper's beside it where it differs (the tap and the spy pass it on).
            own = GroundTruth(init.real_module).library_info()
            if own != facts["library"]:
                facts["loaded_library"] = facts["library"]
                facts["library"] = own
    except Exception as exc:  # reported as data; the parent turns it into a clear error
        _emit(Failed(type(exc).__name__, redact(str(exc)[:500], [init.pin])))
        return None
    _emit(Ready(os.getpid(), redact_data(json.loads(json.dumps(facts)), [init.pin])))
    return host


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the pytest process that started it dies, even by kill -9 — a child stuck
    in the module would otherwise outlive the run, holding sessions (and their objects) on the token."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(4)


def _own_stdout() -> None:
    """The answers get a private copy of stdout, and fd 1 then goes to stderr: whatever a check body, a library or
    the module itself (C printf) prints never lands between two answers (it shifted every later answer by one)."""
    global _STDOUT
    _STDOUT = os.dup(sys.stdout.fileno())
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


def main() -> int:
    _die_with_parent()
    _own_stdout()
    host: ModuleHost | None = None
    for line in sys.stdin:
        command = decode_command(line)
        if isinstance(command, Quit):
            break
        if isinstance(command, ChildInit):
            host = _start(command)
            if host is None:
                return 2
        elif host is not None:
            try:
                HANDLERS[type(command)](host, command)
            except Exception as exc:
                if not ours(exc):
                    raise
                # Our own bug (or an incompatibility with this python-pkcs11): said as such, never left for the
                # parent to read as the module crashing. The process state is unknown after it: exit.
                _emit(Broken(redact(describe_fault(exc), [host.pin])))
                sys.stdout.flush()
                os._exit(BROKEN_EXIT)
    sys.stdout.flush()
    os._exit(0)  # actor threads may be parked inside the module; do not wait for them


if __name__ == "__main__":
    sys.exit(main())
