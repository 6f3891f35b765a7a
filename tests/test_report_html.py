"""The HTML compatibility report without a browser: the view model (merging runs), rendering, the `report` command.
(What a reader sees in headless Chromium is in test_report_chromium.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cli import main as cli_main
from conformance.engine.schedule import Schedule
from conformance.report.html import render, write_report
from conformance.report.model import check_tests, compact
from conformance.results.document import Results

from report_docs import FAILED_STEPS, HYPOTHESIS_NOTE, ISSUE, cells_of, failing_scenario_doc, model, result, run_doc


# --- view model, without a browser -------------------------------------------------------------------------------


def test_same_vendor_in_two_runs_gets_distinct_labels() -> None:
    """softhsm in two runs becomes two columns labelled with the python-pkcs11 version and the short run id."""
    report = model(run_doc([result("login.a")], run_id="11111111aaaa"),
                   run_doc([result("login.a")], run_id="22222222bbbb", binding="0.11.0"))
    assert [c.label for c in report.columns] == ["softhsm · python-pkcs11 0.10.1 · run 11111111",
                                                 "softhsm · python-pkcs11 0.11.0 · run 22222222"]
    assert len({c.key for c in report.columns}) == 2


def test_same_vendor_with_different_providers_names_the_provider() -> None:
    """softhsm runs of different session providers (--sut) carry the provider in their labels."""
    report = model(run_doc([result("login.a")], run_id="11111111aaaa"),
                   run_doc([result("login.a")], run_id="22222222bbbb", sut="pool:make"))
    assert [c.label for c in report.columns] == [
        "softhsm · python-pkcs11 0.10.1 · sut reference · run 11111111",
        "softhsm · python-pkcs11 0.10.1 · sut pool:make · run 22222222"]


def test_same_file_twice_still_gets_distinct_labels() -> None:
    """The same run given twice: labels are told apart by file name (or number when there is none)."""
    doc = run_doc([result("login.a")])
    report = model(doc, doc, sources=["a/r.json", "b/s.json"])
    assert [c.label for c in report.columns] == ["softhsm · python-pkcs11 0.10.1 · run aaaaaaaa · r.json",
                                                 "softhsm · python-pkcs11 0.10.1 · run aaaaaaaa · s.json"]
    unnamed = model(doc, doc)
    assert unnamed.columns[0].label != unnamed.columns[1].label


def test_distinct_vendors_keep_plain_labels() -> None:
    """Different vendors in one or several runs are labelled by their names alone."""
    report = model(run_doc([result("login.a", vendor="a"), result("login.a", vendor="b")], vendors=("a", "b")),
                   run_doc([result("login.a", vendor="c")], vendors=("c",)))
    assert [c.label for c in report.columns] == ["a", "b", "c"]


def test_merged_runs_give_the_union_of_checks_grouped_by_area() -> None:
    """Rows are the union of both runs' checks, grouped by the id's part before the first dot, sorted; a check a
    column did not run has no cell there."""
    report = model(run_doc([result("login.b"), result("login.a"), result("scenario.provider")]),
                   run_doc([result("login.a", vendor="other"), result("binding.x", vendor="other")], vendors=("other",)))
    assert [(a.name, [r.name for r in a.rows]) for a in report.areas] == [
        ("binding", ["x"]), ("login", ["a", "b"]), ("scenario", ["provider"])]
    assert [c is not None for c in cells_of(report, "login.b")] == [True, False]
    assert [c.outcome for c in cells_of(report, "login.a")] == ["passed", "passed"]
    assert report.checks == 4


def test_column_summary_counts_findings_and_deviations() -> None:
    """Per column: counts by outcome in the contract's order, findings (failed/crashed/hung/error), declared
    deviations, and a verdict naming the findings."""
    doc = run_doc([result("a.1"), result("a.2", "failed"), result("a.3", "crashed"), result("a.4", "skipped", reason="r"),
                   result("a.5", "xfailed", deviations=[{"origin": "binding", "check": "a.5", "reason": "r"}])])
    column = model(doc).columns[0]
    assert column.counts == (("passed", 1), ("failed", 1), ("xfailed", 1), ("skipped", 1), ("crashed", 1))
    assert (column.findings, column.deviations, column.total) == (2, 1, 5)
    assert column.verdict == "2 findings (1 failed, 1 crashed)" and column.verdict_class == "bad"


def test_clean_column_verdict_mentions_declarations_and_skips() -> None:
    """No findings: the verdict says so, with the declared deviations and skips (never counted as passes)."""
    doc = run_doc([result("a.1"), result("a.2", "skipped", reason="why"),
                   result("a.3", "xfailed", deviations=[{"origin": "binding", "check": "a.3", "reason": "r"}])])
    column = model(doc).columns[0]
    assert column.verdict == "no findings in 3 checks (1 declared deviation; 1 skipped (not counted as passes))"
    assert column.verdict_class == "good"


def test_stale_declaration_verdict_asks_for_an_update() -> None:
    """An xpassed check (a declared deviation that stopped happening) makes the verdict a warning."""
    column = model(run_doc([result("a.1"), result("a.2", "xpassed")])).columns[0]
    assert "no longer happens" in column.verdict and column.verdict_class == "warn"


@pytest.mark.parametrize(("exit_status", "prefix"), [
    (2, "run interrupted: "), (None, "run incomplete (killed, or still running): "),
    (3, "run stopped early (exit status 3): ")])
def test_unfinished_run_is_said_in_the_verdict(exit_status: int | None, prefix: str) -> None:
    """A run whose results file was never stamped `finished` says so first, and why, as far as the file knows."""
    column = model(run_doc([result("a.1")], finished=None, exit_status=exit_status)).columns[0]
    assert column.verdict.startswith(prefix) and column.verdict_class == "warn"


def test_rows_with_findings_or_differences_are_marked_interesting() -> None:
    """A row is interesting with a finding or stale declaration, or when columns that ran it disagree in outcome
    or observed value; a column that did not run the check is no difference."""
    report = model(run_doc([result("a.same"), result("a.fails", "failed"), result("a.stale", "xpassed"),
                            result("a.differs", observed="x"), result("a.only_here")], run_id="1" * 12),
                   run_doc([result("a.same"), result("a.fails"), result("a.stale"), result("a.differs", observed="y")],
                           run_id="2" * 12))
    flags = {r.name: r.interesting for r in report.areas[0].rows}
    assert flags == {"same": False, "fails": True, "stale": True, "differs": True, "only_here": False}


def test_observed_value_is_shown_compactly() -> None:
    """A string as is; {point: [values]} as `point: a | b; ...`; long values cut with an ellipsis."""
    assert compact("UserAlreadyLoggedIn") == "UserAlreadyLoggedIn"
    assert compact({"second_login": ["ok", "raises:UserAlreadyLoggedIn"]}) == \
        "second_login: ok | raises:UserAlreadyLoggedIn"
    assert compact({"a": ["ok"], "b": ["raises:X", "ok"]}) == "a: ok; b: raises:X | ok"
    assert compact(None) == ""
    long = compact("x" * 200)
    assert long.endswith("…") and len(long) < 60


def test_reproducer_renders_as_a_readable_program() -> None:
    """A failed scenario's cell carries its schedule as the engine prints it, plus the hypothesis note and trace."""
    cell = cells_of(model(failing_scenario_doc()), "scenario.provider")[0]
    assert cell.program == Schedule.from_steps("provider", FAILED_STEPS).program()
    assert "actor0: it0 = search(s0, batch=2)" in cell.program
    assert cell.hypothesis == HYPOTHESIS_NOTE
    assert cell.trace == "traces/provider.json" and cell.trace_href == "traces/provider.json"
    assert cell.headline.startswith("failed: step 3")


