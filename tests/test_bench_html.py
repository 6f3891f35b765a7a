"""bench.html, the benchmark's page: rendered from a hand-made bench document and read back with the stdlib's HTML
parser, then as a reader sees it (loaded from file:// in headless Chromium)."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from conformance.bench.html import render_bench_html, write_bench_html
from conformance.bench.record import BenchDoc, BenchRun, Overhead, Row, Settings, Trial, VendorFacts
from conformance.bench.svg import log_ticks, nice_ticks

from report_docs import needs_chromium
from test_report_chromium import Node, _png_pixels, chromium, parse_dom

ODD = "odd<&>\"vendor"  # a vendor name that is markup if not escaped
STRATEGIES = ("shared", "per_thread", "pool")
THREADS = (1, 2, 4, 8)


def _measured(vendor: str, mechanism: str, strategy: str, threads: int, ops: float) -> Row:
    trials = tuple(Trial(int(ops * f), 1.0) for f in (0.95, 1.0, 1.04))
    return Row(vendor, mechanism, strategy, threads, "measured", ops_per_s=ops, p50_ms=threads / ops * 1000,
               p95_ms=threads / ops * 1500, p99_ms=threads / ops * 2500, trials=trials)


def bench_doc(*, finished: bool = True) -> BenchDoc:
    """Two vendors × three strategies × four thread counts; softhsm's per_thread crashes at 2 threads and hangs at
    8, its search is skipped; the odd-named vendor has one mechanism and a problem text with markup."""
    settings = Settings(mechanisms=("rsa2048_sign", "sha256_digest", "search"), strategies=STRATEGIES,
                        threads=THREADS, trials=3, trial_s=1.0, warmup_s=0.2, pool_size=4)
    run = BenchRun(id="feedbeef" * 4, started="2024-05-01T10:00:00+00:00", harness_version="0.1.0",
                   python_pkcs11_version="0.7.0", python="3.11.9", platform="Linux-6.1-x86_64", cpus=8,
                   sut="", settings=settings, finished="2024-05-01T10:20:00+00:00" if finished else None)
    doc = BenchDoc(run)
    doc = doc.with_vendor("softhsm", VendorFacts(
        module="/usr/lib/softhsm/libsofthsm2.so", library={"manufacturer": "SoftHSM", "version": "2.6"},
        token="bench", stack=("p11-kit",),
        overhead=(Overhead("rsa2048_sign", 1000.0, 1010.0), Overhead("sha256_digest", 10.0, 11.0))))
    doc = doc.with_vendor(ODD, VendorFacts(module="/opt/<odd>/lib.so", problem="token <gone> & lost"))
    for mechanism, base in (("rsa2048_sign", 900.0), ("sha256_digest", 40000.0)):
        for s_i, strategy in enumerate(STRATEGIES):
            for threads in THREADS:
                if strategy == "per_thread" and threads in (2, 8):
                    outcome = "crashed" if threads == 2 else "hung"
                    doc = doc.with_row(Row("softhsm", mechanism, strategy, threads, outcome,
                                           detail=f"unsafe at {threads} threads: SIGSEGV <&>"))
                else:
                    doc = doc.with_row(_measured("softhsm", mechanism, strategy, threads,
                                                 base * threads ** (0.9 - 0.3 * s_i)))
    for strategy in STRATEGIES:
        for threads in THREADS:
            doc = doc.with_row(Row("softhsm", "search", strategy, threads, "skipped",
                                   detail="no objects to search <here>"))
    for threads in THREADS:
        doc = doc.with_row(_measured(ODD, "rsa2048_sign", "shared", threads, 500.0 + threads))
    return doc


def _vendor(dom: Node, name: str) -> Node:
    return dom.one("section", "vendor", data_vendor=name)


# --- the page's markup, without a browser --------------------------------------------------------------------------


def test_page_is_static_html_with_no_script_or_external_resource() -> None:
    """The page is standalone HTML5 (doctype, one html/head/body, charset) with no script, no event handler and no
    src/href that leaves the file: it works opened from file:// without a network."""
    html = render_bench_html(bench_doc())
    assert html.lstrip().lower().startswith("<!doctype html>")
    dom = parse_dom(html)
    assert len(dom.all("html")) == 1 and len(dom.all("head")) == 1 and len(dom.all("body")) == 1
    assert [m.attrs.get("charset") for m in dom.all("meta") if "charset" in m.attrs] == ["utf-8"]
    assert not dom.all("script") and "<script" not in html.lower()
    assert not re.search(r"\son\w+\s*=", html), "an inline event handler"
    for node in dom.iter():
        for attr in ("src", "href", "xlink:href"):
            value = node.attrs.get(attr)
            assert value is None or value.startswith("#"), f"{node.tag} {attr}={value}"
    assert "url(" not in html and "@import" not in html


