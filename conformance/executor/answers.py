"""Every answer the module's process sends back. An answer about a check, a stress run or an application step has
an `outcome` (passed, failed, skipped, error, crashed, hung, or what the step did)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from ..engine.params import Characterisation
from ..engine.schedule import StepResult
from .messages import Latency
from .wire import Wire

# --- answers (module's process -> pytest process) ---------------------------------------------------------------

@dataclass(frozen=True)
class Ready(Wire):
    NAME: ClassVar[str] = "ready"

    pid: int
    facts: Mapping[str, Any] = field(default_factory=dict)  # library, token and mechanism facts (no secrets)


@dataclass(frozen=True)
class Broken(Wire):
    """The harness's own code raised in the module's process (conformance.ours): the exception and where, PIN
    redacted. The process exits after sending it; the parent raises HarnessFault (outcome error, never a finding)."""

    NAME: ClassVar[str] = "broken"

    detail: str


@dataclass(frozen=True)
class Failed(Wire):
    """A command could not be carried out (the module does not load, a provider cannot be made): the exception
    class and a one-line detail, PIN redacted."""

    NAME: ClassVar[str] = "error"

    error: str
    detail: str = ""


@dataclass(frozen=True)
class CheckAnswer(Wire):
    NAME: ClassVar[str] = "check"

    outcome: str  # passed | failed | skipped | error (ours: no import, or harness code raised) | crashed | hung
    message: str = ""
    where: str = ""  # the check's own frames, innermost last
    observed: Any = None
    has_observed: bool = False  # observe() was called (None is a value a check may observe)
    stacks: str = ""  # every thread's stack, after a crash or hang
    inside: str | None = None  # hung: the PKCS#11 function the tap saw a thread held in (the module's finding)
    restart: bool = False  # the check left the module's process unfit for the next one (it forked): replace it


@dataclass(frozen=True)
class Stalled(Wire):
    """A check body still running at its deadline, sent by the module's process just before the parent aborts it:
    where each thread is, as the tap sees it (waiting.positions)."""

    NAME: ClassVar[str] = "stalled"
    _tuples: ClassVar[frozenset[str]] = frozenset({"threads"})

    threads: tuple[str, ...]  # one line per thread that made PKCS#11 calls: "MainThread: inside C_X for 3.0 s"
    inside: str | None = None  # the PKCS#11 function the one thread inside the module is held in (None: no
    # thread, or several at once)


@dataclass(frozen=True)
class StepEvent(Wire):
    NAME: ClassVar[str] = "step"
    _nested: ClassVar[Mapping[str, Any]] = {"result": StepResult}

    result: StepResult


@dataclass(frozen=True)
class ScheduleDone(Wire):
    NAME: ClassVar[str] = "done"

    final: Mapping[str, Any]  # end-of-example ground truth (Trace.final)
    reset_us: float
    run_us: float
    restart: bool = False  # an actor is stuck for good: the parent must start a new process


@dataclass(frozen=True)
class ScheduleHung(Wire):
    NAME: ClassVar[str] = "hung"

    index: int
    stacks: str
    evidence: str = ""  # how it was decided (waiting.Decision)
    inside: str | None = None  # the PKCS#11 function the actor was inside, if the module holds the call


@dataclass(frozen=True)
class StressAnswer(Wire):
    NAME: ClassVar[str] = "stress"
    _tuples: ClassVar[frozenset[str]] = frozenset({"violations"})

    outcome: str  # passed | failed | error | hung (| crashed, decided by the parent)
    violations: tuple[str, ...] = ()
    stacks: str = ""
    cause: str = ""  # why the process stopped answering (parent side), or where the stuck threads are (tap)
    restart: bool = False
    open_calls: int | None = None
    operations: int | None = None
    elapsed_s: float | None = None


@dataclass(frozen=True)
class Snapshotted(Wire):
    NAME: ClassVar[str] = "snapshot"

    snapshot: Mapping[str, Any]  # live/integrity.py Snapshot.to_dict()


@dataclass(frozen=True)
class Swept(Wire):
    NAME: ClassVar[str] = "sweep"

    destroyed: int


@dataclass(frozen=True)
class SutChecked(Wire):
    NAME: ClassVar[str] = "sut_check"

    problem: str | None = None  # one line naming the fix; None: the factory made a provider


@dataclass(frozen=True)
class CallsJudged(Wire):
    """The module judged on its own answers (JudgeCalls): the first deviation, described with the answer that set
    the state ("module: C_FindObjectsFinal returned CKR_OK, then C_FindObjectsInit got CKR_OPERATION_ACTIVE"), and
    the rule's spec section; or none, after `calls` calls. `complete` False: the log had lost the oldest of them."""

    NAME: ClassVar[str] = "calls_judged"

    _tuples: ClassVar[frozenset[str]] = frozenset({"history"})

    calls: int
    deviation: str | None = None
    spec: str = ""
    complete: bool = True
    unavailable: str = ""  # why nothing was judged (no tap; the process that made the calls is gone); "": judged
    history: tuple[str, ...] = ()  # the module's answers on that handle before the deviation (#index in the log)

    @property
    def available(self) -> bool:
        return not self.unavailable

    def explain(self) -> str:
        """One line for a result's reason: how the module's share was decided."""
        if not self.available:
            return f"blame by the check's layer (the module's answers could not be judged alone: {self.unavailable})"
        if self.deviation is not None:
            before = f"; before it on that handle: {'; '.join(self.history)}" if self.history else ""
            return (f"{self.deviation} [{self.spec}] — judged on the module's own answers to the {self.calls} calls "
                    f"the tap logged, without python-pkcs11 or the provider{before}")
        partial = "" if self.complete else " (the oldest were no longer in the tap's log)"
        return (f"module cleared: its answers to the {self.calls} calls the tap logged follow PKCS#11{partial}; "
                "the blame stays with the check's layer")


@dataclass(frozen=True)
class Capabilities(Wire):
    NAME: ClassVar[str] = "capabilities"

    missing: Mapping[str, str]  # capability -> why the token lacks it


@dataclass(frozen=True)
class LoginChecked(Wire):
    NAME: ClassVar[str] = "login_check"

    problem: str | None = None  # None | wrong_pin | locked | other
    error: str | None = None


@dataclass(frozen=True)
class LoginRoundsAnswer(Wire):
    NAME: ClassVar[str] = "login_rounds"
    _tuples: ClassVar[frozenset[str]] = frozenset({"spans"})

    done: int
    error: str | None = None  # the first error's class; the loop stops there (never retried: PIN lockout)
    duration_s: float = 0.0
    # When each round's Token.open ran (time.time(): one clock for every process), flat: start, end, start, end...
    # — so the check can count the logins that really overlapped another process's.
    spans: tuple[float, ...] = ()

    def intervals(self) -> list[tuple[float, float]]:
        return list(zip(self.spans[0::2], self.spans[1::2]))


@dataclass(frozen=True)
class AppAnswer(Wire):
    NAME: ClassVar[str] = "app"

    outcome: str  # a word (ok, closed, a session state) or an exception class, never a message


@dataclass(frozen=True)
class Measured(Wire):
    NAME: ClassVar[str] = "latency"
    _nested: ClassVar[Mapping[str, Any]] = {"latency": Latency}

    latency: Latency


@dataclass(frozen=True)
class Characterised(Wire):
    NAME: ClassVar[str] = "characterise"
    _nested: ClassVar[Mapping[str, Any]] = {"characterisation": Characterisation}

    characterisation: Characterisation


@dataclass(frozen=True)
class Floor(Wire):
    NAME: ClassVar[str] = "floor"

    round_trip_us: float
