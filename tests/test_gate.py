"""The upgrade gate: every classification on small hand-made result pairs, vendor switching, the output formats.
(The console script and pytest --baseline are in test_gate_cli.py.)"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from conformance.gate.compare import GateInputError, compare, match_vendors
from conformance.gate.entries import GATE_SCHEMA, Change, GateReport
from conformance.gate.format import line, render, render_markdown, render_text
from conformance.results.document import Results, RunInfo
from conformance.results.records import Behaviour, Coverage, Record

from gate_records import ANCHOR, BINDING_DECLARATION, CHECK, RUN, doc, pair, rec


# ------------------------------------------------------------------------------------------- classifications


@pytest.mark.parametrize("bad", ["failed", "error", "crashed", "hung"])
def test_passed_to_bad_is_regressed(bad):
    """A passing check that now fails, errors, crashes or hangs is regressed, with the candidate's reason."""
    change = pair(rec("passed"), rec(bad, reason="CKR_GENERAL_ERROR\nmore"))
    assert (change.kind, change.regression, change.note) == ("regressed", True, "CKR_GENERAL_ERROR")


def test_xfailed_to_failed_is_regressed():
    """A declared deviation happening as declared (xfailed) is good: failing outright afterwards is regressed."""
    change = pair(rec("xfailed"), rec("failed"))
    assert (change.kind, change.regression) == ("regressed", True)


def test_exploration_cut_short_is_not_comparable():
    """Issue 11: "a run that explored fewer examples is not comparable by the gate without saying so" — a candidate
    whose exploration a time budget cut short is still classified (unchanged here, no regression), but marked not
    comparable, saying how far each run got, and the report warns once."""
    full, cut = Coverage(100, 100), Coverage(34, 100, complete=False)
    anchor = rec(check=ANCHOR)
    report = compare(doc(anchor, replace(rec("passed"), coverage=full)),
                     doc(anchor, replace(rec("passed"), coverage=cut)))
    change = next(ch for ch in report.changes if ch.check == CHECK)
    assert (change.kind, change.regression, change.comparable) == ("unchanged", False, False)
    assert change.note == ("explored: baseline 100 of 100 examples, candidate 34 of 100 examples (the rest did not "
                           "fit the time budget)")
    assert change.to_dict()["comparable"] is False
    assert "(not comparable)" in render_text(report) and "1 exploration did not run the same" in render_text(report)


def test_explorations_that_ran_alike_are_comparable():
    """Both explorations ran their examples to the end: comparable, whatever else they did; a finding that ended
    one early (a different count) is compared as a finding."""
    assert pair(replace(rec("passed"), coverage=Coverage(100, 100)),
                replace(rec("passed"), coverage=Coverage(100, 100))).comparable
    assert pair(replace(rec("passed"), coverage=Coverage(100, 100)),
                replace(rec("failed"), coverage=Coverage(7, 100))).comparable


def test_same_outcome_and_observed_is_unchanged():
    """Same outcome and same observed value: unchanged, not a regression."""
    change = pair(rec("passed", "UserAlreadyLoggedIn"), rec("passed", "UserAlreadyLoggedIn"))
    assert (change.kind, change.regression) == ("unchanged", False)


def test_observed_change_is_regressed():
    """Both passed but the observed value differs and nothing declares it: regressed."""
    change = pair(rec("passed", "ok"), rec("passed", "blocked"))
    assert (change.kind, change.regression) == ("regressed", True)
    assert "observed value changed" in change.note


def test_observed_change_declared_is_changed_but_declared():
    """An observed value that one of the candidate record's declared deviations names: changed_but_declared."""
    declared = ({"origin": "vendor softhsm", "check": CHECK, "reason": "queues logins", "observed": "blocked"},)
    change = pair(rec("passed", "ok"), rec("passed", "blocked", deviations=declared))
    assert (change.kind, change.regression) == ("changed_but_declared", False)
    assert "vendor softhsm: queues logins" in change.note


def test_observed_change_to_other_than_declared_is_regressed():
    """A declaration of a different observed value does not cover the change: regressed."""
    declared = ({"origin": "vendor softhsm", "check": CHECK, "reason": "r", "observed": "raises"},)
    change = pair(rec("passed", "ok"), rec("passed", "blocked", deviations=declared))
    assert (change.kind, change.regression) == ("regressed", True)


