"""What the benchmark's runner and its worker program say to each other: one JSON line each way per message,
as frozen dataclasses (the PIN travels beside the Start, never inside a dataclass that could be printed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Start:
    """The worker's first line: which module and token, and which mechanism it sets up for."""

    module: str
    token_label: str | None
    token_uri: str | None
    mechanism: str
    disposable: bool
    pool_size: int
    sut: str  # MODULE:FACTORY of the user's provider, '' for none

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "token_label": self.token_label, "token_uri": self.token_uri,
                "mechanism": self.mechanism, "disposable": self.disposable, "pool_size": self.pool_size,
                "sut": self.sut}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Start:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Ready:
    """Set up: the module's facts, and one call's median time (what the runner derives trial and hang times from).
    `skipped` is why the mechanism cannot run here ('' if it can)."""

    pid: int
    facts: Mapping[str, Any] = field(default_factory=dict)
    call_us: float = 0.0
    skipped: str = ""
    note: str = ""  # which variant of the workload is timed, where not its first (workloads.Variant)

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "facts": dict(self.facts), "call_us": self.call_us, "skipped": self.skipped,
                "note": self.note}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ready:
        return cls(pid=int(data["pid"]), facts=dict(data.get("facts", {})), call_us=float(data.get("call_us", 0.0)),
                   skipped=str(data.get("skipped", "")), note=str(data.get("note", "")))


@dataclass(frozen=True)
class Run:
    """One timed trial of a strategy at a thread count, after its warm-up."""

    strategy: str
    threads: int
    warmup_s: float
    trial_s: float
    hang_s: float  # a thread still in a call this long after the trial's end is hung
    stride: int = 1  # every stride-th call's latency is recorded (worker.timed_loop)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "threads": self.threads, "warmup_s": self.warmup_s,
                "trial_s": self.trial_s, "hang_s": self.hang_s, "stride": self.stride}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Run:
        return cls(strategy=str(data["strategy"]), threads=int(data["threads"]), warmup_s=float(data["warmup_s"]),
                   trial_s=float(data["trial_s"]), hang_s=float(data["hang_s"]), stride=int(data.get("stride", 1)))


@dataclass(frozen=True)
class Measured:
    """A trial's result: ops by all threads in `seconds`, and their latencies as a histogram (stats.py)."""

    ops: int
    seconds: float
    histogram: Mapping[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"ops": self.ops, "seconds": self.seconds, "histogram": {str(k): v for k, v in self.histogram.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measured:
        return cls(ops=int(data["ops"]), seconds=float(data["seconds"]),
                   histogram={int(k): int(v) for k, v in data.get("histogram", {}).items()})


@dataclass(frozen=True)
class Stopped:
    """A trial that did not measure: `outcome` failed (a call raised: the module's or binding's answer), hung (a
    call did not return; the worker then exits), or error (the worker's own code failed: the harness's bug)."""

    outcome: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stopped:
        return cls(outcome=str(data["outcome"]), detail=str(data["detail"]))


@dataclass(frozen=True)
class OverheadAsked:
    repeats: int
    calls: int
    hang_s: float
    stride: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"repeats": self.repeats, "calls": self.calls, "hang_s": self.hang_s, "stride": self.stride}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OverheadAsked:
        return cls(repeats=int(data["repeats"]), calls=int(data["calls"]), hang_s=float(data["hang_s"]),
                   stride=int(data.get("stride", 1)))


@dataclass(frozen=True)
class OverheadMeasured:
    """Per call, µs: the bare python-pkcs11 loop and the benchmark's timed loop over the same calls."""

    bare_us: float
    timed_us: float

    def to_dict(self) -> dict[str, Any]:
        return {"bare_us": self.bare_us, "timed_us": self.timed_us}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OverheadMeasured:
        return cls(bare_us=float(data["bare_us"]), timed_us=float(data["timed_us"]))


# message kind -> its dataclass: every line is {"<kind>": {...}}
MESSAGES: Mapping[str, type] = {"start": Start, "ready": Ready, "run": Run, "measured": Measured,
                                "stopped": Stopped, "overhead_asked": OverheadAsked,
                                "overhead_measured": OverheadMeasured}


def encode(message: Any) -> dict[str, Any]:
    kind = next(k for k, cls in MESSAGES.items() if isinstance(message, cls))
    return {kind: message.to_dict()}


def decode(data: Mapping[str, Any]) -> Any:
    """The message in a line; ValueError for a line that is not one (the worker's bug, not the module's)."""
    if len(data) != 1:
        raise ValueError(f"not one message: {sorted(data)}")
    (kind, body), = data.items()
    if kind not in MESSAGES:
        raise ValueError(f"unknown message {kind!r}")
    return MESSAGES[kind].from_dict(body)
