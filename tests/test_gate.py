"""The upgrade gate: every classification on small hand-made result pairs, vendor switching, the output formats, the
console script's exit codes, and pytest --baseline end to end on SoftHSM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

from conformance.cli import main
from conformance.gate import GATE_SCHEMA, Change, GateInputError, GateReport, compare, load_input, match_vendors
from conformance.gate_format import line, render, render_markdown, render_text
from conformance.records import Record
from conformance.results import Results, RunInfo

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


def doc(*records: Record, vendors: tuple[str, ...] = (), run_id: str = "run") -> Results:
    """A results document holding these records; its vendors header names every vendor of them (and `vendors`)."""
    names = dict.fromkeys([*vendors, *(r.vendor for r in records)])
    return Results(RunInfo.from_dict({**RUN.to_dict(), "id": run_id}), {n: {"module": f"/lib/{n}.so"} for n in names},
                   tuple(records))


def pair(b: Record | None, c: Record | None) -> Change:
    """The classification of CHECK when the baseline holds `b` and the candidate `c` (None = absent)."""
    anchor = rec(check=ANCHOR)
    report = compare(doc(anchor, *([b] if b else [])), doc(anchor, *([c] if c else [])))
    return next(ch for ch in report.changes if ch.check == CHECK)


def write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


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


# ------------------------------------------------------------------------------------------- console script


@pytest.fixture
def files(tmp_path) -> Callable[..., list[str]]:
    """Write results documents (Results or plain data or text) to tmp files; returns their paths."""

    def make(*docs: Any) -> list[str]:
        out = []
        for i, d in enumerate(docs):
            out.append(str(write(tmp_path / f"r{i}.json", d.to_dict() if isinstance(d, Results) else d)))
        return out

    return make


def test_cli_exit_0_without_regressions(files, capsys):
    """gate A A exits 0 and says there are no regressions."""
    base = files(doc(rec("passed", "ok")))[0]
    assert main(["gate", base, base]) == 0
    assert capsys.readouterr().out.startswith("gate: no regressions (1 unchanged)")


def test_cli_exit_1_names_each_regression(files, capsys):
    """A regression exits 1 with the regressed check on its own line."""
    base, cand = files(doc(rec("passed", "ok")), doc(rec("failed", reason="boom")))
    assert main(["gate", base, cand]) == 1
    assert f"REGRESSED {CHECK} [softhsm]: passed (observed ok) -> failed: boom" in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_cli_formats(files, capsys, fmt):
    """--format=text|json|markdown each print their rendering of the same comparison."""
    base, cand = files(doc(rec("passed", "ok")), doc(rec("failed", reason="boom")))
    assert main(["gate", base, cand, f"--format={fmt}"]) == 1
    out = capsys.readouterr().out
    assert out == render(compare(load_input(base, "baseline"), load_input(cand, "candidate"), (), base, cand), fmt)


def test_cli_as_option(files, capsys):
    """--as OLD=NEW compares across vendor names on the command line."""
    base, cand = files(doc(rec(vendor="softhsm"), rec(vendor="luna")),
                       doc(rec(vendor="opencryptoki"), rec(vendor="luna")))
    assert main(["gate", base, cand, "--as", "softhsm=opencryptoki"]) == 0
    assert capsys.readouterr().out.startswith("gate: no regressions (2 unchanged)")


def valid() -> dict[str, Any]:
    return doc(rec()).to_dict()


BAD_INPUTS = {
    "not JSON": ("{not json", "not JSON"),
    "wrong schema": ({**valid(), "schema": "pkcs11-conformance/results/0"}, "schema is 'pkcs11-conformance/results/0'"),
    "not an object": ([1, 2], "not a results document"),
    "results not a list": ({**valid(), "results": {}}, "'results' is missing or not a JSON list"),
    "record without check": ({**valid(), "results": [{"vendor": "v", "layer": "module", "outcome": "passed"}]},
                             "results[0] has no 'check' string"),
    "unknown outcome": ({**valid(), "results": [{**valid()["results"][0], "outcome": "maybe"}]},
                        "results[0] outcome 'maybe' is not one of"),
    "duplicate": ({**valid(), "results": valid()["results"] * 2}, "appears twice"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_cli_bad_file_exit_2(files, capsys, case):
    """A malformed, non-JSON or wrong-schema file exits 2 with one stderr line naming that file and the fix."""
    data, phrase = BAD_INPUTS[case]
    good, bad = files(valid(), data)
    assert main(["gate", good, bad]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"pkcs11-conformance gate: candidate {bad}: ")
    assert phrase in err
    assert "pass a results file written by pytest --conformance-json" in err or "pass the file of a single run" in err


def test_cli_unreadable_file_exit_2(files, tmp_path, capsys):
    """A baseline that does not exist exits 2 naming it."""
    assert main(["gate", str(tmp_path / "nope.json"), files(valid())[0]]) == 2
    assert capsys.readouterr().err == f"pkcs11-conformance gate: baseline {tmp_path / 'nope.json'}: cannot read it " \
                                      "(No such file or directory); check the path\n"


def test_cli_bad_format_exit_2(files, capsys):
    """--format=html is refused by argparse with exit 2 and one line on stderr (not the whole usage)."""
    with pytest.raises(SystemExit) as exited:
        main(["gate", *files(valid(), valid()), "--format=html"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert len(err.splitlines()) == 1 and "invalid choice: 'html'" in err


def test_cli_bad_as_exit_2(files, capsys):
    """--as without OLD=NEW exits 2 with one line asking for OLD=NEW."""
    assert main(["gate", *files(valid(), valid()), "--as", "softhsm"]) == 2
    assert capsys.readouterr().err == ("pkcs11-conformance gate: --as 'softhsm': write it as OLD=NEW, "
                                       "e.g. --as softhsm=opencryptoki\n")


def test_console_script_exit_codes_and_no_traceback(files):
    """Run as a process: exit 1 on a regression, 2 on a malformed file, never a traceback."""
    base, cand, broken = files(doc(rec("passed")), doc(rec("hung", reason="step timeout")), "[")
    cmd = [sys.executable, "-m", "conformance.cli", "gate"]
    regressed = subprocess.run([*cmd, base, cand], capture_output=True, text=True, timeout=60)
    assert regressed.returncode == 1 and f"REGRESSED {CHECK} [softhsm]: passed -> hung: step timeout" in regressed.stdout
    malformed = subprocess.run([*cmd, base, broken], capture_output=True, text=True, timeout=60)
    assert malformed.returncode == 2 and "Traceback" not in malformed.stderr
    assert malformed.stderr.startswith(f"pkcs11-conformance gate: candidate {broken}: not JSON")


# ------------------------------------------------------------------------------------------- pytest --baseline


# Derandomized: the scenario check among these observes the same values run after run.
LOGIN = ("--pyargs", "conformance.checks", "-k", "login", "--hypothesis-profile=ci")


@pytest.fixture(scope="module")
def _first_runs() -> dict[str, Any]:
    return {}


@pytest.fixture
def run_login(pytester, run_inner, softhsm_profile) -> Callable[..., tuple[pytest.RunResult, Path]]:
    """An inner SoftHSM run of the login checks writing results to `name`.json in pytester's directory."""

    def run(name: str, *args: str) -> tuple[pytest.RunResult, Path]:
        out = pytester.path / f"{name}.json"
        result = run_inner(*LOGIN, f"--vendor-file={softhsm_profile}", f"--conformance-json={out}",
                           f"--conformance-html={out.with_suffix('.html')}", f"--basetemp={pytester.path / name}", *args)
        return result, out

    return run


