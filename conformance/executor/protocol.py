"""The protocol between the pytest process and the module's process: every command and every answer as a frozen
dataclass, one JSON object per line (commands carry `cmd`, answers `event`), decoded through the tables at the end.

Outcomes are named the same everywhere: an answer about a check, a stress run or an application step has an
`outcome` (passed, failed, skipped, error, crashed, hung, or what the step did); a schedule's steps keep their own
vocabulary (schedule.STATUSES).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping, TypeVar

from ..engine.schedule import Schedule, StepResult

W = TypeVar("W", bound="Wire")


class Wire:
    """Plain to/from dict for the flat dataclasses below. `_tuples` names fields that travel as JSON lists;
    `_nested` names fields holding another Wire (or Schedule / StepResult), with their type."""

    NAME: ClassVar[str]
    _tuples: ClassVar[frozenset[str]] = frozenset()
    _nested: ClassVar[Mapping[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self._nested and value is not None:
                value = value.to_dict()
            elif f.name in self._tuples:
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[W], data: Mapping[str, Any]) -> W:
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue  # the field's default
            value = data[f.name]
            if f.name in cls._nested and value is not None:
                value = cls._nested[f.name].from_dict(value)
            elif f.name in cls._tuples:
                value = tuple(value)
            values[f.name] = value
        return cls(**values)


# --- what both sides agree on ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits(Wire):
    """How long the executor waits: a call expected to block is watched for `block_window`; a call expected to
    return that takes longer than `step_timeout` is hung; loading the module may take `startup_timeout`."""

    block_window: float = 0.3
    step_timeout: float = 1.0
    startup_timeout: float = 60.0


@dataclass(frozen=True)
class ChildInit(Wire):
    """Everything the module's process needs to come up. Holds the PIN: it goes to the child's stdin only, never
    on a command line, in the environment or in a repr."""

    NAME: ClassVar[str] = "init"
    _tuples: ClassVar[frozenset[str]] = frozenset({"sys_path"})

    name: str
    module: str  # what the binding loads: the module, or the tap / a wrapper in front of it
    module_shown: str  # the module under test, as messages name it
    real_module: str  # the module under test, whose own C_GetInfo the results record
    ground_truth: str | None  # the library ctypes opens for ground truth (same instance as the binding's)
    env: Mapping[str, str]
    token_label: str | None
    token_uri: str | None
    pin: str = field(repr=False)
    sut: str = ""  # --sut MODULE:FACTORY, made in this process for provider scenarios and stress
    sys_path: tuple[str, ...] = ()  # pytest's sys.path: the child imports checks and the --sut module as pytest did


# --- commands (pytest process -> module's process) --------------------------------------------------------------

@dataclass(frozen=True)
class RunCheck(Wire):
    """Run a check body by name with the child's live vendor; answer CheckAnswer."""

    NAME: ClassVar[str] = "check"
    _tuples: ClassVar[frozenset[str]] = frozenset({"args"})
    _nested: ClassVar[Mapping[str, Any]] = {"limits": Limits}

    module: str
    function: str
    args: tuple[str, ...]  # fixture names the body takes (plugin/dispatch.py: only what the child provides)
    limits: Limits = Limits()
    params: Mapping[str, Any] = field(default_factory=dict)  # the check's own parametrize values (JSON)


@dataclass(frozen=True)
class RunSchedule(Wire):
    """Run one schedule on the actor threads; answered by a StepEvent per step, then ScheduleDone (or ScheduleHung
    and the process exits, or ScheduleError)."""

    NAME: ClassVar[str] = "run"
    _nested: ClassVar[Mapping[str, Any]] = {"schedule": Schedule, "limits": Limits}

    schedule: Schedule
    limits: Limits = Limits()


@dataclass(frozen=True)
class ProviderStress(Wire):
    """Free-running stress of the --sut provider: threads loop acquire -> use -> release (stress.py)."""

    NAME: ClassVar[str] = "stress"
    _tuples: ClassVar[frozenset[str]] = frozenset({"uses"})

    threads: int
    iterations: int
    uses: tuple[str, ...] = ("digest",)
    switch_interval: float = 1e-6
    timeout: float = 10.0