def test_every_vendor_and_mechanism_has_its_section_and_figures() -> None:
    """One section per vendor; per mechanism measured, a throughput and a latency figure whose SVG is an image
    named after vendor and mechanism; the skipped mechanism shows its reason once and no plot."""
    dom = parse_dom(render_bench_html(bench_doc()))
    assert [s.attrs["data-vendor"] for s in dom.all("section", "vendor")] == ["softhsm", ODD]
    soft = _vendor(dom, "softhsm")
    for mechanism in ("rsa2048_sign", "sha256_digest"):
        for kind in ("throughput", "latency"):
            svg = soft.one("figure", kind, data_mechanism=mechanism).one("svg")
            assert svg.attrs["role"] == "img"
            for label in (svg.attrs["aria-label"], svg.child("title").text()):
                assert "softhsm" in label and mechanism in label
    search = soft.one("section", "mechanism", data_mechanism="search")
    assert not search.all("figure") and not search.all("svg")
    reasons = search.all(cls="skipped-reason")
    assert [r.text() for r in reasons] == ["skipped: no objects to search <here>"]


def test_points_carry_the_rows_numbers() -> None:
    """Each measured row is one circle.point in its strategy's series with its thread count, median ops/s and trial
    min/max as data attributes, and a whisker; each series with two or more consecutive numbers has a polyline."""
    doc = bench_doc()
    fig = _vendor(parse_dom(render_bench_html(doc)), "softhsm").one("figure", "throughput", data_mechanism="rsa2048_sign")
    rows = [r for r in doc.rows if r.vendor == "softhsm" and r.mechanism == "rsa2048_sign" and r.outcome == "measured"]
    assert len(fig.all("circle", "point")) == len(rows) == 10
    for row in rows:
        point = fig.one("g", "series", data_strategy=row.strategy).one("circle", "point", data_threads=str(row.threads))
        assert float(point.attrs["data-ops"]) == pytest.approx(row.ops_per_s, abs=1e-3)
        rates = [t.ops_per_s for t in row.trials]
        assert float(point.attrs["data-min"]) == pytest.approx(min(rates), abs=1e-3)
        assert float(point.attrs["data-max"]) == pytest.approx(max(rates), abs=1e-3)
    assert [s.attrs["data-strategy"] for s in fig.all("g", "series")] == list(STRATEGIES)
    assert len(fig.all("path", "whisker")) == 10
    assert len(fig.one("g", "series", data_strategy="shared").all("polyline")) == 1
    colours = {s.all("circle", "point")[0].attrs["fill"] for s in fig.all("g", "series")}
    assert len(colours) == 3, "strategies share a colour"
    assert [i.attrs["data-strategy"] for i in fig.all("g", "legend-item")] == list(STRATEGIES)


def test_higher_ops_sit_higher_on_the_plot() -> None:
    """The y scale goes up with ops/s and the x scale right with threads (shared's numbers grow with threads)."""
    fig = _vendor(parse_dom(render_bench_html(bench_doc())), "softhsm").one("figure", "throughput",
                                                                           data_mechanism="sha256_digest")
    points = fig.one("g", "series", data_strategy="shared").all("circle", "point")
    xs = [float(p.attrs["cx"]) for p in points]
    ys = [float(p.attrs["cy"]) for p in points]
    assert xs == sorted(xs) and len(set(xs)) == 4
    assert ys == sorted(ys, reverse=True)
    ticks = [t.text() for t in fig.all("text", "tick-label")]
    assert {"1", "2", "4", "8"} <= set(ticks) and "0" in ticks


