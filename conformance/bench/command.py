"""`pkcs11-conformance bench`: its options (declared once, with help), their validation (one line naming the fix,
exit 2) and the run: DIR/bench.json and DIR/bench.html, rewritten after every mechanism so an interrupt keeps what
was measured."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .progress import Progress
from .record import BenchDoc, Settings

MECHANISMS = ("rsa2048_sign", "rsa3072_sign", "ecdsa_p256_sign", "aes_gcm_4k_encrypt", "sha256_digest", "random",
              "search")
STRATEGIES = ("shared", "per_thread", "pool")  # "sut" joins them with --sut
THREADS = (1, 2, 4, 8)
DEFAULTS = {"trials": 5, "trial_s": 0.5, "warmup_s": 0.2, "pool_size": 2, "hang_s": 10.0}
SHORT = {"threads": (1, 2), "trials": 3, "trial_s": 0.1, "warmup_s": 0.05}  # --short: a quick look (CI)
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class BenchUsageError(ValueError):
    """Bad options; the message is one line naming the fix."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vendor", dest="vendors", action="append", default=[], metavar="NAME",
                        help="a vendor profile (repeatable; `all`: every profile whose module is present)")
    parser.add_argument("--vendor-file", dest="vendor_files", action="append", default=[], metavar="PATH",
                        help="a vendor profile file (repeatable)")
    parser.add_argument("--vendor-dir", dest="vendor_dirs", action="append", default=[], metavar="DIR",
                        help="local profile directory, searched before the shipped profiles (default: ./vendors)")
    parser.add_argument("-o", dest="out", default="reports/bench", metavar="DIR",
                        help="where bench.json and bench.html go (default reports/bench)")
    parser.add_argument("--mechanism", dest="mechanisms", action="append", default=[], metavar="NAME",
                        help=f"only these mechanisms (repeatable): {', '.join(MECHANISMS)}")
    parser.add_argument("--strategy", dest="strategies", action="append", default=[], metavar="NAME",
                        help="only these session strategies (repeatable): shared (the docs' refcounted session), "
                        "per_thread, pool, sut (with --sut)")
    parser.add_argument("--threads", action="append", type=int, default=[], metavar="N",
                        help="thread counts (repeatable; default 1 2 4 8)")
    parser.add_argument("--trials", type=int, help=f"timed trials per row (default {DEFAULTS['trials']})")
    parser.add_argument("--trial-seconds", dest="trial_s", type=float,
                        help=f"least wall time of a trial (default {DEFAULTS['trial_s']}; longer where 20 calls take "
                        "longer)")
    parser.add_argument("--warmup-seconds", dest="warmup_s", type=float,
                        help=f"warm-up before each trial (default {DEFAULTS['warmup_s']})")
    parser.add_argument("--pool-size", dest="pool_size", type=int,
                        help=f"sessions in the pool strategy (default {DEFAULTS['pool_size']})")
    parser.add_argument("--hang-seconds", dest="hang_s", type=float,
                        help=f"a call still in the module this long after its trial's end (and after 100 calls' "
                        f"measured time) is hung: its row says so (default {DEFAULTS['hang_s']:.0f})")
    parser.add_argument("--sut", default="", metavar="MODULE:FACTORY",
                        help="your session provider, benchmarked as strategy `sut` beside the others")
    parser.add_argument("--short", action="store_true",
                        help=f"a quick look: threads {' '.join(map(str, SHORT['threads']))}, {SHORT['trials']} trials "
                        f"of {SHORT['trial_s']} s (CI)")