def test_declaration_without_observed_value_covers_observed_change():
    """A declaration naming no observed value (outcome / model only) covers any observed change of its check."""
    declared = ({"origin": "binding", "check": CHECK, "reason": "r", "model": {"x": True}},)
    assert pair(rec("xfailed", "a"), rec("xfailed", "b", deviations=declared)).kind == "changed_but_declared"


def test_observed_values_compare_as_json():
    """Observed values are compared as JSON data: a tuple equals the list it is written as, 1 equals 1.0."""
    assert pair(rec("passed", ["a", 1]), rec("passed", ("a", 1.0))).kind == "unchanged"


def test_passed_to_xfailed_is_changed_but_declared():
    """A check that now fails as a newly declared deviation is changed_but_declared, not a regression."""
    change = pair(rec("passed"), rec("xfailed", deviations=(BINDING_DECLARATION,)))
    assert (change.kind, change.regression) == ("changed_but_declared", False)
    assert "binding: the binding leaks" in change.note


def test_xfailed_to_passed_is_fixed():
    """A declared deviation gone and no longer declared (e.g. its version condition stopped matching) is fixed."""
    assert pair(rec("xfailed"), rec("passed")).kind == "fixed"


@pytest.mark.parametrize("bad", ["failed", "error", "crashed", "hung", "xpassed"])
def test_bad_to_passed_is_fixed(bad):
    """A failing, erroring, crashing, hanging (or stale xpassed) baseline check that now passes is fixed."""
    change = pair(rec(bad), rec("passed"))
    assert (change.kind, change.regression) == ("fixed", False)


def test_failed_to_xfailed_is_changed_but_declared():
    """A failure that is now declared (xfailed) is changed_but_declared, not fixed."""
    assert pair(rec("failed"), rec("xfailed", deviations=(BINDING_DECLARATION,))).kind == "changed_but_declared"


def test_bad_to_bad_is_still_failing():
    """Failing before and after (even crashing instead of failing) is still_failing, not a regression."""
    change = pair(rec("failed"), rec("crashed", reason="signal 11"))
    assert (change.kind, change.regression, change.note) == ("still_failing", False, "signal 11")


@pytest.mark.parametrize("before", ["passed", "xfailed", "failed"])
def test_newly_skipped_is_lost_coverage_regression(before):
    """A check that became a skip loses coverage: a regression, with the skip reason."""
    change = pair(rec(before), rec("skipped", reason="destructive check: token is not disposable"))
    assert (change.kind, change.regression) == ("lost_coverage", True)
    assert change.note.startswith("destructive check")


def test_declared_skip_is_lost_coverage_without_regression():
    """A newly skipped check whose candidate record carries a declared deviation is lost_coverage, not a regression."""
    declared = ({"origin": "vendor luna", "check": CHECK, "reason": "no such mechanism", "outcome": "skipped"},)
    change = pair(rec("passed"), rec("skipped", deviations=declared))
    assert (change.kind, change.regression) == ("lost_coverage", False)


def test_both_skipped_is_unchanged():
    """Skipped in both runs: unchanged."""
    assert pair(rec("skipped"), rec("skipped")).kind == "unchanged"


@pytest.mark.parametrize("now", ["passed", "failed"])
def test_skip_never_counts_as_pass(now):
    """A baseline skip is no pass: what the candidate shows for it is new coverage, neither fixed nor regressed."""
    change = pair(rec("skipped"), rec(now))
    assert (change.kind, change.regression) == ("new", False)


@pytest.mark.parametrize("before", ["xfailed", "passed", None])
def test_xpassed_is_stale_declaration_regression(before):
    """A candidate xpass (a declared deviation stopped happening) is a regression that says to remove the declaration."""
    change = pair(rec(before) if before else None, rec("xpassed", deviations=(BINDING_DECLARATION,)))
    assert (change.kind, change.regression) == ("stale_declaration", True)
    assert "remove its declaration (binding)" in change.note