def test_rows_without_a_number_are_unmeasured_markers_not_points() -> None:
    """per_thread's crashed (2 threads) and hung (8 threads) rows are red ✕ markers with their outcome at their
    thread count, broken out of the line (two polylines would need consecutive numbers: there are none)."""
    fig = _vendor(parse_dom(render_bench_html(bench_doc())), "softhsm").one("figure", "throughput",
                                                                           data_mechanism="rsa2048_sign")
    series = fig.one("g", "series", data_strategy="per_thread")
    marks = {(m.attrs["data-threads"], m.attrs["data-outcome"]) for m in series.all(cls="unmeasured")}
    assert marks == {("2", "crashed"), ("8", "hung")}
    assert {p.attrs["data-threads"] for p in series.all("circle", "point")} == {"1", "4"}
    assert not series.all("polyline"), "a line across a crash would invent a number"
    crashed = series.one(cls="unmeasured", data_outcome="crashed")
    assert "crashed" in crashed.one("text").text()
    assert "SIGSEGV <&>" in crashed.one("title").text()
    table = _vendor(parse_dom(render_bench_html(bench_doc())), "softhsm").one("section", "mechanism",
                                                                             data_mechanism="rsa2048_sign")
    row = table.one("tr", "row", data_strategy="per_thread", data_threads="2")
    assert row.one("td", "outcome").text() == "crashed" and "—" in row.text()


def test_latency_plot_has_p50_p95_p99_per_point() -> None:
    """Each measured row is a latency-point with its p50/p95/p99 in data attributes and three marks; p99 sits above
    p50 (a larger latency is higher on the log axis, whose label says so)."""
    doc = bench_doc()
    fig = _vendor(parse_dom(render_bench_html(doc)), "softhsm").one("figure", "latency", data_mechanism="rsa2048_sign")
    assert "log scale" in fig.one("svg").text()
    row = next(r for r in doc.rows if r.key == ("softhsm", "rsa2048_sign", "pool", 4))
    point = fig.one("g", "series", data_strategy="pool").one("g", "latency-point", data_threads="4")
    for attr, value in (("data-p50", row.p50_ms), ("data-p95", row.p95_ms), ("data-p99", row.p99_ms)):
        assert float(point.attrs[attr]) == pytest.approx(value, abs=1e-4)
    p50 = float(point.one("circle", "p50").attrs["cy"])
    p99 = float(point.one("line", "p99").attrs["y1"])
    assert p99 < p50
    assert len(fig.all("g", "latency-point")) == 10 and len(fig.all(cls="unmeasured")) == 2


def test_markup_in_names_and_details_is_escaped() -> None:
    """Vendor names, module paths, problems and details holding <, & and quotes are text, never markup."""
    html = render_bench_html(bench_doc())
    assert "<&>" not in html and "<gone>" not in html and "<odd>" not in html and "<here>" not in html
    assert "odd&lt;&amp;&gt;&#34;vendor" in html
    dom = parse_dom(html)
    odd = _vendor(dom, ODD)
    assert odd.one("p", "problem").text() == "could not be benchmarked: token <gone> & lost"
    assert "/opt/<odd>/lib.so" in odd.one("dl", "vendor-facts").text()
    assert ODD in odd.one("figure", "throughput", data_mechanism="rsa2048_sign").one("svg").attrs["aria-label"]


def test_header_shows_run_facts_and_overhead_verdicts() -> None:
    """The header names versions, platform, CPUs and settings; a run without an end says interrupted; the overhead
    table marks 1% ok and 10% over the 5% target."""
    dom = parse_dom(render_bench_html(bench_doc(finished=False)))
    facts = dom.one("dl", "run-facts").text()
    for value in ("0.1.0", "0.7.0", "3.11.9", "Linux-6.1-x86_64", "interrupted", "rsa2048_sign, sha256_digest, search",
                  "1, 2, 4, 8", "3 per row"):
        assert value in facts, value
    assert "interrupted" in dom.one("p", "status").text()
    overhead = _vendor(dom, "softhsm").one("table", "overhead")
    assert overhead.one("tr", data_mechanism="rsa2048_sign").one("td", "ok").text() == "ok"
    assert overhead.one("tr", data_mechanism="sha256_digest").one("td", "over").text() == "over"
    assert "target ≤ 5%" in _vendor(dom, "softhsm").one("p", "overhead-note").text()


