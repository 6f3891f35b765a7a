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

import os
from collections import Counter
from dataclasses import replace
from typing import Any, Iterable, Mapping, Sequence

from ..outcomes import BAD, GOOD
from ..results.records import Record
from ..results.document import Results
from ..results.reader import ResultsInputError, read_results
from .entries import (
    ALL_CHECKS, CLASSES, Change, GateReport, Side, Source, canon, first_line, observed_alike, same_behaviour, vendors_of,
)


class GateInputError(ResultsInputError):
    """An option the gate cannot use (files: ResultsInputError); the message is one line naming the fix."""


# ---------------------------------------------------------------------------------------------- vendors


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
    exact = [d for d in side.deviations if "observed" in d and canon(d["observed"]) == side.observed]
    return next(iter(exact + [d for d in side.deviations if "observed" not in d]), None)


def _declared(side: Side, deviation: Mapping[str, Any] | None = None) -> str:
    """The declaration, one line: origin: reason (issue)."""
    d = deviation or (side.deviations[0] if side.deviations else None)
    if d is None:
        return first_line(side.reason) or "declared"
    issue = f" ({d['issue']})" if d.get("issue") else ""
    return f"{d.get('origin', 'declared')}: {first_line(str(d.get('reason', '')))}{issue}"


def gate_files(baseline_path: str | os.PathLike[str], candidate_path: str | os.PathLike[str],
               aliases: Sequence[tuple[str, str]] = ()) -> GateReport:
    """Load both files (ResultsInputError on any problem) and compare them."""
    baseline = read_results(baseline_path, "baseline")
    candidate = read_results(candidate_path, "candidate")
    return compare(baseline, candidate, aliases, os.fspath(baseline_path), os.fspath(candidate_path))