def test_replay_command_names_vendor_results_file_and_exact_test() -> None:
    """A failure with a reproducer replays with --replay=THE FILE and -k matching only that test on that vendor;
    a non-default session provider is passed along."""
    doc = failing_scenario_doc()
    doc["run"]["sut"] = "mypool:factory"
    cell = cells_of(model(doc, sources=["out/r.json"]), "scenario.provider")[0]
    assert cell.replay == "pytest --vendor=softhsm --sut=mypool:factory --replay=out/r.json -k 'test_provider[softhsm]'"


def test_check_without_reproducer_gets_a_run_again_command() -> None:
    """A shipped check with no reproducer is run again by its test name (read from the checks' markers)."""
    assert check_tests()["login.second_login_same_app"] == "test_second_login_same_app"
    cell = cells_of(model(failing_scenario_doc()), "login.second_login_same_app")[0]
    assert cell.replay == "pytest --vendor=softhsm -k 'test_second_login_same_app[softhsm]'"


def test_declared_deviation_reaches_the_cell() -> None:
    """A declared deviation's origin, reason, issue link and declared outcome are in the cell; pytest's xfail
    reason, which repeats it, is not shown as the headline."""
    cell = cells_of(model(failing_scenario_doc()), "binding.failed_login_closes_session")[0]
    (dev,) = cell.deviations
    assert (dev.origin, dev.reason, dev.issue, dev.declared) == ("binding", "leaks a session", ISSUE, "outcome failed")
    assert dev.versions == "python-pkcs11 ==0.11.0"
    assert cell.headline == ""


