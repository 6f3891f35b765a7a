"""The HTML compatibility report as a reader sees it: pages loaded from file:// in headless Chromium (Debian's
`chromium`, installed by scripts/bootstrap.sh)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conformance.cli import main as cli_main
from conformance.engine.schedule import Schedule
from conformance.vendor.profile import load_profile

from conftest import INNER_RUN_TIMEOUT_S
from report_docs import (
    CHROMIUM, CHROMIUM_FLAGS, FAILED_STEPS, FINDINGS, HYPOTHESIS_NOTE, ISSUE, SOFTHSM_PROFILE, failing_scenario_doc,
    needs_chromium,
)


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
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=INNER_RUN_TIMEOUT_S,
                          env=dict(os.environ))
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
    # Relative to the page (written beside the results here): the report and its traces move together.
    assert detail.one("a", "trace").attrs["href"] == "traces/provider.json"
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