def test_only_in_candidate_is_new():
    """A check only the candidate has is new and no regression, even when it fails; failing new ones are listed."""
    change = pair(None, rec("failed", reason="made to fail"))
    assert (change.kind, change.regression) == ("new", False)
    report = compare(doc(rec(check=ANCHOR)), doc(rec(check=ANCHOR), rec("failed", reason="made to fail")))
    assert f"NEW {CHECK} [softhsm]: absent -> failed: made to fail" in render_text(report).splitlines()


def test_only_in_baseline_is_removed_regression():
    """A check the candidate no longer has (its vendor still ran) is removed: coverage lost, a regression."""
    change = pair(rec("passed"), None)
    assert (change.kind, change.regression) == ("removed", True)


def test_missing_vendor_is_one_regression():
    """A baseline vendor with no result in the candidate is one vendor_missing regression, not one per check."""
    baseline = doc(rec(check="a.one", vendor="softhsm"), rec(check="a.one", vendor="luna"), rec(check="a.two", vendor="luna"))
    report = compare(baseline, doc(rec(check="a.one", vendor="softhsm")))
    assert [(c.kind, c.check, c.vendor) for c in report.regressions] == [("vendor_missing", "*", "luna")]
    assert "2 checks in the baseline" in report.regressions[0].note


@pytest.mark.parametrize("profiles, warned", [(("dev", "dev"), False), (("ci", "deep"), True), (("ci", "ci"), False),
                                              (("deep", "deep"), True), (("dev", "ci"), True)])
def test_observed_regression_under_random_profile_warns(profiles, warned):
    """An observed-value regression between runs not made with the same derandomised hypothesis profile (dev or ci)
    comes with a note: under `deep` (or two different profiles) the scenarios explore different schedules."""
    runs = [doc(rec("passed", value)) for value in ("ok", "blocked")]
    for i, results in enumerate(runs):
        runs[i] = Results(RunInfo.from_dict({**RUN.to_dict(), "hypothesis_profile": profiles[i]}), results.vendors,
                          results.results)
    report = compare(*runs)
    assert bool(report.warnings) is warned
    assert ("note: " in render_text(report)) is warned


# ------------------------------------------------------------------------------------------- different vendors


def test_single_vendors_with_different_names_are_compared():
    """One vendor in each file, different names: compared by check id ("what changes if we switch")."""
    report = compare(doc(rec("passed", "ok")), doc(rec("passed", "blocked", vendor="opencryptoki")))
    assert report.vendor_map == {"softhsm": "opencryptoki"}
    change = report.regressions[0]
    assert (change.kind, change.baseline_vendor, change.vendor) == ("regressed", "softhsm", "opencryptoki")
    assert line(change).startswith(f"REGRESSED {CHECK} [softhsm -> opencryptoki]: ")


def test_as_maps_vendor_names():
    """--as OLD=NEW compares the baseline's OLD with the candidate's NEW, the other vendors by name."""
    baseline = doc(rec(vendor="softhsm"), rec(vendor="luna"))
    candidate = doc(rec(vendor="opencryptoki"), rec("failed", vendor="luna"))
    report = compare(baseline, candidate, [("softhsm", "opencryptoki")])
    assert {(c.vendor, c.kind) for c in report.changes} == {("opencryptoki", "unchanged"), ("luna", "regressed")}


@pytest.mark.parametrize("alias, fix", [(("nshield", "luna"), "the baseline has no vendor 'nshield'"),
                                        (("softhsm", "nshield"), "the candidate has no vendor 'nshield'"),
                                        (("softhsm", "luna"), "map only one of them")])
def test_as_with_wrong_names_is_input_error(alias, fix):
    """--as naming a vendor a file does not have, or mapping two vendors onto one, is refused naming the fix."""
    with pytest.raises(GateInputError, match=fix):
        match_vendors({"softhsm", "luna"}, {"luna", "opencryptoki"}, [alias])


def test_no_common_vendor_is_input_error():
    """Several vendors on each side and none in common: refused, asking for --as."""
    with pytest.raises(GateInputError, match="no vendor in common.*pass --as OLD=NEW"):
        match_vendors({"softhsm", "luna"}, {"opencryptoki", "nshield"})


