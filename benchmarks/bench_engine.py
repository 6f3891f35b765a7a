"""Benchmarks of the concurrency engine's targets (issue 3), on the real SoftHSM token. Not a test: it measures
and prints; run it after changing the executor, and compare with the numbers in the README.

    .venv/bin/python benchmarks/bench_engine.py            # add --faulty to time catching each faulty provider

Targets: per-example reset <= 2 ms; executor overhead per step <= 2x the bare thread hand-off measured in the same
child; each faulty provider caught in <= 10 s and shrunk to <= 6 steps (default profile).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from hypothesis import settings  # noqa: E402

from conformance.engine import hypothesis_profiles  # noqa: E402
from conformance.executor.parent import Executor  # noqa: E402
from conformance.engine.families import FAMILIES  # noqa: E402
from conformance.engine.params import ModelParams  # noqa: E402
from conformance.engine.planning import plan  # noqa: E402
from conformance.engine.explore import explore  # noqa: E402
from conformance.engine.schedule import Step  # noqa: E402
from conformance.vendor.profile import load_profile  # noqa: E402
from conformance.vendor.runtime import start  # noqa: E402

CHEAP = {"random": {}, "digest": {}}


def executor_for(runtime, workdir: Path, sut: str) -> Executor:
    """A process like the vendor's own executor, with `sut` as its session provider."""
    return runtime.executor.sibling(workdir.name, sut=sut)


def per_step_overhead(executor: Executor, steps: int, op: str) -> tuple[float, float]:
    """(overhead µs per step, mean call µs): run time in the child minus the calls' own time, per step."""
    schedule = plan(FAMILIES["operations"], ModelParams(),
                    [Step(0, "open", {"ref": "s0", "login": False})] + [Step(0, op, {"session": "s0"})] * steps)
    overheads, calls = [], []
    for _ in range(20):
        trace = executor.run(schedule)
        call_us = sum(r.duration_us for r in trace.results)
        overheads.append((trace.run_us - call_us) / len(trace.results))
        calls.append(call_us / len(trace.results))
    return statistics.median(overheads), statistics.median(calls)


def resets(executor: Executor, n: int) -> list[float]:
    schedule = plan(FAMILIES["operations"], ModelParams(),
                    [Step(0, "open", {"ref": "s0", "login": False}), Step(0, "search", {"ref": "it0", "session": "s0", "batch": 2}),
                     Step(0, "next", {"iterator": "it0"}), Step(1, "open", {"ref": "s1", "login": False})])
    return [executor.run(schedule).reset_us for _ in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faulty", action="store_true", help="also time catching each faulty provider")
    args = parser.parse_args()
    runtime = start(load_profile(REPO / "conformance" / "profiles" / "softhsm.toml"), Path(tempfile.mkdtemp(prefix="bench-")))
    executor = executor_for(runtime, Path(tempfile.mkdtemp(prefix="bench-exec-")), "conformance.refsession:reference_session")
    try:
        floor = statistics.median(executor.queue_floor() for _ in range(5))
        print(f"thread hand-off floor (round trip, same child): {floor:.1f} µs")
        for op in CHEAP:
            overhead, call = per_step_overhead(executor, 200, op)
            verdict = "ok" if overhead <= 2 * floor else "OVER TARGET"
            print(f"executor overhead per step ({op}, call itself {call:.1f} µs): {overhead:.1f} µs "
                  f"= {overhead / floor:.2f}x floor [{verdict}]")
        samples = sorted(resets(executor, 200))
        p50, p95 = samples[len(samples) // 2], samples[int(len(samples) * 0.95)]
        print(f"per-example reset: median {p50 / 1000:.2f} ms, p95 {p95 / 1000:.2f} ms "
              f"[{'ok' if p50 <= 2000 else 'OVER TARGET'}]")
    finally:
        executor.close()
    if args.faulty:
        import faulty_providers

        hypothesis_profiles.register()
        settings.load_profile("dev")
        for name, (check, _) in sorted(faulty_providers.EXPECTED.items()):
            if check != "scenario.provider":
                continue
            ex = executor_for(runtime, Path(tempfile.mkdtemp(prefix=f"bench-{name}-")), f"faulty_providers:{name}")
            started = time.perf_counter()
            found = explore(ex, "provider", ModelParams(failed_login_leaks_session=True))
            elapsed = time.perf_counter() - started
            ex.close()
            steps = len(found.failure.schedule.steps) if found.failure else None
            ok = found.failure is not None and elapsed <= 10 and steps is not None and steps <= 6
            print(f"faulty provider {name:20} caught={found.failure is not None} in {elapsed:.1f} s, "
                  f"{found.examples} examples, minimal schedule {steps} steps [{'ok' if ok else 'OVER TARGET'}]")
    runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
