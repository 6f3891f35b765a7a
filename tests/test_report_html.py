"""The HTML compatibility report: the view model (merging runs) without a browser, the `report` command, and what a
reader sees when the page is loaded from file:// in headless Chromium (Debian's `chromium`)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conformance import RESULTS_SCHEMA
from conformance.cli import main as cli_main
from conformance.engine.schedule import Schedule
from conformance.profile import load_profile
from conformance.report_html import render, write_report
from conformance.report_model import Report, build, check_tests, compact
from conformance.results import Results

REPO = Path(__file__).resolve().parent.parent
SOFTHSM_PROFILE = REPO / "vendors" / "softhsm.toml"
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed; run scripts/bootstrap.sh (it installs Debian's chromium)")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FINDINGS = ("failed", "crashed", "hung", "error")

FAILED_STEPS = [{"actor": 0, "op": "acquire", "args": {}}, {"actor": 1, "op": "acquire", "args": {}},
                {"actor": 0, "op": "search", "args": {"ref": "it0", "session": "s0", "batch": 2}},
                {"actor": 1, "op": "release", "args": {}, "expect_block": True}]
HYPOTHESIS_NOTE = "You can reproduce this example by temporarily adding @reproduce_failure('6.100.0', b'AXic') to the test"
ISSUE = "https://github.com/pyauth/python-pkcs11/issues/999"


# --- hand-made results -------------------------------------------------------------------------------------------


def result(check: str, outcome: str = "passed", vendor: str = "softhsm", **extra: Any) -> dict[str, Any]:
    out = {"check": check, "vendor": vendor, "layer": extra.pop("layer", "module"), "outcome": outcome,
           "observed": None, "reason": "", "spec": "spec §1", "duration_s": 0.01, "reproducer": None, "trace": None,
           "deviations": []}
    out.update(extra)
    return out


def run_doc(results: list[dict[str, Any]], *, run_id: str = "aaaaaaaa0000", binding: str = "0.10.1",
            vendors: tuple[str, ...] = ("softhsm",), finished: str | None = "2026-01-01T00:01:00+00:00",
            sut: str = "conformance.refsession:reference_session") -> dict[str, Any]:
    return {
        "schema": RESULTS_SCHEMA,
        "run": {"id": run_id, "started": "2026-01-01T00:00:00+00:00", "finished": finished, "harness_version": "0.1.0",
                "python_pkcs11_version": binding, "python": "3.11.7", "platform": "Linux", "hypothesis_profile": "dev",
                "sut": sut},
        "vendors": {v: {"module": f"/usr/lib/{v}.so",
                        "library": {"manufacturer": v.upper(), "description": "lib", "version": "2.6",
                                    "cryptoki_version": "2.40"},
                        "token": {"label": "conformance", "model": "model", "serial": "123"}, "mechanisms": 70}
                    for v in vendors},
        "results": results,
    }


def failing_scenario_doc() -> dict[str, Any]:
    """A run with a failed scenario (reproducer + hypothesis note + trace) and a declared deviation with an issue."""
    return run_doc([
        result("scenario.provider", "failed", layer="provider",
               reason="Failed: failed: step 3 (actor1: release()): expected blocked, got ok  [provider: docs]\n\n"
                      "minimal schedule:\n...\nreplay: pytest --vendor=softhsm --replay=RESULTS.json -k test_provider",
               reproducer={"schedule": FAILED_STEPS, "hypothesis": HYPOTHESIS_NOTE}, trace="traces/provider.json"),
        result("binding.failed_login_closes_session", "xfailed", layer="binding",
               reason=f"declared binding deviation: leaks a session ({ISSUE})",
               deviations=[{"origin": "binding", "check": "binding.failed_login_closes_session",
                            "reason": "leaks a session", "outcome": "failed", "issue": ISSUE,
                            "versions": {"python-pkcs11": "==0.11.0"}}]),
        result("login.second_login_same_app", observed="UserAlreadyLoggedIn"),
    ], run_id="feedbeef00112233", binding="0.11.0")


def model(*docs: dict[str, Any], sources: list[str | None] | None = None) -> Report:
    return build([Results.from_dict(d) for d in docs], sources)


def cells_of(report: Report, check: str) -> list[Any]:
    return next(r.cells for a in report.areas for r in a.rows if r.check == check)


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


def test_interrupted_run_is_said_in_the_verdict() -> None:
    """A run whose results file was never finished says so first."""
    column = model(run_doc([result("a.1")], finished=None)).columns[0]
    assert column.verdict.startswith("run interrupted: ")


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


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it"),
    ("{not json", "not JSON"),
    ('{"schema": "something/else", "results": []}', "not a pkcs11-conformance results file"),
    ("[1, 2]", "not a pkcs11-conformance results file"),
])
def test_report_command_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          content: str | None, message: str) -> None:
    """An unreadable file, non-JSON, or JSON that is not a results file: one line on stderr naming the file and the
    fix, exit 2, nothing written."""
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    out = tmp_path / "out.html"
    assert cli_main(["report", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert str(bad) in err and message in err and "pass " in err
    assert not out.exists()


def test_report_command_needs_output_and_inputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """No -o, or no results files: one line saying what to pass, exit 2."""
    good = tmp_path / "a.json"
    good.write_text(json.dumps(run_doc([result("login.a")])), encoding="utf-8")
    assert cli_main(["report", str(good)]) == 2
    assert "-o OUT.html" in capsys.readouterr().err
    assert cli_main(["report", "-o", str(tmp_path / "o.html")]) == 2
    assert "RESULTS.json" in capsys.readouterr().err


# --- in headless Chromium ----------------------------------------------------------------------------------------


class Node:
    """An element of the DOM Chromium dumped (just enough to query by tag, class and attribute)."""

    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def all(self, tag: str = "", cls: str = "", **attrs: str) -> list[Node]:
        return [n for n in self.iter() if (not tag or n.tag == tag) and (not cls or cls in n.classes)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def child(self, tag: str) -> Node:
        """The first direct child element with this tag."""
        return next(c for c in self.children if isinstance(c, Node) and c.tag == tag)

    def one(self, tag: str = "", cls: str = "", **attrs: str) -> Node:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, f"{len(found)} matches for {tag}.{cls} {attrs}"
        return found[0]


class _DomBuilder(HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_dom(html: str) -> Node:
    builder = _DomBuilder()
    builder.feed(html)
    return builder.root


def chromium(workdir: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on a file:// URL with no network, a private profile dir; returns the finished process."""
    profile = workdir / "chromium-profile"
    cmd = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=workdir)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Every check on the real SoftHSM in a subprocess (-n 2); the results file it wrote (its HTML is beside it)."""
    if load_profile(SOFTHSM_PROFILE).module is None:
        pytest.skip("SoftHSM is not installed")
    work = tmp_path_factory.mktemp("real-run")
    out = work / "results.json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "conformance.checks", "-n", "2",
           f"--vendor-file={SOFTHSM_PROFILE}", f"--conformance-json={out}", f"--conformance-html={work / 'report.html'}",
           f"--basetemp={work / 'bt'}"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert out.exists() and (work / "report.html").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def merged(real_run: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real run merged with a hand-made later run of softhsm that has a failed scenario: (page, its file)."""
    work = tmp_path_factory.mktemp("merged")
    failing = work / "failing.json"
    failing.write_text(json.dumps(failing_scenario_doc()), encoding="utf-8")
    page = work / "merged.html"
    assert cli_main(["report", str(real_run[0]), str(failing), "-o", str(page)]) == 0
    return page, failing