# ------------------------------------------------------------------------------------------- formats


def mixed_report() -> GateReport:
    """A report with one regression, one fix, one failing new check, one passing new check and one unchanged."""
    baseline = doc(rec("passed", "ok"), rec("failed", check="login.b"), rec(check=ANCHOR))
    candidate = doc(rec("failed", reason="UserAlreadyLoggedIn\ntraceback"), rec("passed", check="login.b"),
                    rec(check=ANCHOR), rec("failed", check="login.new_fail", reason="boom"), rec(check="login.new_ok"))
    return compare(baseline, candidate, (), "base.json", "cand.json")


def test_regression_line_names_check_vendor_and_reason():
    """A regression is one line: label, check id, [vendor], baseline outcome (observed) -> outcome: reason."""
    assert line(mixed_report().regressions[0]) == \
        f"REGRESSED {CHECK} [softhsm]: passed (observed ok) -> failed: UserAlreadyLoggedIn"


def test_text_format_summary_then_regressions_then_changes():
    """Text: a one-line summary with counts per class first, then the regressions, then the other changes."""
    lines = render_text(mixed_report()).splitlines()
    assert lines[0] == "gate: 1 regression (1 regressed, 1 fixed, 2 new, 1 unchanged)"
    regressed = lines.index(f"REGRESSED {CHECK} [softhsm]: passed (observed ok) -> failed: UserAlreadyLoggedIn")
    fixed = lines.index("FIXED login.b [softhsm]: failed -> passed")
    assert lines.index("regressions:") < regressed < lines.index("other changes:") < fixed
    assert "NEW login.new_fail [softhsm]: absent -> failed: boom" in lines
    assert "NEW: 1 more new check passes (softhsm)" in lines
    assert not any(ANCHOR in x for x in lines)  # unchanged checks are counted, not listed


def test_markdown_format_is_a_table():
    """Markdown: a heading with the summary, then a table with one row per regression and change."""
    text = render_markdown(mixed_report())
    assert text.startswith("### ❌ pkcs11-conformance gate: 1 regression")
    assert "| | class | check | vendor | baseline | candidate | note |" in text
    assert f"| ❌ | REGRESSED | `{CHECK}` | softhsm | passed (observed ok) | failed | UserAlreadyLoggedIn |" in text
    assert "|  | FIXED | `login.b` | softhsm | failed | passed |  |" in text


def test_markdown_escapes_pipes():
    """A | in a reason or observed value cannot break the table."""
    report = compare(doc(rec("passed", "a|b")), doc(rec("failed", reason="x | y")))
    assert "passed (observed a\\|b) | failed | x \\| y |" in render_markdown(report)


def test_json_format_lists_every_pair():
    """JSON: schema id, regression count, counts per class and every check × vendor (unchanged too), as data."""
    data = json.loads(render(mixed_report(), "json"))
    assert (data["schema"], data["regressions"]) == (GATE_SCHEMA, 1)
    assert data["counts"] == {"regressed": 1, "fixed": 1, "new": 2, "unchanged": 1}
    assert len(data["changes"]) == 5
    first = data["changes"][0]
    assert (first["class"], first["check"], first["vendor"], first["regression"]) == ("regressed", CHECK, "softhsm", True)
    assert first["baseline"]["observed"] == "ok" and first["candidate"]["outcome"] == "failed"
    assert data["baseline"]["file"] == "base.json"


# ------------------------------------------------------------------------------------------- behaviour (issue 12)

FAILED_THE_SAME = Behaviour("failed", "AssertionError: the refused login left session handle(s) [#] open")


def _runs(binding_b: str, binding_c: str, b: Record, c: Record) -> Change:
    anchor = rec(check=ANCHOR)
    base = doc(anchor, b)
    cand = doc(anchor, c)
    base = replace(base, run=replace(base.run, python_pkcs11_version=binding_b))
    cand = replace(cand, run=replace(cand.run, python_pkcs11_version=binding_c))
    return next(ch for ch in compare(base, cand).changes if ch.check == CHECK)


