"""The benchmark's document (schema pkcs11-conformance/bench/1): what was run, and one row per vendor × mechanism ×
strategy × thread count. Frozen dataclasses with explicit to/from dict; written atomically after every row, so a
crash or an interrupt keeps what was measured (`run.finished` stays null until the run ends)."""

from __future__ import annotations

import json
import os
import platform
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

BENCH_SCHEMA = "pkcs11-conformance/bench/1"

# What became of a row: measured, or why there is no number (a crash or hang is a row, never an abort).
OUTCOMES = ("measured", "skipped", "failed", "crashed", "hung", "error")


class BenchInputError(ValueError):
    """A bench file that cannot be used; the message is one line naming the file and the fix."""


@dataclass(frozen=True)
class Trial:
    """One timed trial of a row: ops completed by all threads together in `seconds` of wall time."""

    ops: int
    seconds: float

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"ops": self.ops, "seconds": round(self.seconds, 6), "ops_per_s": round(self.ops_per_s, 3)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trial:
        return cls(ops=int(data["ops"]), seconds=float(data["seconds"]))


@dataclass(frozen=True)
class Row:
    vendor: str
    mechanism: str
    strategy: str
    threads: int
    outcome: str = "measured"
    ops_per_s: float | None = None  # median over the trials
    p50_ms: float | None = None  # per-call latency over every trial's calls (a call: the strategy's whole request)
    p95_ms: float | None = None
    p99_ms: float | None = None
    trials: tuple[Trial, ...] = ()
    detail: str = ""  # why there is no number ("unsafe at 2 threads: SIGSEGV"), or what was measured

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.vendor, self.mechanism, self.strategy, self.threads)

    @property
    def spread(self) -> float:
        """The trials' range (max - min ops/s): the run's own measure of how much the number moves."""
        rates = [t.ops_per_s for t in self.trials]
        return max(rates) - min(rates) if rates else 0.0

    @property
    def where(self) -> str:
        return f"{self.vendor} {self.mechanism} {self.strategy} at {self.threads} thread{'s' * (self.threads != 1)}"

    def to_dict(self) -> dict[str, Any]:
        return {"vendor": self.vendor, "mechanism": self.mechanism, "strategy": self.strategy, "threads": self.threads,
                "outcome": self.outcome, "ops_per_s": _round(self.ops_per_s), "p50_ms": _round(self.p50_ms),
                "p95_ms": _round(self.p95_ms), "p99_ms": _round(self.p99_ms),
                "spread_ops_per_s": round(self.spread, 3), "trials": [t.to_dict() for t in self.trials],
                "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Row:
        return cls(vendor=str(data["vendor"]), mechanism=str(data["mechanism"]), strategy=str(data["strategy"]),
                   threads=int(data["threads"]), outcome=str(data.get("outcome", "measured")),
                   ops_per_s=_opt(data.get("ops_per_s")), p50_ms=_opt(data.get("p50_ms")),
                   p95_ms=_opt(data.get("p95_ms")), p99_ms=_opt(data.get("p99_ms")),
                   trials=tuple(Trial.from_dict(t) for t in data.get("trials", ())), detail=str(data.get("detail", "")))


@dataclass(frozen=True)
class Settings:
    """How the run measured: the same settings on both sides is what makes two runs comparable."""

    mechanisms: tuple[str, ...]
    strategies: tuple[str, ...]
    threads: tuple[int, ...]
    trials: int
    trial_s: float  # the least wall time of a trial (longer where the mechanism's calls are slow: runner.py)
    warmup_s: float
    pool_size: int
    hang_s: float = 10.0  # the least time a call may stay in the module past its trial's end before it is hung

    def to_dict(self) -> dict[str, Any]:
        return {"mechanisms": list(self.mechanisms), "strategies": list(self.strategies), "threads": list(self.threads),
                "trials": self.trials, "trial_s": self.trial_s, "warmup_s": self.warmup_s, "pool_size": self.pool_size,
                "hang_s": self.hang_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        return cls(mechanisms=tuple(data["mechanisms"]), strategies=tuple(data["strategies"]),
                   threads=tuple(int(t) for t in data["threads"]), trials=int(data["trials"]),
                   trial_s=float(data["trial_s"]), warmup_s=float(data["warmup_s"]), pool_size=int(data["pool_size"]),
                   hang_s=float(data.get("hang_s", 10.0)))


@dataclass(frozen=True)
class Overhead:
    """The benchmark's own cost on one mechanism: its timed loop against a bare python-pkcs11 loop of the same
    calls on one session and thread (the fastest of interleaved repeats on each side)."""

    mechanism: str
    bare_us: float  # per call
    timed_us: float

    @property
    def percent(self) -> float:
        return (self.timed_us / self.bare_us - 1.0) * 100.0 if self.bare_us > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"mechanism": self.mechanism, "bare_us": round(self.bare_us, 3), "timed_us": round(self.timed_us, 3),
                "percent": round(self.percent, 2)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Overhead:
        return cls(mechanism=str(data["mechanism"]), bare_us=float(data["bare_us"]), timed_us=float(data["timed_us"]))


@dataclass(frozen=True)
class VendorFacts:
    module: str
    library: Mapping[str, Any] = field(default_factory=dict)  # manufacturer, description, version
    token: str = ""  # the token's label
    stack: tuple[str, ...] = ()  # wrappers between the binding and the module (p11-kit, spy)
    overhead: tuple[Overhead, ...] = ()
    problem: str = ""  # the vendor could not be benchmarked at all: why (one line, never a PIN)

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "library": dict(self.library), "token": self.token, "stack": list(self.stack),
                "overhead": [o.to_dict() for o in self.overhead], "problem": self.problem}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VendorFacts:
        return cls(module=str(data.get("module", "")), library=dict(data.get("library", {})),
                   token=str(data.get("token", "")), stack=tuple(data.get("stack", ())),
                   overhead=tuple(Overhead.from_dict(o) for o in data.get("overhead", ())),
                   problem=str(data.get("problem", "")))


@dataclass(frozen=True)
class BenchRun:
    id: str
    started: str
    harness_version: str
    python_pkcs11_version: str
    python: str
    platform: str
    cpus: int
    sut: str
    settings: Settings
    finished: str | None = None  # null while running, or when the run was interrupted or killed

    @classmethod
    def new(cls, settings: Settings, sut: str) -> BenchRun:
        from .. import __version__
        from ..binding import binding_version

        return cls(id=uuid.uuid4().hex, started=now(), harness_version=__version__,
                   python_pkcs11_version=binding_version(), python=platform.python_version(),
                   platform=platform.platform(), cpus=os.cpu_count() or 1, sut=sut, settings=settings)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "started": self.started, "finished": self.finished,
                "harness_version": self.harness_version, "python_pkcs11_version": self.python_pkcs11_version,
                "python": self.python, "platform": self.platform, "cpus": self.cpus, "sut": self.sut,
                "settings": self.settings.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchRun:
        return cls(id=str(data["id"]), started=str(data["started"]), finished=data.get("finished"),
                   harness_version=str(data["harness_version"]), python_pkcs11_version=str(data["python_pkcs11_version"]),
                   python=str(data["python"]), platform=str(data["platform"]), cpus=int(data.get("cpus", 1)),
                   sut=str(data.get("sut", "")), settings=Settings.from_dict(data["settings"]))


@dataclass(frozen=True)
class BenchDoc:
    run: BenchRun
    vendors: Mapping[str, VendorFacts] = field(default_factory=dict)
    rows: tuple[Row, ...] = ()

    def with_row(self, row: Row) -> BenchDoc:
        return replace(self, rows=(*self.rows, row))

    def with_vendor(self, name: str, facts: VendorFacts) -> BenchDoc:
        return replace(self, vendors={**self.vendors, name: facts})

    def finished(self) -> BenchDoc:
        return replace(self, run=replace(self.run, finished=now()))

    def to_dict(self) -> dict[str, Any]:
        return {"schema": BENCH_SCHEMA, "run": self.run.to_dict(),
                "vendors": {name: facts.to_dict() for name, facts in self.vendors.items()},
                "rows": [row.to_dict() for row in self.rows]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchDoc:
        return cls(run=BenchRun.from_dict(data["run"]),
                   vendors={name: VendorFacts.from_dict(v) for name, v in data.get("vendors", {}).items()},
                   rows=tuple(Row.from_dict(r) for r in data.get("rows", ())))

    def write(self, path: Path) -> None:
        """Atomically: a reader (or a crash) never meets half a file."""
        from ..results.document import write_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")


def read_bench(path: str | os.PathLike[str], *, complete: bool = True) -> BenchDoc:
    """Read and validate a bench file; every problem is one BenchInputError line naming the file and the fix."""
    from .schema import validate_bench

    where = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise BenchInputError(f"{where}: no such file; pass the bench.json a `pkcs11-conformance bench` run wrote") from None
    except OSError as exc:
        raise BenchInputError(f"{where}: cannot be read ({exc.strerror or exc}); check its permissions") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchInputError(f"{where}: not JSON ({exc}); pass a bench.json written by `pkcs11-conformance bench`") from None
    if not isinstance(data, dict) or data.get("schema") != BENCH_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        hint = " (that is a results file: compare it with `pkcs11-conformance gate`)" if (
            isinstance(found, str) and found.startswith("pkcs11-conformance/results/")) else ""
        raise BenchInputError(f"{where}: schema is {found!r}, not {BENCH_SCHEMA!r}{hint}; pass a bench.json")
    problems = validate_bench(data)
    if problems:
        raise BenchInputError(f"{where}: not a valid bench file ({problems[0]}); write it anew with "
                              "`pkcs11-conformance bench`")
    doc = BenchDoc.from_dict(data)
    if complete and doc.run.finished is None:
        raise BenchInputError(f"{where}: the run did not finish (interrupted or killed); run the benchmark again")
    return doc


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)