@pytest.fixture
def earlier_results(_first_runs, run_login, load_json) -> dict[str, Any]:
    """The results document of an earlier SoftHSM run of the login checks (made once per module and process)."""
    if "doc" not in _first_runs:
        result, out = run_login("earlier")
        assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines + result.errlines)
        _first_runs["doc"] = load_json(out)
    return _first_runs["doc"]


def test_baseline_run_against_its_own_results_passes(earlier_results, pytester, run_login):
    """--baseline naming the --conformance-json file itself (read before the run overwrites it): every check
    unchanged, exit 0, no regression line."""
    same = write(pytester.path / "same.json", earlier_results)
    result, _ = run_login("same", f"--baseline={same}")
    text = "\n".join(result.outlines)
    assert result.ret == pytest.ExitCode.OK, text
    assert f"gate: no regressions ({len(earlier_results['results'])} unchanged)" in result.outlines, text
    assert "REGRESSED" not in text and "regressions:" not in text


def test_baseline_with_changed_observed_value_fails_run(earlier_results, pytester, run_login):
    """A baseline where one check observed something else: exit 1 naming that check, the gate run once on the
    controller under -n 2."""
    doctored = json.loads(json.dumps(earlier_results))
    record = next(r for r in doctored["results"] if r["check"] == CHECK)
    record["observed"] = "ok"
    baseline = write(pytester.path / "baseline-doctored.json", doctored)
    result, _ = run_login("doctored", f"--baseline={baseline}", "-n", "2")
    text = "\n".join(result.outlines)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text
    assert text.count("pkcs11-conformance gate ==") == 1
    assert f"gate: 1 regression (1 regressed, {len(doctored['results']) - 1} unchanged)" in result.outlines, text
    assert any(row.startswith(f"REGRESSED {CHECK} [softhsm]: passed (observed ok) -> passed (observed ")
               for row in result.outlines), text


def test_baseline_with_check_missing_from_run_fails_run(earlier_results, pytester, run_login):
    """A check of the baseline that this run did not run (coverage lost) fails the run, naming the check."""
    doctored = json.loads(json.dumps(earlier_results))
    doctored["results"].append({**doctored["results"][0], "check": "login.dropped_since"})
    baseline = write(pytester.path / "baseline-extra.json", doctored)
    result, _ = run_login("extra", f"--baseline={baseline}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert any(row.startswith("REMOVED login.dropped_since [softhsm]: passed -> absent: ") for row in result.outlines)


@pytest.mark.parametrize("content, phrase", [("{", "not JSON"), (json.dumps({"schema": "other/1"}), "schema is 'other/1'")])
def test_bad_baseline_is_usage_error(pytester, run_inner_inprocess, softhsm_profile, assert_usage_error, content, phrase):
    """An unusable --baseline stops the run before any check: exit 4, one line naming the file and the fix."""
    bad = write(pytester.path / "bad.json", content)
    result = run_inner_inprocess(*LOGIN, f"--vendor-file={softhsm_profile}", f"--baseline={bad}")
    assert_usage_error(result, f"--baseline={bad}", phrase, "pass a results file written by pytest --conformance-json")


def test_baseline_without_selected_vendor_is_usage_error(pytester, run_inner_inprocess, softhsm_profile,
                                                         assert_usage_error):
    """A baseline of several vendors, none of them selected, is refused before the run, naming --vendor."""
    other = doc(rec(vendor="luna"), rec(vendor="nshield"))
    bad = write(pytester.path / "others.json", other.to_dict())
    result = run_inner_inprocess(*LOGIN, f"--vendor-file={softhsm_profile}", f"--baseline={bad}")
    assert_usage_error(result, "luna, nshield", "none of the selected vendors (softhsm)", "--vendor")
