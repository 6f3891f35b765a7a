"""The geometry of bench.html's plots, computed here so the page is static SVG (no script): scales, "nice" ticks,
and each figure's shapes in pixels. The template only writes these out; nothing here knows HTML or escapes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from .record import Row

# Okabe-Ito: tell-apart colours that survive colour blindness; red is kept for what was not measured.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#444444", "#B8A000", "#8B5A2B")
UNMEASURED_COLOUR = "#C62828"


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Frame:
    """The SVG's size and its plot area (pixels; y grows downwards): left/right, top/bottom of the area."""

    width: int = 660
    height: int = 340
    left: float = 64.0
    right: float = 510.0  # the rest, on the right, is the legend's: it never covers data
    top: float = 16.0
    bottom: float = 290.0


@dataclass(frozen=True)
class Linear:
    lo: float
    hi: float
    start: float  # pixel of lo
    end: float  # pixel of hi

    def __call__(self, value: float) -> float:
        if self.hi == self.lo:
            return (self.start + self.end) / 2
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)


@dataclass(frozen=True)
class Log:
    """Positions by logarithm: doubling thread counts sit evenly apart, latencies over decades stay readable."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        if self.hi <= self.lo:
            return (self.start + self.end) / 2
        share = (math.log(max(value, self.lo)) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        return self.start + share * (self.end - self.start)


def nice_step(span: float, count: int) -> float:
    """A step of 1, 2, 2.5 or 5 × 10^k giving about `count` intervals over `span`."""
    raw = span / max(count, 1)
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for mult in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= mult * power * (1 + 1e-9):
            return mult * power
    return 10.0 * power


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[float, ...]:
    """Round tick values from at or below `lo` to at or above `hi` (the first and last are the axis' ends)."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    step = nice_step(hi - lo, count)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return tuple(round(i * step, 12) for i in range(first, last + 1))


def log_ticks(lo: float, hi: float) -> tuple[float, ...]:
    """1-2-5 ticks enclosing [lo, hi] (only the powers of ten when that makes too many)."""
    lo, hi = max(lo, 1e-9), max(hi, lo)
    if hi <= lo * 1.001:  # one value: widen to a tick either side, or the axis has no length
        lo, hi = lo / 2, hi * 2
    start, stop = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mults in ((1.0, 2.0, 5.0), (1.0,)):
        ticks = [m * 10.0 ** k for k in range(start, stop + 1) for m in mults]
        below = [t for t in ticks if t <= lo * (1 + 1e-9)]
        above = [t for t in ticks if t >= hi * (1 - 1e-9)]
        inside = [t for t in ticks if (below[-1] if below else ticks[0]) <= t <= (above[0] if above else ticks[-1])]
        if len(inside) <= 9 or len(mults) == 1:
            return tuple(float(f"{t:.6g}") for t in inside)
    return ()  # unreachable: the last round always returns


def compact(value: float) -> str:
    """A tick label: 12k, 1.5M, 0.25."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:g}{unit}"
    return f"{value:g}"


def points(xy: Sequence[tuple[float, float]]) -> str:
    """The points attribute of a polyline."""
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)


def dodge(index: int, count: int, gap: float) -> float:
    """Horizontal offset of the index-th of `count` marks at one x, so strategies at one thread count don't hide
    each other's whiskers."""
    return (index - (count - 1) / 2) * gap


# --- the figures --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Mark:
    """One row on a plot, in pixels. Measured: y (and whisker ends lo/hi, or p95/p99 for latency). Unmeasured: the
    ✕ at (x, y) with its label; `text_end` puts the label left of the ✕ near the right edge."""

    row: Row
    x: float
    y: float
    lo: float = 0.0
    hi: float = 0.0
    mid: float = 0.0
    text_end: bool = False

    @property
    def measured(self) -> bool:
        return self.row.outcome == "measured" and self.row.ops_per_s is not None


@dataclass(frozen=True)
class Series:
    strategy: str
    colour: str
    lines: tuple[str, ...]  # polylines through consecutive measured points (broken where a row has no number)
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class Chart:
    frame: Frame
    xticks: tuple[Tick, ...]
    yticks: tuple[Tick, ...]
    series: tuple[Series, ...]
    empty: bool  # no row has a number: the axes are drawn, the y ticks are not


def _thread_scale(rows: Sequence[Row], f: Frame) -> tuple[Log, tuple[Tick, ...], float]:
    """The x scale (log of threads, padded so end marks and labels fit), its ticks and the gap between counts."""
    counts = sorted({r.threads for r in rows}) or [1]
    pad = 40.0
    scale = Log(counts[0], counts[-1], f.left + pad, f.right - pad)
    gap = (scale.end - scale.start) / max(len(counts) - 1, 1)
    return scale, tuple(Tick(scale(t), str(t)) for t in counts), gap


def _unmeasured(row: Row, x: float, f: Frame, stack: dict[int, int]) -> Mark:
    """An ✕ at the bottom of the plot at its thread count; several at one count stack upwards (from the level
    `stack` holds for that count: _place staggers neighbouring counts, whose labels face each other)."""
    level = stack.get(row.threads, 0)
    stack[row.threads] = level + 1
    return Mark(row, x, f.bottom - 12 - 16 * level, text_end=x > (f.left + f.right) / 2)


def _series(strategies: Sequence[str], colours: dict[str, str], place: dict[str, list[Mark]]) -> tuple[Series, ...]:
    out = []
    for s in strategies:
        runs: list[list[tuple[float, float]]] = [[]]
        for m in place[s]:
            if m.measured:
                runs[-1].append((m.x, m.y))
            elif runs[-1]:
                runs.append([])
        lines = tuple(points(r) for r in runs if len(r) > 1)
        out.append(Series(s, colours[s], lines, tuple(place[s])))
    return tuple(out)


def throughput_chart(rows: Sequence[Row], strategies: Sequence[str], colours: dict[str, str]) -> Chart:
    """ops/s (linear, from 0) against threads; each measured point has a whisker over its trials' min..max."""
    f = Frame()
    xs, xticks, gap = _thread_scale(rows, f)
    by = {s: sorted((r for r in rows if r.strategy == s), key=lambda r: r.threads) for s in strategies}
    measured = [r for r in rows if r.outcome == "measured" and r.ops_per_s is not None]
    top = max([r.ops_per_s or 0.0 for r in measured] + [t.ops_per_s for r in measured for t in r.trials], default=0.0)
    ticks = nice_ticks(0.0, top) if measured else (0.0, 1.0)
    ys = Linear(ticks[0], ticks[-1], f.bottom, f.top)
    shift = min(6.0, gap / (3 * max(len(strategies), 1)))

    def mark(r: Row, x: float) -> Mark | None:
        if r.outcome != "measured" or r.ops_per_s is None:
            return None
        rates = [t.ops_per_s for t in r.trials] or [r.ops_per_s]
        return Mark(r, x, ys(r.ops_per_s), lo=ys(min(rates)), hi=ys(max(rates)))

    place = _place(by, strategies, xs, shift, f, mark)
    yticks = tuple(Tick(ys(v), compact(v)) for v in ticks) if measured else ()
    return Chart(f, xticks, yticks, _series(strategies, colours, place), not measured)


def _place(by: dict[str, list[Row]], strategies: Sequence[str], xs: Callable[[float], float], shift: float,
           f: Frame, mark: Callable[[Row, float], Mark | None]) -> dict[str, list[Mark]]:
    """Each strategy's marks, dodged apart at each thread count; a row `mark` gives no number for is an ✕."""
    counts = sorted({r.threads for rows in by.values() for r in rows})
    # Every other thread count's labels start higher, so two neighbours' labels never share a line.
    stack: dict[int, int] = {t: (i % 2) * len(strategies) for i, t in enumerate(counts)}
    place: dict[str, list[Mark]] = {}
    for i, s in enumerate(strategies):
        place[s] = [mark(r, xs(r.threads) + dodge(i, len(strategies), shift)) or _unmeasured(r, xs(r.threads), f, stack)
                    for r in by[s]]
    return place


def latency_chart(rows: Sequence[Row], strategies: Sequence[str], colours: dict[str, str]) -> Chart:
    """Per-call latency (log scale) against threads: per strategy a stem from p50 (y) over p95 (mid) to p99 (hi)."""
    f = Frame()
    xs, xticks, gap = _thread_scale(rows, f)
    by = {s: sorted((r for r in rows if r.strategy == s), key=lambda r: r.threads) for s in strategies}
    values = [v for r in rows if r.outcome == "measured" for v in (r.p50_ms, r.p95_ms, r.p99_ms)
              if v is not None and v > 0]
    ticks = log_ticks(min(values), max(values)) if values else ()
    ys = Log(ticks[0], ticks[-1], f.bottom, f.top) if len(ticks) > 1 else Log(1.0, 1.0, f.bottom, f.top)
    floor = ticks[0] if ticks else 1.0  # a 0 ms percentile (a coarse clock) sits on the axis, not below it
    shift = min(14.0, gap * 0.6 / max(len(strategies), 1))

    def mark(r: Row, x: float) -> Mark | None:
        if r.outcome != "measured" or r.p50_ms is None:
            return None
        p50 = max(r.p50_ms, floor)
        p95, p99 = max(r.p95_ms or p50, floor), max(r.p99_ms or p50, floor)
        return Mark(r, x, ys(p50), mid=ys(p95), hi=ys(p99))

    place = _place(by, strategies, xs, shift, f, mark)
    yticks = tuple(Tick(ys(v), compact(v)) for v in ticks)
    # No polylines: latency marks are read one by one, a line would suggest an interpolation between thread counts.
    series = tuple(Series(s.strategy, s.colour, (), s.marks) for s in _series(strategies, colours, place))
    return Chart(f, xticks, yticks, series, not values)
