"""Wall time against latency (issue 11): every shipped check on a shipped profile, unwrapped and behind the fault
shim with only delays (tests/native/faultshim.c), each slowed run gated against the unwrapped one. Not a test: it
measures and prints a markdown table (README, "Slow and network HSMs"); tests/test_latency.py asserts the verdicts.

    .venv/bin/python benchmarks/latency.py --vendor softhsm --vendor opencryptoki -o /tmp/latency
    .venv/bin/python benchmarks/latency.py --vendor softhsm --latency 20ms --profile dev     # a quick look
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from faults import build_shim  # noqa: E402
from wrapped_profiles import LATENCIES, run_checks, slowed_profile  # noqa: E402

from conformance.gate.compare import compare  # noqa: E402
from conformance.results.reader import read_results  # noqa: E402
from conformance.vendor.registry import SHIPPED  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vendor", action="append", required=True, help="a shipped profile (repeatable)")
    parser.add_argument("--latency", action="append", choices=sorted(LATENCIES),
                        help="a latency to run (repeatable; default: all)")
    parser.add_argument("--profile", default="ci", help="hypothesis profile (default: ci, as CI runs)")
    parser.add_argument("-o", "--out", type=Path, default=Path("latency-bench"), help="working directory")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    shim = build_shim(args.out)
    rows = ["| vendor | latency | wall time | against the unwrapped module |", "|---|---|---|---|"]
    for vendor in args.vendor:
        bare = run_checks(args.out, Path(SHIPPED) / f"{vendor}.toml", hypothesis_profile=args.profile)
        rows.append(f"| {vendor} | unwrapped | {bare.wall_s:.0f} s | — |")
        print(rows[-1], flush=True)
        for name in args.latency or list(LATENCIES):
            profile = slowed_profile(vendor, shim, LATENCIES[name], args.out / f"{vendor}-{name}.toml")
            slow = run_checks(args.out, profile, hypothesis_profile=args.profile)
            report = compare(read_results(bare.results, "baseline"), read_results(slow.results, "candidate"))
            counts = ", ".join(f"{n} {kind}" for kind, n in report.counts().items())
            rows.append(f"| {vendor} | {name} | {slow.wall_s:.0f} s | {counts} |")
            print(rows[-1], flush=True)
    print("\n".join(["", *rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