def test_every_change_says_whether_the_behaviour_changed():
    """**Contract** (gate JSON): each entry of `changes` carries `behaviour: "same" | "changed"` beside its class
    and `regression`."""
    anchor = rec(check=ANCHOR)
    report = compare(doc(anchor, replace(rec("passed"), behaviour=Behaviour("passed"))),
                     doc(anchor, replace(rec("failed", reason="x"), behaviour=Behaviour("failed", "x"))))
    entries = json.loads(render(report, "json"))["changes"]
    assert {e["check"]: e["behaviour"] for e in entries} == {ANCHOR: "same", CHECK: "changed"}
    assert all({"class", "regression", "behaviour"} <= set(e) for e in entries)


@pytest.mark.parametrize("declared_in", ["baseline", "candidate"])
def test_same_behaviour_declared_on_one_side_is_unchanged(declared_in):
    """"The same behaviour with different declaration coverage is reported as exactly that ("unchanged; declared
    only for 0.10.1 — widen the declaration"), never as fixed or regressed": a failure declared (xfailed) under one
    binding and failing the same way undeclared under the other is unchanged, no regression, in both directions."""
    declared = replace(rec("xfailed", deviations=(BINDING_DECLARATION,)), behaviour=FAILED_THE_SAME)
    undeclared = replace(rec("failed", reason="AssertionError: ... [40] open"), behaviour=FAILED_THE_SAME)
    b, c = (declared, undeclared) if declared_in == "baseline" else (undeclared, declared)
    vb, vc = ("0.10.1", "0.9.3") if declared_in == "baseline" else ("0.9.3", "0.10.1")
    change = _runs(vb, vc, b, c)
    assert (change.kind, change.regression, change.behaviour) == ("unchanged", False, "same")
    assert change.note.startswith("unchanged; declared only for python-pkcs11 0.10.1 — widen the declaration")
    assert "UNCHANGED" in line(change)


def test_a_different_failure_is_a_behaviour_change():
    """Two failures of different kinds are still_failing with behaviour changed (and say so); the same failure is
    still_failing with the same behaviour."""
    other = Behaviour("failed", "RuntimeError: cannot release un-acquired lock")
    changed = pair(replace(rec("failed"), behaviour=FAILED_THE_SAME), replace(rec("failed"), behaviour=other))
    assert (changed.kind, changed.behaviour) == ("still_failing", "changed")
    assert "(behaviour changed)" in line(changed)
    same = pair(replace(rec("failed"), behaviour=FAILED_THE_SAME), replace(rec("failed"), behaviour=FAILED_THE_SAME))
    assert (same.kind, same.behaviour) == ("still_failing", "same")


def test_files_without_signatures_compare_by_outcome():
    """Results written before signatures were recorded: the outcome (declarations included) and the reason's first
    line stand in — on both sides, also when only one file lacks them — so an xfailed → failed pair stays a
    regression there, and an unchanged pass is the same behaviour."""
    change = pair(rec("xfailed"), rec("failed"))
    assert (change.kind, change.behaviour) == ("regressed", "changed")
    old, new = rec("passed"), replace(rec("passed"), behaviour=Behaviour("passed"))
    assert (pair(old, new).kind, pair(old, new).behaviour) == ("unchanged", "same")


def test_explorations_compare_the_points_both_reached():
    """An exploration's observed value is what its examples happened to reach: two that agree on every point both
    reached behave the same (a point only one reached — its draws went elsewhere, e.g. a binding without a step
    kind — is said in the note, not compared); a point both reached with other values is a change."""
    full = Coverage(40, 40)

    def explored(observed):
        return replace(rec("passed", observed), coverage=full, behaviour=Behaviour("passed"))

    change = pair(explored({"a": ["ok"], "b": ["x"]}), explored({"a": ["ok"], "c": ["y"]}))
    assert (change.kind, change.regression, change.behaviour) == ("unchanged", False, "same")
    assert change.note == "points reached in one run only (not compared): b, c"
    assert pair(explored(None), explored({})).behaviour == "same"  # nothing reached either way
    changed = pair(explored({"a": ["ok"]}), explored({"a": ["raises:OperationActive"]}))
    assert (changed.kind, changed.behaviour) == ("regressed", "changed")
