"""What both sides of the protocol agree on (the waits, the module's latency, the init) and every command the
pytest process sends to the module's process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from ..engine.schedule import Schedule
from .wire import Wire

# --- what both sides agree on ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits(Wire):
    """How long the executor waits: a call expected to block is watched for `block_window`; a call expected to
    return that takes longer than `step_timeout` is hung; loading the module may take `startup_timeout`."""

    block_window: float = 0.3
    step_timeout: float = 1.0
    startup_timeout: float = 60.0
    # After the last step, a call still blocked is watched this long for a release the plan did not foresee.
    end_watch: float = 0.3


@dataclass(frozen=True)
class Latency(Wire):
    """The module's own latency, measured in its process: seconds per sample of each kind of call (timing.py
    derives the executor's waits from it)."""

    _tuples: ClassVar[frozenset[str]] = frozenset({"login", "open", "close", "search"})

    # Only calls the harness's start-up makes anyway (the capability probe, sweeps): measuring adds no new kind
    # of call before the first check.
    login: tuple[float, ...]  # C_Login (Token.open with the PIN, less an open without it)
    open: tuple[float, ...]  # C_OpenSession
    close: tuple[float, ...]  # C_CloseSession
    search: tuple[float, ...]  # C_FindObjectsInit + C_FindObjects + C_FindObjectsFinal

    def per_call(self) -> float:
        """The slowest sample of a single call (a search is three)."""
        return max([*self.open, *self.close, *(s / 3 for s in self.search)], default=0.0)

    def login_s(self) -> float:
        return max(self.login, default=0.0)


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
    evidence: str | None = None  # the tap watching the module's calls (live/calls.py); None: timing only
    disposable: bool = False  # the profile's: checks may leave token objects (run-tagged, destroyed after the check)
    # The token's missing capabilities once the run settled them (executor/parent.py): a process started later
    # takes them instead of probing again (a probe that took one process down would take every later one down).
    capabilities: Mapping[str, str] | None = None


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
    deadline_s: float | None = None  # the check's budget: at it, the child says where its threads are (Stalled)


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
class JudgeCalls(Wire):
    """The verdict on the module judged alone on its own answers to every call this process made, up to the end
    of its last command (engine/rawspec.py, fed from the tap's log); answered by CallsJudged."""

    NAME: ClassVar[str] = "judge_calls"


@dataclass(frozen=True)
class ProbeCapabilities(Wire):
    """The token's missing capabilities (live/capabilities.py); `only`: just these, probed on their own and not
    kept by the child (the parent settles the whole set)."""

    NAME: ClassVar[str] = "capabilities"
    _tuples: ClassVar[frozenset[str]] = frozenset({"only"})

    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoginCheck(Wire):
    NAME: ClassVar[str] = "login_check"


@dataclass(frozen=True)
class Characterise(Wire):
    """Measure the model parameters that differ between setups (live/characterise.py), once per run."""

    NAME: ClassVar[str] = "characterise"


@dataclass(frozen=True)
class MeasureLatency(Wire):
    """Time a few calls of each kind (opens, closes, logins, searches, random): the module's own latency."""

    NAME: ClassVar[str] = "latency"

    rounds: int = 3


@dataclass(frozen=True)
class MeasureFloor(Wire):
    """The bare thread hand-off round trip in this process (the benchmark's baseline)."""

    NAME: ClassVar[str] = "floor"

    n: int = 20000


@dataclass(frozen=True)
class Quit(Wire):
    NAME: ClassVar[str] = "quit"