def test_page_is_static_and_self_contained() -> None:
    """The page has no script and loads nothing: no <script>, <link>, src= or url(...)."""
    html = render([Results.from_dict(failing_scenario_doc())])
    for needle in ("<script", "<link", " src=", "url(", "@import"):
        assert needle not in html, needle


def test_values_are_escaped() -> None:
    """A reason or observed value holding markup is shown as text, not interpreted."""
    html = render([Results.from_dict(run_doc([result("a.b", "failed", reason="<b>boom</b>", observed="<i>x</i>")]))])
    assert "<b>boom</b>" not in html and "&lt;b&gt;boom&lt;/b&gt;" in html
    assert "<i>x</i>" not in html


def test_write_report_writes_one_run(tmp_path: Path) -> None:
    """write_report(path, [doc]) — what --conformance-html calls at the end of a run — writes the page."""
    path = tmp_path / "sub" / "report.html"
    write_report(path, [Results.from_dict(failing_scenario_doc())])
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and "scenario.provider" in text


# --- the report command ------------------------------------------------------------------------------------------


def test_report_command_merges_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`pkcs11-conformance report A.json B.json -o out.html` exits 0 and writes one page with both runs' columns."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(run_doc([result("login.a")], vendors=("softhsm",))), encoding="utf-8")
    b.write_text(json.dumps(failing_scenario_doc()), encoding="utf-8")
    out = tmp_path / "out.html"
    assert cli_main(["report", str(a), str(b), "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "run aaaaaaaa" in html and "run feedbeef" in html
    assert f"--replay={b}" in html


def test_report_command_shows_an_interrupted_run(tmp_path: Path) -> None:
    """The report reads an interrupted run's file (the gate refuses it) and says so in the column's verdict."""
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(run_doc([result("login.a")], finished=None, exit_status=2)), encoding="utf-8")
    out = tmp_path / "out.html"
    assert cli_main(["report", str(partial), "-o", str(out)]) == 0
    assert "run interrupted: " in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("content, message, fix", [
    (None, "cannot read it", "check the path"),
    ("{not json", "not JSON", "pass a results file"),
    ('{"schema": "something/else", "results": []}', "schema is 'something/else'", "pass a results file"),
    ("[1, 2]", "not a results document", "pass a results file"),
])
def test_report_command_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          content: str | None, message: str, fix: str) -> None:
    """An unreadable file, non-JSON, or JSON that is not a results file: one line on stderr naming the file and the
    fix, exit 2, nothing written."""
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    out = tmp_path / "out.html"
    assert cli_main(["report", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert str(bad) in err and message in err and fix in err
    assert not out.exists()


def test_report_command_needs_output_and_inputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """No -o, or no results files: one line saying what to pass, exit 2."""
    good = tmp_path / "a.json"
    good.write_text(json.dumps(run_doc([result("login.a")])), encoding="utf-8")
    assert cli_main(["report", str(good)]) == 2
    assert "-o OUT.html" in capsys.readouterr().err
    assert cli_main(["report", "-o", str(tmp_path / "o.html")]) == 2
    assert "RESULTS.json" in capsys.readouterr().err


def test_trace_links_are_relative_to_the_page() -> None:
    """A trace recorded relative to its results file is linked relative to where the page is written, so the
    report, the results and reports/traces/ can be moved or published together."""
    from conformance.report.model import build
    from conformance.results.document import Results

    report = build([Results.from_dict(failing_scenario_doc())], ["/runs/nightly/results.json"], page_dir="/runs/pages")
    (cell,) = [c for c in cells_of(report, "scenario.provider") if c is not None]
    assert cell.trace_href == "../nightly/traces/provider.json"
