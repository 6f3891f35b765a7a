"""What the benchmark says while it runs: a line per mechanism and per finished row; on a terminal also a status
line rewritten after every trial (so a long run is visibly alive)."""

from __future__ import annotations

import sys
from typing import Sequence, TextIO

from .record import Overhead, Row

OVERHEAD_TARGET_PCT = 5.0


class Progress:
    def __init__(self, stream: TextIO = sys.stdout, live: bool | None = None) -> None:
        self._out = stream
        self._live = stream.isatty() if live is None else live
        self._status = False

    def _line(self, text: str) -> None:
        if self._status:
            self._out.write("\r\033[K")
            self._status = False
        self._out.write(text + "\n")
        self._out.flush()

    def mechanism(self, vendor: str, mechanism: str, call_us: float, trial_s: float, cells: int) -> None:
        self._line(f"{vendor} {mechanism}: one call {call_us / 1000:.3f} ms; {cells} rows, trials of {trial_s:.2f} s")

    def overhead(self, vendor: str, o: Overhead) -> None:
        verdict = "ok" if o.percent <= OVERHEAD_TARGET_PCT else "OVER the target"
        self._line(f"  the benchmark's own overhead against a bare python-pkcs11 loop: {o.percent:+.1f}% "
                   f"({o.bare_us:.4g} -> {o.timed_us:.4g} µs per call; target <= {OVERHEAD_TARGET_PCT:.0f}%: {verdict})")

    def trial(self, vendor: str, mechanism: str, strategy: str, threads: int, round_: int, rounds: int,
              ops_per_s: float) -> None:
        if self._live:
            self._out.write(f"\r\033[K  round {round_}/{rounds}: {strategy} × {threads}: {ops_per_s:,.0f} ops/s")
            self._out.flush()
            self._status = True

    def ended(self, vendor: str, mechanism: str, detail: str) -> None:
        self._line(f"  {vendor} {mechanism}: {detail}")

    def skipped(self, vendor: str, mechanism: str, why: str) -> None:
        self._line(f"{vendor} {mechanism}: skipped ({why})")

    def rows(self, rows: Sequence[Row]) -> None:
        for row in rows:
            at = f"{row.strategy:10} {row.threads:>2} thread{'s' if row.threads != 1 else ' '}"
            if row.outcome == "measured" and row.ops_per_s:
                spread = row.spread / row.ops_per_s * 100
                self._line(f"  {at}  {row.ops_per_s:>10,.0f} ops/s  ±{spread / 2:4.1f}%  p50 {row.p50_ms:.3f} ms  "
                           f"p99 {row.p99_ms:.3f} ms")
            else:
                self._line(f"  {at}  {row.outcome}: {row.detail}")

    def problem(self, text: str) -> None:
        self._line(f"pkcs11-conformance bench: {text}")

    def done(self, text: str) -> None:
        self._line(text)