@pytest.fixture(scope="module")
def dump_dom(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Node]:
    """The DOM Chromium built for a URL (cached per URL for the module)."""
    work = tmp_path_factory.mktemp("chromium")
    cache: dict[str, Node] = {}

    def dump(url: str) -> Node:
        if url not in cache:
            proc = chromium(work, url, "--dump-dom")
            assert proc.returncode == 0 and "<body" in proc.stdout, proc.stderr[-2000:]
            cache[url] = parse_dom(proc.stdout)
        return cache[url]

    return dump


@needs_chromium
def test_real_run_page_shows_vendor_column_and_summary(real_run, dump_dom) -> None:
    """The page --conformance-html wrote for a real SoftHSM run: a softhsm column whose header names module,
    library, token, mechanisms and python-pkcs11, and a summary with counts and the verdict line."""
    path, doc = real_run
    dom = dump_dom(path.with_name("report.html").as_uri())
    assert [n.text().strip() for n in dom.all(cls="column-head")][0].startswith("softhsm")
    card = dom.one("article", "card")
    facts = card.one("dl", "facts").text()
    info = doc["vendors"]["softhsm"]
    for value in (info["module"], info["library"]["version"], info["library"]["cryptoki_version"],
                  info["token"]["label"], info["token"]["serial"], str(info["mechanisms"]),
                  doc["run"]["python_pkcs11_version"]):
        assert value in facts, value
    outcomes = [r["outcome"] for r in doc["results"]]
    for outcome in set(outcomes):
        assert card.one(cls="count", data_outcome=outcome).one("b").text() == str(outcomes.count(outcome))
    findings = sum(outcomes.count(o) for o in FINDINGS)
    verdict = card.one(cls="verdict").text()
    assert verdict.startswith(f"{findings} finding") if findings else verdict.startswith(f"no findings in {len(outcomes)} checks")


