"""How long the harness waits, derived from the module's measured latency (latency.py), never from constants alone:
on a local SoftHSM the waits stay at their floors (as fast as ever); on a module 20 ms away or with a 1.5 s login
they grow with it, so a slow module is slow, never `hung` or a finding. An explicit option (--block-window,
--step-timeout, --check-timeout) always wins.

Every bound is SAFETY times the work it covers — so many calls at the slowest call measured, so many logins at the
slowest login — and never below its floor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .protocol import Latency, Limits

SAFETY = 4.0
STEP_CALLS = 12  # the most module calls one step makes (a find_all: init, a fetch per batch, final, a read per object)
TYPICAL_STEP_CALLS = 6
EXAMPLE_LOGINS = 4  # the most logins one drawn example makes (sessions family: open with a PIN, acquire)
# Floors: what the harness used before it measured (a local soft token answers in microseconds).
BLOCK_WINDOW_S = 0.05
STEP_TIMEOUT_S = 1.0
CHECK_TIMEOUT_S = 120.0
STRESS_TIMEOUT_S = 15.0
APPLICATION_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Explicit:
    """What the command line fixed; None: derived from the latency."""

    block_window: float | None = None
    step_timeout: float | None = None
    check_timeout: float | None = None


@dataclass(frozen=True)
class Timing:
    per_call: float  # seconds: the slowest single call measured
    login: float  # seconds: the slowest login measured
    limits: Limits  # what the module's process waits (block window, step timeout, end-of-schedule watch)
    check_timeout: float | None  # a check body's bound; None: derived per check from the work it does
    explicit: Explicit = Explicit()

    def budget(self, *, calls: int = 0, logins: int = 0, floor: float = 0.0) -> float:
        """A bound for work of `calls` module calls and `logins` logins: SAFETY times what it should take."""
        return max(floor, SAFETY * (calls * self.per_call + logins * self.login))

    def check_budget(self) -> float:
        """A check body in the module's process (a few hundred calls and a few logins at most)."""
        if self.check_timeout is not None:
            return self.check_timeout
        return self.budget(calls=500, logins=10, floor=CHECK_TIMEOUT_S)

    def exploration_budget(self, examples: int, max_steps: int) -> float:
        """A whole exploration: every example at its longest (each step's calls, a block window, its logins)."""
        if self.check_timeout is not None:
            return self.check_timeout
        per_example = max_steps * (TYPICAL_STEP_CALLS * self.per_call + self.limits.block_window) + \
            EXAMPLE_LOGINS * self.login + STEP_CALLS * self.per_call  # the reset
        return max(CHECK_TIMEOUT_S, SAFETY * examples * per_example)

    def stress_budget(self, threads: int, iterations: int, calls_per_use: int = TYPICAL_STEP_CALLS) -> float:
        """One free-running stress round, every thread's uses one after the other (a shared session serialises),
        each acquire possibly a new session and login (a refcounted session closes on its last release)."""
        uses = threads * iterations
        return self.budget(calls=uses * calls_per_use, logins=uses, floor=STRESS_TIMEOUT_S)

    def applications_budget(self, rounds: int) -> float:
        """A process's login rounds (open, login, logout, close each)."""
        return self.budget(calls=3 * rounds, logins=rounds, floor=APPLICATION_TIMEOUT_S)

    def to_dict(self) -> dict[str, Any]:
        """For the results (vendors.NAME.timing): what was measured and what the waits became."""
        return {"per_call_s": round(self.per_call, 6), "login_s": round(self.login, 6),
                "block_window_s": round(self.limits.block_window, 4), "step_timeout_s": round(self.limits.step_timeout, 4),
                "end_watch_s": round(self.limits.end_watch, 4), "check_timeout_s": self.check_timeout,
                "explicit": sorted(k for k, v in vars(self.explicit).items() if v is not None)}


def derive(latency: Latency | None, explicit: Explicit = Explicit(), base: Limits = Limits()) -> Timing:
    """The waits for a module of this latency (None: not measured, the floors)."""
    call = latency.per_call() if latency else 0.0
    login = latency.login_s() if latency else 0.0
    step_timeout = explicit.step_timeout or max(STEP_TIMEOUT_S, SAFETY * (login + STEP_CALLS * call))
    block_window = explicit.block_window or max(BLOCK_WINDOW_S, 3 * TYPICAL_STEP_CALLS * call)
    # A call released by the last steps still has its own calls to make before it returns.
    end_watch = max(block_window, SAFETY * STEP_CALLS * call)
    limits = replace(base, block_window=block_window, step_timeout=step_timeout, end_watch=end_watch)
    return Timing(call, login, limits, explicit.check_timeout, explicit)
