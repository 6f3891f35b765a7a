"""The upgrade gate: compare a candidate results file with a baseline, per check × vendor, and name every regression.

Outcomes fall in three groups. **good**: ``passed``, ``xfailed`` (a declared deviation happening as declared).
**bad**: ``failed``, ``error``, ``crashed``, ``hung``, and in the *baseline* ``xpassed`` (that run failed on a stale
declaration). ``skipped`` is neither: a skip never counts as a pass. A candidate ``xpassed`` is always stale.

The first matching row decides (B = baseline record, C = candidate record: same check id, same or mapped vendor).
"Regression" entries make the gate fail (exit 1 / a failed pytest run).

| class                | when                                                                  | regression?     |
|----------------------|-----------------------------------------------------------------------|-----------------|
| vendor_missing       | B's vendor has no result at all in the candidate: one entry per       | yes             |
|                      | vendor (check ``*``) instead of one ``removed`` per check             |                 |
| removed              | B present, C absent (its vendor has results): coverage lost           | yes             |
| stale_declaration    | C xpassed, whatever B was (or no B): a declared deviation stopped     | yes             |
|                      | happening, so its declaration must be removed                         |                 |
| new                  | B absent; or B skipped and C not skipped (new coverage)               | no (failing     |
|                      |                                                                       | ones listed)    |
| unchanged            | B skipped, C skipped                                                  | no              |
| lost_coverage        | C skipped, B not skipped                                              | yes, unless C   |
|                      |                                                                       | has a declared  |
|                      |                                                                       | deviation       |
| unchanged            | B and C differ in outcome only by what was declared: the same         | no (the note    |
|                      | behaviour signature (e.g. B xfailed, C failed the same way, a         | says: widen the |
|                      | declaration's version range covering only one side)                   | declaration)    |
| regressed            | B good, C bad                                                         | yes             |
| changed_but_declared | B passed, C xfailed (a new declared deviation)                        | no              |
| fixed                | B xfailed, C passed (the deviation is gone and no longer declared,    | no              |
|                      | e.g. its version condition stopped matching after an upgrade)         |                 |
| unchanged            | B and C the same good outcome with the same ``observed``              | no              |
| changed_but_declared | B and C the same good outcome, ``observed`` differs, and one of C's   | no              |
|                      | declared deviations has C's ``observed`` value or declares no value   |                 |
|                      | (an outcome / model only declaration)                                 |                 |
| regressed            | B and C the same good outcome, ``observed`` differs, not declared     | yes             |
| fixed                | B bad, C passed                                                       | no              |
| changed_but_declared | B bad, C xfailed (the failure is now declared)                        | no              |
| still_failing        | B bad, C bad, even if the kind of failure changed                     | no              |

Every entry also says whether the *behaviour* changed (**contract**: ``behaviour: "same" | "changed"``): each result
carries a signature independent of declarations (results.records.Behaviour: what happened — an xfailed check is a
failure, an xpassed one a pass — the kind of failure, and the observed value). A change of declarations alone is
never fixed or regressed.

Comparing different vendors ("what changes if we switch"): when each file has results of exactly one vendor and the
names differ, or with explicit ``OLD=NEW`` aliases (``--as``), baseline records of vendor OLD are compared with the
candidate's records of vendor NEW by check id. Files with several vendors and none in common are refused (pass --as).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from ..outcomes import BAD, GOOD
from ..results.records import Behaviour, Record
from ..results.document import Results
from ..results.reader import ResultsInputError, read_results

GATE_SCHEMA = "pkcs11-conformance/gate/1"

# Classes in report order: the regression-capable ones first.
CLASSES = ("regressed", "stale_declaration", "lost_coverage", "removed", "vendor_missing", "fixed",
           "changed_but_declared", "new", "still_failing", "unchanged")
ALL_CHECKS = "*"  # the check id of a vendor_missing entry


class GateInputError(ResultsInputError):
    """An option the gate cannot use (files: ResultsInputError); the message is one line naming the fix."""


@dataclass(frozen=True)
class Side:
    """One file's result for a check × vendor, as far as the gate looks at it."""

    outcome: str
    observed: Any = None
    reason: str = ""
    deviations: tuple[Mapping[str, Any], ...] = ()
    behaviour: Behaviour | None = None  # None: a file written before behaviour signatures were recorded
    explored: bool = False  # a drawn exploration: its observed value is what the examples happened to reach

    @classmethod
    def of(cls, record: Record) -> Side:
        return cls(record.outcome, _canon(record.observed), record.reason, record.deviations, record.behaviour,
                   record.coverage is not None)

    def signature(self) -> tuple[Any, ...]:
        """What the system under test did, independent of declarations: the behaviour (an older file has none: its
        outcome, declarations included, and reason's first line stand in) and, for a scripted check, the observed
        value (an exploration's is compared point by point: observed_alike)."""
        what = ((self.behaviour.kind, self.behaviour.detail) if self.behaviour is not None else
                ("outcome", self.outcome, first_line(self.reason)))
        return what if self.explored else (*what, json.dumps(self.observed, sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "observed": self.observed, "reason": self.reason,
                "deviations": [dict(d) for d in self.deviations],
                "behaviour": self.behaviour.to_dict() if self.behaviour else None}


@dataclass(frozen=True)
class Change:
    """The classification of one check × vendor (or, for vendor_missing, of one whole vendor)."""

    kind: str
    check: str
    vendor: str  # the candidate's vendor name
    baseline_vendor: str  # the baseline's name for it (differs when comparing vendors)
    regression: bool
    baseline: Side | None
    candidate: Side | None
    note: str = ""  # one line: why, or what to do
    # False when the two runs did not explore the same: a time budget cut one short, or they ran different numbers
    # of examples (see `note`); the class is then about what was explored, and the gate says so.
    comparable: bool = True

    @property
    def behaviour(self) -> str:
        """**Contract**: "same" when both runs show the same behaviour (same_behaviour), whatever either declared;
        "changed" otherwise (also when one side has no result)."""
        same = self.baseline is not None and self.candidate is not None and same_behaviour(self.baseline, self.candidate)
        return "same" if same else "changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.kind,
            "behaviour": self.behaviour,
            "comparable": self.comparable,
            "check": self.check,
            "vendor": self.vendor,
            "baseline_vendor": self.baseline_vendor,
            "regression": self.regression,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "candidate": self.candidate.to_dict() if self.candidate else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class Source:
    """Which file (or run) a side of the comparison came from."""

    label: str
    run_id: str
    python_pkcs11_version: str
    vendors: tuple[str, ...]

    @classmethod
    def of(cls, label: str, results: Results) -> Source:
        return cls(label, str(results.run.id), str(results.run.python_pkcs11_version), tuple(sorted(vendors_of(results))))

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.label, "run_id": self.run_id, "python_pkcs11_version": self.python_pkcs11_version,
                "vendors": list(self.vendors)}