@dataclass(frozen=True)
class CallStress(Wire):
    """Raw PKCS#11 calls from several threads at once, each on its own session or one shared (stress.py)."""

    NAME: ClassVar[str] = "calls"
    _tuples: ClassVar[frozenset[str]] = frozenset({"calls"})

    threads: int
    iterations: int
    calls: tuple[str, ...]
    shared: bool = False
    switch_interval: float = 1e-6
    timeout: float = 10.0


@dataclass(frozen=True)
class LoginRounds(Wire):
    """This process as one application: log in and out `rounds` times from the wall-clock moment `start_at`."""

    NAME: ClassVar[str] = "login_rounds"

    rounds: int
    start_at: float


@dataclass(frozen=True)
class AppStep(Wire):
    """One step of this process as an application: login, close, state or end (applications.py)."""

    NAME: ClassVar[str] = "app"

    op: str


@dataclass(frozen=True)
class TakeSnapshot(Wire):
    NAME: ClassVar[str] = "snapshot"


@dataclass(frozen=True)
class Sweep(Wire):
    """Destroy every object whose label starts with `prefix` (default: any run's harness objects)."""

    NAME: ClassVar[str] = "sweep"

    prefix: str | None = None


@dataclass(frozen=True)
class SutCheck(Wire):
    NAME: ClassVar[str] = "sut_check"


@dataclass(frozen=True)
class ProbeCapabilities(Wire):
    NAME: ClassVar[str] = "capabilities"


@dataclass(frozen=True)
class LoginCheck(Wire):
    NAME: ClassVar[str] = "login_check"


@dataclass(frozen=True)
class MeasureFloor(Wire):
    """The bare thread hand-off round trip in this process (the benchmark's baseline)."""

    NAME: ClassVar[str] = "floor"

    n: int = 20000


@dataclass(frozen=True)
class Quit(Wire):
    NAME: ClassVar[str] = "quit"


# --- answers (module's process -> pytest process) ---------------------------------------------------------------

@dataclass(frozen=True)
class Ready(Wire):
    NAME: ClassVar[str] = "ready"

    pid: int
    facts: Mapping[str, Any] = field(default_factory=dict)  # library, token and mechanism facts (no secrets)


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

    outcome: str  # passed | failed | skipped | error (could not import the check: ours) | crashed | hung
    message: str = ""
    where: str = ""  # the check's own frames, innermost last
    observed: Any = None
    has_observed: bool = False  # observe() was called (None is a value a check may observe)
    stacks: str = ""  # every thread's stack, after a crash or hang


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


@dataclass(frozen=True)
class StressAnswer(Wire):
    NAME: ClassVar[str] = "stress"
    _tuples: ClassVar[frozenset[str]] = frozenset({"violations"})

    outcome: str  # passed | failed | error | hung (| crashed, decided by the parent)
    violations: tuple[str, ...] = ()
    stacks: str = ""
    cause: str = ""  # why the process stopped answering (parent side)
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

    done: int
    error: str | None = None  # the first error's class; the loop stops there (never retried: PIN lockout)
    duration_s: float = 0.0


@dataclass(frozen=True)
class AppAnswer(Wire):
    NAME: ClassVar[str] = "app"

    outcome: str  # a word (ok, closed, a session state) or an exception class, never a message


@dataclass(frozen=True)
class Floor(Wire):
    NAME: ClassVar[str] = "floor"

    round_trip_us: float


COMMANDS: dict[str, type[Wire]] = {c.NAME: c for c in (
    ChildInit, RunCheck, RunSchedule, ProviderStress, CallStress, LoginRounds, AppStep, TakeSnapshot, Sweep,
    SutCheck, ProbeCapabilities, LoginCheck, MeasureFloor, Quit)}
ANSWERS: dict[str, type[Wire]] = {a.NAME: a for a in (
    Ready, Failed, CheckAnswer, StepEvent, ScheduleDone, ScheduleHung, StressAnswer, Snapshotted, Swept, SutChecked,
    Capabilities, LoginChecked, LoginRoundsAnswer, AppAnswer, Floor)}


def encode_command(command: Wire) -> str:
    return json.dumps({"cmd": command.NAME, **command.to_dict()})


def encode_answer(answer: Wire) -> str:
    return json.dumps({"event": answer.NAME, **answer.to_dict()})


def decode_command(line: str) -> Wire:
    data = json.loads(line)
    return COMMANDS[data.pop("cmd")].from_dict(data)


def decode_answer(line: str) -> Wire:
    data = json.loads(line)
    return ANSWERS[data.pop("event")].from_dict(data)