def test_empty_document_renders() -> None:
    """A run that has measured nothing yet (the page is written early and often) still renders."""
    doc = BenchDoc(bench_doc().run)
    assert "No vendor yet" in render_bench_html(doc)


def test_mechanism_with_no_number_and_a_single_thread_count_renders() -> None:
    """A mechanism whose set-up crashed (every row crashed) keeps its plots: ✕ markers only, no y ticks, a 'no row
    was measured' note; one thread count sits mid-axis; a vendor with rows but no facts still gets its section."""
    doc = BenchDoc(bench_doc().run)
    doc = doc.with_row(Row("x", "random", "shared", 4, "crashed", detail="set-up crashed: SIGSEGV"))
    doc = doc.with_row(Row("x", "random", "pool", 4, "crashed", detail="set-up crashed: SIGSEGV"))
    dom = parse_dom(render_bench_html(doc))
    fig = _vendor(dom, "x").one("figure", "throughput", data_mechanism="random")
    assert not fig.all("circle", "point") and len(fig.all(cls="unmeasured", data_outcome="crashed")) == 2
    assert "no row was measured" in fig.one("text", "empty").text()
    assert [t.text() for t in fig.all("text", "tick-label")] == ["4"]
    ys = {float(m.attrs["transform"].split()[1].rstrip(")")) for m in fig.all(cls="unmeasured")}
    assert len(ys) == 2, "two ✕ at one thread count must not cover each other"


def test_nice_ticks_and_log_ticks() -> None:
    """Axis ticks are round numbers enclosing the data: linear from 0, 1-2-5 on a log axis."""
    assert nice_ticks(0, 9300) == (0, 2000, 4000, 6000, 8000, 10000)
    assert nice_ticks(0, 1.0) == (0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert log_ticks(0.3, 40) == (0.2, 0.5, 1, 2, 5, 10, 20, 50)
    assert log_ticks(0.001, 1000) == (0.001, 0.01, 0.1, 1, 10, 100, 1000)


# --- as a reader sees it: headless Chromium on file:// -------------------------------------------------------------


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench-page") / "bench.html"
    write_bench_html(path, bench_doc())
    return path


@needs_chromium
def test_chromium_builds_the_svg_plots(page: Path, tmp_path: Path) -> None:
    """The DOM Chromium built from the file has every figure's <svg> with its series, points and ✕ markers (the
    browser parsed the inline SVG as such: an escaping slip would have eaten elements)."""
    proc = chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert proc.returncode == 0 and "<body" in proc.stdout, proc.stderr[-2000:]
    dom = parse_dom(proc.stdout)
    assert not dom.all("script")
    soft = _vendor(dom, "softhsm")
    assert len(soft.all("svg")) == 4
    fig = soft.one("figure", "throughput", data_mechanism="sha256_digest")
    assert [s.attrs["data-strategy"] for s in fig.all("g", "series")] == list(STRATEGIES)
    assert len(fig.all("circle", "point")) == 10 and len(fig.all("polyline")) == 2
    assert {m.attrs["data-outcome"] for m in fig.all(cls="unmeasured")} == {"crashed", "hung"}
    odd = _vendor(dom, ODD)
    assert len(odd.one("figure", "throughput").all("circle", "point")) == 4
    assert odd.one("p", "problem").text() == "could not be benchmarked: token <gone> & lost"


@needs_chromium
def test_chromium_screenshot_is_a_rendered_page(page: Path, tmp_path: Path) -> None:
    """A 1400x1000 screenshot of the page is a non-empty PNG with varied content (header, then the first plots)."""
    shot = tmp_path / "bench.png"
    proc = chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1400,1000")
    assert shot.exists() and shot.stat().st_size > 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1400, 1000)
    assert len(set(_png_pixels(data))) > 50, "the page looks blank"
