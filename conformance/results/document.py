"""The versioned results document (schema pkcs11-conformance/results/1), written atomically and incrementally."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from .. import RESULTS_SCHEMA, __version__
from .records import Record

# Rewrite the file at most this often while results stream in; always on close.
WRITE_INTERVAL_S = 0.5
# pytest exit statuses of a run that ran everything it collected (passed, checks failed, nothing collected):
# only such a run gets `finished`, and only such a run can be gated. Interrupted (2), internal error (3), usage
# error (4), a run stopped by -x / --maxfail (exit 1, but not everything ran) and a killed run leave it null.
COMPLETE_EXITS = (0, 1, 5)


@dataclass(frozen=True)
class RunInfo:
    id: str
    started: str
    harness_version: str
    python_pkcs11_version: str
    python: str
    platform: str
    hypothesis_profile: str
    sut: str
    finished: str | None = None  # set only when the run ran to its end (COMPLETE_EXITS)
    exit_status: int | None = None  # pytest's exit status once the run ended, whatever the reason; null if killed

    @classmethod
    def new(cls, *, sut: str, hypothesis_profile: str, run_id: str | None = None) -> RunInfo:
        from ..binding import binding_version

        return cls(
            id=run_id or uuid.uuid4().hex,
            started=_now(),
            harness_version=__version__,
            python_pkcs11_version=binding_version(),
            python=platform.python_version(),
            platform=platform.platform(),
            hypothesis_profile=hypothesis_profile,
            sut=sut,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started": self.started,
            "finished": self.finished,
            "harness_version": self.harness_version,
            "python_pkcs11_version": self.python_pkcs11_version,
            "python": self.python,
            "platform": self.platform,
            "hypothesis_profile": self.hypothesis_profile,
            "sut": self.sut,
            "exit_status": self.exit_status,
        }

    @property
    def complete(self) -> bool:
        return self.finished is not None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunInfo:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Results:
    run: RunInfo
    vendors: Mapping[str, Mapping[str, Any]]
    results: tuple[Record, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": RESULTS_SCHEMA,
            "run": self.run.to_dict(),
            "vendors": {name: dict(info) for name, info in self.vendors.items()},
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Results:
        if data.get("schema") != RESULTS_SCHEMA:
            raise ValueError(f"not a results file of schema {RESULTS_SCHEMA!r} (found {data.get('schema')!r})")
        return cls(
            RunInfo.from_dict(data["run"]),
            dict(data["vendors"]),
            tuple(Record.from_dict(r) for r in data["results"]),
        )


class ResultsWriter:
    """Collects records on the controller and keeps a valid file on disk at every moment (write-then-rename)."""

    def __init__(self, path: Path, run: RunInfo, vendors: Mapping[str, Mapping[str, Any]]) -> None:
        self.path = path
        self.run = run
        self.vendors = dict(vendors)
        self.records: list[Record] = []
        self._last_write = 0.0
        self._dirty = False
        self.flush()

    def add(self, record: Record) -> None:
        self.records.append(record)
        self._dirty = True
        if time.monotonic() - self._last_write >= WRITE_INTERVAL_S:
            self.flush()

    def flush_pending(self) -> None:
        """Write records held back by the interval — before a check starts, since it may hang and the run be
        killed meanwhile (a kill -9 must not lose results that were already in)."""
        if self._dirty:
            self.flush()

    def document(self, exit_status: int | None = None, stopped_early: bool = False) -> Results:
        run = self.run
        if exit_status is not None:
            finished = _now() if exit_status in COMPLETE_EXITS and not stopped_early else None
            run = RunInfo.from_dict({**run.to_dict(), "finished": finished, "exit_status": exit_status})
        return Results(run, self.vendors, tuple(self.records))

    def flush(self, exit_status: int | None = None, stopped_early: bool = False) -> Results:
        """Write the file; with the run's exit status, the last time (stamps `finished` if the run was complete:
        a complete exit status, and not stopped early by -x / --maxfail)."""
        doc = self.document(exit_status, stopped_early)
        write_atomic(self.path, json.dumps(doc.to_dict(), indent=1, sort_keys=False) + "\n")
        self._last_write = time.monotonic()
        self._dirty = False
        return doc


def write_atomic(path: Path, text: str) -> None:
    """Never leaves a half-written file: write a sibling, fsync, rename over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; reports are meant to be read like any output
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_results(path: str | os.PathLike[str]) -> Results:
    with open(path, encoding="utf-8") as fh:
        return Results.from_dict(json.load(fh))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