@needs_chromium
def test_real_run_page_has_a_cell_per_check_with_its_outcome(real_run, dump_dom) -> None:
    """Every result is one row (in its area) with one cell coloured by its outcome; no detail is open at first."""
    path, doc = real_run
    dom = dump_dom(path.with_name("report.html").as_uri())
    rows = dom.all("details", "row")
    assert len(rows) == len(doc["results"])
    for record in doc["results"]:
        row = dom.one("details", "row", data_check=record["check"])
        cell = row.child("summary").one(cls="cell")
        assert f"o-{record['outcome']}" in cell.classes and record["outcome"] in cell.text()
    assert not [r for r in rows if "open" in r.attrs]
    areas = [a.attrs["data-area"] for a in dom.all(cls="area")]
    assert areas == sorted({r["check"].split(".")[0] for r in doc["results"]})


@needs_chromium
def test_merged_page_labels_the_same_vendor_distinctly(real_run, merged, dump_dom) -> None:
    """Two softhsm runs: two column headers, each with the python-pkcs11 version and short run id."""
    dom = dump_dom(merged[0].as_uri())
    labels = [n.one(cls="column-label").text() for n in dom.all(cls="column-head")]
    assert labels == [f"softhsm · python-pkcs11 {real_run[1]['run']['python_pkcs11_version']} · run {real_run[1]['run']['id'][:8]}",
                      "softhsm · python-pkcs11 0.11.0 · run feedbeef"]
    assert "2 columns from 2 runs" in dom.one(cls="headline").text()


@needs_chromium
def test_opening_a_failed_cell_shows_reproducer_and_replay(merged, dump_dom) -> None:
    """Opening the page at a failed scenario's cell opens its detail: outcome, layer, spec, the minimal schedule as
    a readable program, the hypothesis line, the trace link and the replay command."""
    page, failing = merged
    dom = dump_dom(page.as_uri() + "#c1-scenario-provider")
    row = dom.one("details", "row", data_check="scenario.provider")
    assert "open" in row.attrs, "the browser did not open the detail"
    summary_cell = row.child("summary").one(cls="cell", data_column="c1")
    assert "o-failed" in summary_cell.classes and "reproducer" in summary_cell.text()
    detail = dom.one(id="c1-scenario-provider")
    head = detail.one(cls="detail-head").text()
    assert "failed" in head and "provider" in head
    assert detail.one(cls="reason").text().startswith("failed: step 3 (actor1: release())")
    assert detail.one(cls="spec").text() == "spec §1"
    program = detail.one("pre", "program").text()
    assert program == Schedule.from_steps("provider", FAILED_STEPS).program()
    assert "actor1: release()   # expected to block" in program
    assert detail.one("pre", "hypothesis").text() == HYPOTHESIS_NOTE
    assert detail.one("a", "trace").attrs["href"] == (failing.parent / "traces/provider.json").as_uri()
    assert detail.one("pre", "replay").text() == f"pytest --vendor=softhsm --replay={failing} -k 'test_provider[softhsm]'"


@needs_chromium
def test_declared_deviation_detail_links_the_issue(merged, dump_dom) -> None:
    """A declared deviation's detail shows its reason and links its issue."""
    dom = dump_dom(merged[0].as_uri() + "#c1-binding-failed_login_closes_session")
    detail = dom.one(id="c1-binding-failed_login_closes_session")
    deviation = detail.one(cls="deviation")
    assert "leaks a session" in deviation.text()
    assert deviation.one("a", "issue").attrs["href"] == ISSUE


@needs_chromium
def test_screenshot_is_a_rendered_page(merged, tmp_path: Path) -> None:
    """A 1400x1000 screenshot of the merged page (summary cards, then the matrix) is a real PNG with varied content.
    (Taken at the top: headless Chromium paints only part of a page it scrolled to a #fragment.)"""
    shot = tmp_path / "shot.png"
    proc = chromium(tmp_path, merged[0].as_uri(), f"--screenshot={shot}", "--window-size=1400,1000")
    assert shot.exists(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 1000)
    assert len(data) > 30_000, f"only {len(data)} bytes: a blank page?"
    assert len(set(_png_pixels(data))) > 50, "the page looks blank"


def _png_pixels(data: bytes) -> bytes:
    """The decompressed image data (filtered scanlines) of a PNG: enough to tell a blank image from a page."""
    pos, chunks = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    return zlib.decompress(b"".join(chunks))