def settings_of(args: argparse.Namespace) -> Settings:
    """The run's settings from the options; BenchUsageError names the fix."""
    base = {**DEFAULTS, **(SHORT if args.short else {})}
    mechanisms = tuple(dict.fromkeys(args.mechanisms)) or MECHANISMS
    unknown = [m for m in mechanisms if m not in MECHANISMS]
    if unknown:
        raise BenchUsageError(f"unknown mechanism {unknown[0]!r}; choose from {', '.join(MECHANISMS)}")
    strategies = tuple(dict.fromkeys(args.strategies)) or (STRATEGIES + (("sut",) if args.sut else ()))
    unknown = [s for s in strategies if s not in (*STRATEGIES, "sut")]
    if unknown:
        raise BenchUsageError(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}, sut")
    if "sut" in strategies and not args.sut:
        raise BenchUsageError("--strategy sut needs your provider: pass --sut=MODULE:FACTORY")
    threads = tuple(sorted(set(args.threads))) or tuple(base["threads"] if args.short else THREADS)
    if any(t < 1 or t > 256 for t in threads):
        raise BenchUsageError("--threads must be between 1 and 256")
    trials = args.trials if args.trials is not None else int(base["trials"])
    trial_s = args.trial_s if args.trial_s is not None else float(base["trial_s"])
    warmup_s = args.warmup_s if args.warmup_s is not None else float(base["warmup_s"])
    pool_size = args.pool_size if args.pool_size is not None else int(base["pool_size"])
    if trials < 1:
        raise BenchUsageError("--trials must be at least 1 (3 or more give the spread the gate compares against)")
    if trial_s <= 0 or warmup_s < 0:
        raise BenchUsageError("--trial-seconds must be positive and --warmup-seconds not negative")
    hang_s = args.hang_s if args.hang_s is not None else float(base["hang_s"])
    if hang_s <= 0:
        raise BenchUsageError("--hang-seconds must be positive")
    if pool_size < 1:
        raise BenchUsageError("--pool-size must be at least 1")
    return Settings(mechanisms, strategies, threads, trials, trial_s, warmup_s, pool_size, hang_s)


def _profiles(args: argparse.Namespace) -> list:
    from ..vendor.profile import ProfileError
    from ..vendor.registry import resolve, search_dirs

    if not args.vendors and not args.vendor_files:
        raise BenchUsageError("no vendor; pass --vendor=NAME (or --vendor=all, or --vendor-file=PATH)")
    dirs = search_dirs([Path(d) for d in args.vendor_dirs] or [Path.cwd() / "vendors"])
    try:
        return resolve(args.vendors, args.vendor_files, dirs)
    except ProfileError as exc:
        raise BenchUsageError(str(exc)) from None


def _check_sut(spec: str) -> None:
    if not spec:
        return
    from ..sut import SutError, load_factory

    try:
        load_factory(spec)
    except SutError as exc:
        raise BenchUsageError(str(exc)) from None


def run_command(args: argparse.Namespace) -> int:
    from .runner import run_bench

    settings = settings_of(args)
    _check_sut(args.sut)
    profiles = _profiles(args)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchUsageError(f"cannot write to {out} ({exc.strerror or exc}); pass a writable -o DIR") from None
    progress = Progress(sys.stdout)
    latest: list[BenchDoc] = []

    def write(doc: BenchDoc) -> None:
        from .html import write_bench_html

        latest[:] = [doc]
        doc.write(out / "bench.json")
        write_bench_html(out / "bench.html", doc)

    try:
        doc = run_bench(profiles, settings, args.sut, out, progress, write)
    except KeyboardInterrupt:
        progress.done(f"interrupted: {out}/bench.json has the rows measured so far "
                      f"({len(latest[0].rows) if latest else 0}); the run is marked unfinished")
        return EXIT_INTERRUPTED
    over = [o for facts in doc.vendors.values() for o in facts.overhead]
    if over:
        worst = max(over, key=lambda o: o.percent)
        progress.done(f"benchmark overhead against a bare python-pkcs11 loop: at most {worst.percent:+.1f}% "
                      f"({worst.mechanism}), target <= 5%")
    progress.done(f"{out}/bench.json, {out}/bench.html: {len(doc.rows)} rows")
    return EXIT_PROBLEMS if any(f.problem for f in doc.vendors.values()) else EXIT_OK
