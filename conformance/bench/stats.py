"""Latencies as a mergeable log-scale histogram (2% wide buckets: percentiles to within 1%, a few hundred numbers
per trial instead of every call's), and the medians and percentiles the rows report."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Iterable, Mapping, Sequence

RATIO = 1.02
_LOG = math.log(RATIO)


def histogram(latencies_ns: Iterable[int]) -> dict[int, int]:
    """bucket -> calls; bucket b holds latencies in [RATIO**b, RATIO**(b+1)) ns."""
    return dict(Counter(int(math.log(max(ns, 1)) / _LOG) for ns in latencies_ns))


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    total: Counter[int] = Counter()
    for h in histograms:
        total.update(h)
    return dict(total)


def percentile_ms(hist: Mapping[int, int], q: float) -> float | None:
    """The q-th percentile (0 < q <= 100) in ms: the geometric middle of the bucket it falls in."""
    n = sum(hist.values())
    if n == 0:
        return None
    rank = max(1, math.ceil(q / 100.0 * n))
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return RATIO ** (bucket + 0.5) / 1e6
    raise AssertionError("unreachable: the ranks add up to n")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