@dataclass(frozen=True)
class GateReport:
    baseline: Source
    candidate: Source
    vendor_map: Mapping[str, str]  # baseline vendor -> candidate vendor
    changes: tuple[Change, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = ()  # what makes this comparison less trustworthy, with the fix

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.regression)

    def counts(self) -> dict[str, int]:
        found = Counter(c.kind for c in self.changes)
        return {kind: found[kind] for kind in CLASSES if found[kind]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": GATE_SCHEMA,
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "vendor_map": dict(self.vendor_map),
            "regressions": len(self.regressions),
            "counts": self.counts(),
            "changes": [c.to_dict() for c in self.changes],
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------------------- vendors


def vendors_of(results: Results) -> set[str]:
    """Every vendor a file names: in its header and in its records."""
    return set(results.vendors) | {r.vendor for r in results.results}


def parse_alias(text: str) -> tuple[str, str]:
    """--as OLD=NEW -> (OLD, NEW)."""
    old, sep, new = text.partition("=")
    if not sep or not old.strip() or not new.strip():
        raise GateInputError(f"--as {text!r}: write it as OLD=NEW, e.g. --as softhsm=opencryptoki")
    return old.strip(), new.strip()


def match_vendors(baseline: Iterable[str], candidate: Iterable[str],
                  aliases: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """Which candidate vendor each baseline vendor is compared with (identity unless switching vendors)."""
    old_names, new_names = sorted(set(baseline)), sorted(set(candidate))
    mapping = {name: name for name in old_names}
    if aliases:
        for old, new in aliases:
            if old not in mapping:
                raise GateInputError(f"--as {old}={new}: the baseline has no vendor {old!r} "
                                     f"(it has {', '.join(old_names) or 'none'}); name one of those")
            if new not in new_names:
                raise GateInputError(f"--as {old}={new}: the candidate has no vendor {new!r} "
                                     f"(it has {', '.join(new_names) or 'none'}); name one of those")
            mapping[old] = new
        targets = Counter(mapping.values())
        clash = sorted(name for name, n in targets.items() if n > 1)
        if clash:
            raise GateInputError(f"--as: two baseline vendors would both be compared with {clash[0]!r}; "
                                 "map only one of them (or map the other away with another --as)")
    elif len(old_names) == 1 and len(new_names) == 1:
        mapping = {old_names[0]: new_names[0]}
    elif old_names and new_names and not set(old_names) & set(new_names):
        raise GateInputError(f"no vendor in common (baseline: {', '.join(old_names)}; candidate: "
                             f"{', '.join(new_names)}); pass --as OLD=NEW to compare across vendors")
    return mapping


# ---------------------------------------------------------------------------------------------------- comparison


def compare(baseline: Results, candidate: Results, aliases: Sequence[tuple[str, str]] = (),
            baseline_label: str = "baseline", candidate_label: str = "candidate") -> GateReport:
    """Classify every check × vendor of the two runs (see the module docstring for the rules)."""
    mapping = match_vendors(vendors_of(baseline), vendors_of(candidate), aliases)
    old_name = {new: old for old, new in mapping.items()}
    cand = {(r.check, r.vendor): r for r in candidate.results}
    cand_vendors = {r.vendor for r in candidate.results}
    base: dict[tuple[str, str], Record] = {}
    changes: list[Change] = []
    missing: Counter[str] = Counter()
    for record in baseline.results:
        vendor = mapping.get(record.vendor, record.vendor)
        if vendor not in cand_vendors:
            missing[record.vendor] += 1
        else:
            base[(record.check, vendor)] = record
    for old, count in sorted(missing.items()):
        new = mapping.get(old, old)
        changes.append(Change("vendor_missing", ALL_CHECKS, new, old, True, None, None,
                              f"{count} check{'s' if count != 1 else ''} in the baseline, no result in the "
                              "candidate: run the candidate "
                              f"with --vendor={new}" + (f" (or compare it with --as {old}=NAME)" if new == old else "")))
    runs = (Source.of(baseline_label, baseline), Source.of(candidate_label, candidate))
    for key in sorted(set(base) | set(cand)):
        b, c = base.get(key), cand.get(key)
        changes.append(_explored_alike(classify(key[0], key[1], old_name.get(key[1], key[1]), b, c, runs), b, c))
    order = {kind: i for i, kind in enumerate(CLASSES)}
    changes.sort(key=lambda ch: (not ch.regression, order[ch.kind], ch.vendor, ch.check))
    return GateReport(runs[0], runs[1], mapping, tuple(changes), _warnings(baseline, candidate, changes))


def _explored_alike(change: Change, b: Record | None, c: Record | None) -> Change:
    """An exploration is comparable only with one that ran the same examples to the end: otherwise the change says
    how far each got (a slow module's run cut short by its time budget explored fewer schedules)."""
    if b is None or c is None or b.coverage is None or c.coverage is None:
        return change
    if b.coverage.complete and c.coverage.complete and b.coverage.run == c.coverage.run:
        return change
    if not (b.coverage.complete and c.coverage.complete) or b.outcome == c.outcome == "passed":
        where = f"explored: baseline {b.coverage.describe()}, candidate {c.coverage.describe()}"
        note = f"{change.note}; {where}" if change.note else where
        return replace(change, comparable=False, note=note)
    return change  # a finding ends an exploration early: different counts are expected there


def _warnings(baseline: Results, candidate: Results, changes: list[Change]) -> tuple[str, ...]:
    """What makes the comparison less trustworthy. Scenario checks record what their hypothesis examples happened
    to observe: with a random profile two runs may differ in `observed` without any change in the module (said
    when an observed-value regression may be that). And explorations that did not run the same examples."""
    cut = [c for c in changes if not c.comparable]
    budget = ((f"{len(cut)} exploration{'s' if len(cut) != 1 else ''} did not run the same examples in both runs "
               "(a time budget cut one short): their classes are about what was explored; rerun the short one "
               "with a larger --check-timeout",) if cut else ())
    return budget + _observed_warning(baseline, candidate, changes)


def _observed_warning(baseline: Results, candidate: Results, changes: list[Change]) -> tuple[str, ...]:
    observed = any(c.kind == "regressed" and c.baseline and c.candidate and c.baseline.outcome == c.candidate.outcome
                   for c in changes)
    if not observed:
        return ()
    from ..engine.hypothesis_profiles import PROFILES  # late: hypothesis is only needed here

    randomised = sorted({p for p in (baseline.run.hypothesis_profile, candidate.run.hypothesis_profile)
                     if p in PROFILES and not PROFILES[p].derandomize})
    if not randomised and baseline.run.hypothesis_profile == candidate.run.hypothesis_profile:
        return ()
    return (f"hypothesis profiles {baseline.run.hypothesis_profile!r} (baseline) and "
            f"{candidate.run.hypothesis_profile!r} (candidate): scenario checks may observe different values from "
            "run to run under a random or a different profile; make both runs with the same derandomised profile "
            "(dev or ci, the defaults)",)


def same_behaviour(bs: Side, cs: Side) -> bool:
    """The same signature and, for explorations, the same value at every point both reached."""
    return bs.signature() == cs.signature() and (not (bs.explored and cs.explored) or observed_alike(bs, cs)[0])


def observed_alike(bs: Side, cs: Side) -> tuple[bool, str]:
    """(alike, note). Two explorations are alike where every implementation-defined point both reached has the
    same values; a point only one reached is coverage (its draws went elsewhere, e.g. a binding without a step
    kind), said in the note, not a change of behaviour."""
    b, c = bs.observed, cs.observed
    if not (bs.explored and cs.explored and isinstance(b, dict) and isinstance(c, dict)):
        return b == c, ""
    alike = all(b[k] == c[k] for k in set(b) & set(c))
    only = sorted(set(b) ^ set(c))
    return alike, (f"points reached in one run only (not compared): {', '.join(only)}" if only else "")


def classify(check: str, vendor: str, baseline_vendor: str, b: Record | None, c: Record | None,
             runs: tuple[Source, Source] | None = None) -> Change:
    """One check × vendor: the first matching row of the module docstring's table."""
    bs, cs = (Side.of(b) if b else None), (Side.of(c) if c else None)

    def change(kind: str, regression: bool, note: str = "") -> Change:
        return Change(kind, check, vendor, baseline_vendor, regression, bs, cs, note)

    if cs is None:
        assert bs is not None
        return change("removed", True, "not in the candidate run: coverage lost (select the same checks as the "
                                       "baseline run)")
    if cs.outcome == "xpassed":
        origins = ", ".join(sorted({str(d.get("origin", "declaration")) for d in cs.deviations})) or "declaration"
        return change("stale_declaration", True, f"the declared deviation no longer happens; remove its "
                                                 f"declaration ({origins})")
    if bs is None or (bs.outcome == "skipped" and cs.outcome != "skipped"):
        was = " (was skipped)" if bs else ""
        return change("new", False, (first_line(cs.reason) + was) if cs.outcome not in GOOD else was.strip(" ()"))
    if cs.outcome == "skipped":
        if bs.outcome == "skipped":
            return change("unchanged", False)
        declared = bool(cs.deviations)
        return change("lost_coverage", not declared,
                      first_line(cs.reason) + (" (declared)" if declared else ": a skip never counts as a pass"))
    if bs.outcome != cs.outcome and same_behaviour(bs, cs):
        # The same behaviour, only declared on one side (a declaration's version range left the other out).
        return change("unchanged", False, _declared_on_one_side(bs, cs, runs))
    if bs.outcome in GOOD and cs.outcome in BAD:
        return change("regressed", True, first_line(cs.reason))
    if bs.outcome in GOOD and cs.outcome in GOOD:
        if bs.outcome != cs.outcome:
            if cs.outcome == "xfailed":
                return change("changed_but_declared", False, "now a declared deviation: " + _declared(cs))
            return change("fixed", False, "the declared deviation is gone and no longer declared")
        alike, reached = observed_alike(bs, cs)
        if alike:
            return change("unchanged", False, reached)
        covering = _covering(cs)
        if covering is not None:
            return change("changed_but_declared", False, "declared: " + _declared(cs, covering))
        return change("regressed", True, "observed value changed and no declared deviation covers it")
    # baseline bad (or a stale xpassed)
    if cs.outcome == "passed":
        return change("fixed", False)
    if cs.outcome == "xfailed":
        return change("changed_but_declared", False, "the failure is now declared: " + _declared(cs))
    return change("still_failing", False, first_line(cs.reason))


def _declared_on_one_side(bs: Side, cs: Side, runs: tuple[Source, Source] | None) -> str:
    declared_in_baseline = bs.outcome in ("xfailed", "xpassed")
    side, run = (bs, runs[0] if runs else None) if declared_in_baseline else (cs, runs[1] if runs else None)
    other = (runs[1] if declared_in_baseline else runs[0]) if runs else None
    where = "the baseline" if declared_in_baseline else "the candidate"
    if run is not None and other is not None and run.python_pkcs11_version != other.python_pkcs11_version:
        where = f"python-pkcs11 {run.python_pkcs11_version}"
    return f"unchanged; declared only for {where} — widen the declaration ({_declared(side)})"


def _covering(side: Side) -> Mapping[str, Any] | None:
    """The declaration of the candidate's observed value, else one that declares no value (outcome / model only)."""
    exact = [d for d in side.deviations if "observed" in d and _canon(d["observed"]) == side.observed]
    return next(iter(exact + [d for d in side.deviations if "observed" not in d]), None)


def _declared(side: Side, deviation: Mapping[str, Any] | None = None) -> str:
    """The declaration, one line: origin: reason (issue)."""
    d = deviation or (side.deviations[0] if side.deviations else None)
    if d is None:
        return first_line(side.reason) or "declared"
    issue = f" ({d['issue']})" if d.get("issue") else ""
    return f"{d.get('origin', 'declared')}: {first_line(str(d.get('reason', '')))}{issue}"


def first_line(text: str, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _canon(value: Any) -> Any:
    """JSON's view of a value (tuples are lists, 1 == 1.0), so values from TOML, JSON and xdist compare alike."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)


def gate_files(baseline_path: str | os.PathLike[str], candidate_path: str | os.PathLike[str],
               aliases: Sequence[tuple[str, str]] = ()) -> GateReport:
    """Load both files (ResultsInputError on any problem) and compare them."""
    baseline = read_results(baseline_path, "baseline")
    candidate = read_results(candidate_path, "candidate")
    return compare(baseline, candidate, aliases, os.fspath(baseline_path), os.fspath(candidate_path))
