"""Hand-made results for the gate's tests (shared by test_gate.py and test_gate_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from conformance.gate.compare import compare
from conformance.gate.entries import Change
from conformance.results.records import Record
from conformance.results.document import Results, RunInfo

CHECK = "login.second_login_same_app"
ANCHOR = "login.anchor"  # a check present on both sides, so the vendor itself is never missing
RUN = RunInfo(id="run", started="2026-01-01T00:00:00+00:00", harness_version="0.1.0", python_pkcs11_version="0.10.1",
              python="3.11", platform="linux", hypothesis_profile="dev", sut="conformance.refsession:reference_session",
              finished="2026-01-01T00:01:00+00:00")
BINDING_DECLARATION = {"origin": "binding", "check": CHECK, "reason": "the binding leaks", "outcome": "failed"}


def rec(outcome: str = "passed", observed: Any = None, *, check: str = CHECK, vendor: str = "softhsm",
        reason: str = "", deviations: tuple[Mapping[str, Any], ...] = ()) -> Record:
    """One hand-made record (layer module)."""
    return Record(check=check, vendor=vendor, layer="module", outcome=outcome, observed=observed, reason=reason,
                  deviations=deviations)


def vendor_info(name: str) -> dict[str, Any]:
    """A schema-valid vendors entry (the gate reads files through the same validation as everything else)."""
    return {"module": f"/lib/{name}.so", "library": {}, "token": {}, "mechanisms": 0}


def doc(*records: Record, vendors: tuple[str, ...] = (), run_id: str = "run") -> Results:
    """A results document holding these records; its vendors header names every vendor of them (and `vendors`)."""
    names = dict.fromkeys([*vendors, *(r.vendor for r in records)])
    return Results(RunInfo.from_dict({**RUN.to_dict(), "id": run_id}), {n: vendor_info(n) for n in names},
                   tuple(records))


def pair(b: Record | None, c: Record | None) -> Change:
    """The classification of CHECK when the baseline holds `b` and the candidate `c` (None = absent)."""
    anchor = rec(check=ANCHOR)
    report = compare(doc(anchor, *([b] if b else [])), doc(anchor, *([c] if c else [])))
    return next(ch for ch in report.changes if ch.check == CHECK)


def write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path
