"""bench.html: the benchmark's page, per vendor and mechanism a throughput plot, a latency plot and the rows' table.

One static file: inline CSS and SVG, no script, no network (works from file://). The plots' geometry comes from
bench/svg.py; this module groups the document's rows into the page's view and renders templates/bench.html.j2
(autoescaped: vendor names and details are the module's words and may hold markup)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ..results.document import write_atomic
from .progress import OVERHEAD_TARGET_PCT
from .record import OUTCOMES, BenchDoc, Row, VendorFacts
from .svg import UNMEASURED_COLOUR, Chart, colour, latency_chart, throughput_chart

TEMPLATE = "bench.html.j2"


@dataclass(frozen=True)
class OverheadView:
    mechanism: str
    bare_us: float
    timed_us: float
    percent: float
    ok: bool  # within the target: the harness' own loop costs little against a bare python-pkcs11 loop


@dataclass(frozen=True)
class MechanismView:
    name: str
    anchor: str
    skipped: tuple[str, ...]  # every row skipped: the reasons (once each) replace the plots
    throughput: Chart | None
    latency: Chart | None
    rows: tuple[Row, ...]
    counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class VendorView:
    name: str
    anchor: str
    facts: VendorFacts
    library: str
    overhead: tuple[OverheadView, ...]
    mechanisms: tuple[MechanismView, ...]


@dataclass(frozen=True)
class Page:
    doc: BenchDoc
    status: str  # "finished …" or why there is no end
    counts: tuple[tuple[str, int], ...]  # rows per outcome, over the page
    strategies: tuple[tuple[str, str], ...]  # (strategy, colour): one colour per strategy on every plot
    vendors: tuple[VendorView, ...]


def _ordered(first: Iterable[str], then: Iterable[str]) -> tuple[str, ...]:
    """The settings' order first (what the user asked), then anything the rows add, each once."""
    return tuple(dict.fromkeys([*first, *then]))


def _counts(rows: Sequence[Row]) -> tuple[tuple[str, int], ...]:
    found = Counter(r.outcome for r in rows)
    return tuple((o, found[o]) for o in _ordered(OUTCOMES, found) if found[o])


def _library(facts: VendorFacts) -> str:
    lib = facts.library
    parts = [str(lib.get(k, "")).strip() for k in ("manufacturer", "description")]
    text = " · ".join(p for p in parts if p)
    version = str(lib.get("version", "")).strip()
    return f"{text} · {version}" if text and version else (text or version)


def _mechanism(name: str, anchor: str, rows: Sequence[Row], strategies: Sequence[str],
               colours: dict[str, str]) -> MechanismView:
    order = {s: i for i, s in enumerate(strategies)}
    rows = tuple(sorted(rows, key=lambda r: (order.get(r.strategy, len(order)), r.threads)))
    if rows and all(r.outcome == "skipped" for r in rows):
        reasons = tuple(dict.fromkeys(r.detail or "no reason given" for r in rows))
        return MechanismView(name, anchor, reasons, None, None, rows, _counts(rows))
    present = [s for s in strategies if any(r.strategy == s for r in rows)]
    return MechanismView(name, anchor, (), throughput_chart(rows, present, colours),
                         latency_chart(rows, present, colours), rows, _counts(rows))


def build_page(doc: BenchDoc) -> Page:
    """The page's view of a document: vendors in the document's order, mechanisms and strategies in the settings'."""
    settings = doc.run.settings
    strategies = _ordered(settings.strategies, (r.strategy for r in doc.rows))
    colours = {s: colour(i) for i, s in enumerate(strategies)}
    vendors = []
    for vi, name in enumerate(_ordered(doc.vendors, (r.vendor for r in doc.rows)), 1):
        facts = doc.vendors.get(name, VendorFacts(module=""))
        mine = [r for r in doc.rows if r.vendor == name]
        mechanisms = tuple(
            _mechanism(m, f"v{vi}-m{mi}", [r for r in mine if r.mechanism == m], strategies, colours)
            for mi, m in enumerate(_ordered(settings.mechanisms, (r.mechanism for r in mine)), 1)
            if any(r.mechanism == m for r in mine))
        overhead = tuple(OverheadView(o.mechanism, o.bare_us, o.timed_us, o.percent, o.percent <= OVERHEAD_TARGET_PCT)
                         for o in facts.overhead)
        vendors.append(VendorView(name, f"v{vi}", facts, _library(facts), overhead, mechanisms))
    status = (f"finished {doc.run.finished}" if doc.run.finished
              else "interrupted (or still running): the rows measured so far")
    return Page(doc, status, _counts(doc.rows), tuple(colours.items()), tuple(vendors))


# --- formatting, as template filters -----------------------------------------------------------------------------


def fmt_ops(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}" if value >= 100 else f"{value:.3g}" if value >= 0.001 else f"{value:.2e}"


def fmt_raw(value: float | None) -> str:
    """A data-* attribute's number: plain, enough digits to compare with bench.json."""
    return "" if value is None else repr(round(float(value), 4))


def fmt_px(value: float) -> str:
    return f"{value:.1f}"


def fmt_spread(row: Row) -> str:
    if not row.trials or not row.ops_per_s:
        return "—"
    return f"{fmt_ops(row.spread)} ({row.spread / row.ops_per_s * 100:.1f}%)"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("conformance.bench", "templates"),
        autoescape=select_autoescape(["j2", "html"]),
        undefined=StrictUndefined,  # a misspelt field is a rendering error, not a silently empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ops=fmt_ops, ms=fmt_ms, raw=fmt_raw, px=fmt_px, spread=fmt_spread)
    env.globals.update(target=OVERHEAD_TARGET_PCT, red=UNMEASURED_COLOUR)
    return env


def render_bench_html(doc: BenchDoc) -> str:
    return _environment().get_template(TEMPLATE).render(page=build_page(doc))


def write_bench_html(path: Path, doc: BenchDoc) -> None:
    """Atomically: the page is rewritten after every mechanism, and a reader never meets half of it."""
    write_atomic(Path(path), render_bench_html(doc))
