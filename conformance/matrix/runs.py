"""The binding matrix: the shipped checks under several python-pkcs11 versions, each in its own environment, merged
into one report (versions as columns) with the gate between neighbours, both ways.

    pkcs11-conformance matrix --binding 0.8.1 --binding 0.10.1 --vendor=softhsm -o DIR [-- PYTEST ARGS]

DIR/VERSION/results.json (+ report.html) per binding, DIR/report.html (all columns), DIR/matrix.json (schema
pkcs11-conformance/matrix/1: the runs, and each neighbour pair's gate both ways with the behaviour changes) and
DIR/matrix.md (per vendor, the checks whose behaviour differs between versions).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..gate.compare import compare
from ..gate.entries import GateReport, Side, same_behaviour
from ..report.html import write_report
from ..results.document import Results
from ..results.reader import ResultsInputError, read_results
from .environments import BindingEnvironment

MATRIX_SCHEMA = "pkcs11-conformance/matrix/1"


@dataclass(frozen=True)
class BindingRun:
    """One column: the checks under one python-pkcs11 version."""

    binding: str
    python: str
    results: str  # path of its results JSON
    exit_status: int
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"binding": self.binding, "python": self.python, "results": self.results,
                "exit_status": self.exit_status, "wall_s": round(self.wall_s, 1)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BindingRun:
        return cls(str(data["binding"]), str(data["python"]), str(data["results"]), int(data["exit_status"]),
                   float(data["wall_s"]))


@dataclass(frozen=True)
class Neighbours:
    """The gate from one binding version to the next (and its reverse, for symmetry)."""

    baseline: str
    candidate: str
    regressions: int
    counts: dict[str, int]
    behaviour_changed: tuple[dict[str, Any], ...]  # check, vendor, class, baseline outcome, candidate outcome

    @classmethod
    def of(cls, report: GateReport) -> Neighbours:
        changed = tuple({"check": c.check, "vendor": c.vendor, "class": c.kind,
                         "baseline": c.baseline.outcome if c.baseline else None,
                         "candidate": c.candidate.outcome if c.candidate else None,
                         "baseline_behaviour": c.baseline.behaviour.to_dict() if c.baseline and c.baseline.behaviour else None,
                         "candidate_behaviour": c.candidate.behaviour.to_dict() if c.candidate and c.candidate.behaviour else None}
                        for c in report.changes if c.behaviour == "changed")
        return cls(report.baseline.python_pkcs11_version, report.candidate.python_pkcs11_version,
                   len(report.regressions), report.counts(), changed)

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.baseline, "to": self.candidate, "regressions": self.regressions, "counts": self.counts,
                "behaviour_changed": [dict(c) for c in self.behaviour_changed]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Neighbours:
        return cls(str(data["from"]), str(data["to"]), int(data["regressions"]), dict(data["counts"]),
                   tuple(dict(c) for c in data["behaviour_changed"]))


def run_binding(env: BindingEnvironment, out: Path, pytest_args: Sequence[str]) -> BindingRun:
    """The shipped checks under one environment's python-pkcs11, in the caller's working directory (so ./vendors
    is found as in a plain run)."""
    column = out / env.version
    column.mkdir(parents=True, exist_ok=True)
    results = column / "results.json"
    started = time.monotonic()
    with (column / "pytest.log").open("w", encoding="utf-8") as log:
        proc = subprocess.run([env.python, "-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "conformance.checks",
                               f"--conformance-json={results}", f"--conformance-html={column / 'report.html'}",
                               f"--basetemp={column / 'tmp'}", *pytest_args], stdout=log, stderr=subprocess.STDOUT)
    return BindingRun(env.version, env.python, str(results), proc.returncode, time.monotonic() - started)


def merge(runs: Sequence[BindingRun], out: Path) -> dict[str, Any]:
    """Write DIR/report.html, DIR/matrix.json and DIR/matrix.md from the runs that wrote results; returns the
    matrix document. ResultsInputError if a run left no results (its pytest.log says why)."""
    docs = [read_results(run.results, f"results of python-pkcs11 {run.binding}") for run in runs]
    write_report(out / "report.html", docs, [run.results for run in runs])
    gates = []
    for before, after in zip(docs, docs[1:]):
        gates.append(Neighbours.of(compare(before, after)))
        gates.append(Neighbours.of(compare(after, before)))
    matrix = {"schema": MATRIX_SCHEMA, "runs": [r.to_dict() for r in runs], "gates": [g.to_dict() for g in gates]}
    (out / "matrix.json").write_text(json.dumps(matrix, indent=1) + "\n", encoding="utf-8")
    (out / "matrix.md").write_text(markdown(runs, docs), encoding="utf-8")
    return matrix


SHORT = {"passed": "pass", "xfailed": "xfail", "xpassed": "XPASS", "failed": "FAIL", "crashed": "CRASH",
         "hung": "HUNG", "skipped": "skip", "error": "error"}


def markdown(runs: Sequence[BindingRun], docs: Sequence[Results]) -> str:
    """Per vendor, the checks whose behaviour is not the same on every version, one column per version (the
    outcome; * where the behaviour differs from the column before)."""
    versions = [r.binding for r in runs]
    vendors = sorted({rec.vendor for d in docs for rec in d.results})
    out = ["# What changed between python-pkcs11 versions", "",
           f"Checks whose behaviour differs between {', '.join(versions)} (outcome per version; `*` where the "
           "behaviour — what happened, whatever was declared, and the observed value — differs from the version "
           "before). Every other check behaves the same on all of them.", ""]
    for vendor in vendors:
        rows, same = [], 0
        by_version = [{r.check: r for r in d.results if r.vendor == vendor} for d in docs]
        for check in sorted({c for records in by_version for c in records}):
            sides = [Side.of(records[check]) if check in records else None for records in by_version]
            cells = [SHORT.get(side.outcome, side.outcome) if side else "—" for side in sides]
            moved = [i > 0 and not _alike(sides[i - 1], sides[i]) for i in range(len(sides))]
            if not any(moved):
                same += 1
                continue
            marked = [cell + ("*" if m else "") for cell, m in zip(cells, moved)]
            rows.append(f"| `{check}` | " + " | ".join(marked) + " |")
        out += [f"## {vendor}", ""]
        if rows:
            out += ["| check | " + " | ".join(versions) + " |", "|---|" + "---|" * len(versions), *rows, ""]
        out += [f"{same} check{'s behave' if same != 1 else ' behaves'} the same on every version.", ""]
    return "\n".join(out)


def _alike(a: Side | None, b: Side | None) -> bool:
    return a is b is None or (a is not None and b is not None and same_behaviour(a, b))


def run_matrix(envs: Sequence[BindingEnvironment], out: Path, pytest_args: Sequence[str],
               say: Callable[[str], None] = print) -> tuple[list[BindingRun], dict[str, Any] | None]:
    """Every binding's run, then the merge; a run that wrote no results is said, and the merge is left out."""
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for env in envs:
        say(f"python-pkcs11 {env.version}: running the checks ({env.python})")
        run = run_binding(env, out, pytest_args)
        say(f"python-pkcs11 {env.version}: pytest exit {run.exit_status} in {run.wall_s:.0f} s -> {run.results}")
        runs.append(run)
    try:
        return runs, merge(runs, out)
    except ResultsInputError as exc:
        say(f"{exc}; what that run printed is in {out}/VERSION/pytest.log")
        return runs, None


def describe(matrix: dict[str, Any]) -> str:
    """One line per neighbour gate: the behaviour changes, each check named."""
    lines = []
    for gate in matrix["gates"]:
        changed = gate["behaviour_changed"]
        names = ", ".join(f"{c['check']} [{c['vendor']}] {c['baseline']}->{c['candidate']}" for c in changed)
        lines.append(f"{gate['from']} -> {gate['to']}: {len(changed)} behaviour change(s), {gate['regressions']} "
                     f"regression(s)" + (f": {names}" if names else ""))
    return "\n".join(lines)
