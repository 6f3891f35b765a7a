"""The pkcs11-conformance console script: `vendors`, `gate` (the upgrade gate), `report` (the HTML matrix), `matrix`
(the checks under several python-pkcs11 versions), `reproduce` (a finding as a standalone script), `bench` (throughput
per mechanism, session strategy and thread count) and `bench-gate` (the benchmark's upgrade gate)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from .vendor.registry import TEMPLATE, availability, is_shipped, profile_paths, search_dirs

EXIT_OK, EXIT_REGRESSIONS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr naming the fix, exit 2 (argparse would print the whole usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}; see {self.prog} --help\n")


def _vendors(args: argparse.Namespace) -> int:
    if args.template:
        sys.stdout.write(TEMPLATE.read_text(encoding="utf-8"))
        return EXIT_OK
    local = [Path(d) for d in args.dir] or [Path.cwd() / "vendors"]
    found = profile_paths(search_dirs(local))
    unavailable = 0
    for name, path in found.items():
        a = availability(name, path, with_version=True)
        unavailable += not a.available
        status = "present" if a.available else "unavailable"
        module = a.profile.module or ", ".join(a.profile.module_paths) if a.profile else "-"
        if a.profile and a.profile.via:
            module += f" via {' + '.join(a.profile.via)}"
        where = "shipped" if is_shipped(path) else str(path)
        print(f"{name:16} {status:12} {a.version or '-':34} {module}  [{where}]" + (f"  ({a.why})" if a.why else ""))
    if args.strict and unavailable:
        print(f"{unavailable} vendor profile(s) cannot run here; install what is missing (scripts/bootstrap.sh)",
              file=sys.stderr)
        return EXIT_REGRESSIONS
    return EXIT_OK


def _gate(args: argparse.Namespace) -> int:
    from .gate.compare import gate_files, parse_alias
    from .results.reader import ResultsInputError
    from .gate.format import render

    try:
        aliases = [parse_alias(text) for text in args.aliases]
        report = gate_files(args.baseline, args.candidate, aliases)
    except ResultsInputError as exc:  # a file, or an option (GateInputError)
        print(f"pkcs11-conformance gate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(render(report, args.format))
    return EXIT_REGRESSIONS if report.regressions else EXIT_OK


def _report(args: argparse.Namespace) -> int:
    """Merge results files into one HTML matrix; bad input is one line on stderr and exit 2."""
    from .report.html import write_report
    from .results.reader import ResultsInputError, read_results

    if not args.files:
        print("pkcs11-conformance report: no results files; pass RESULTS.json... -o OUT.html", file=sys.stderr)
        return EXIT_USAGE
    if not args.out:
        print("pkcs11-conformance report: no output file; pass -o OUT.html", file=sys.stderr)
        return EXIT_USAGE
    try:
        # An interrupted run is shown, marked as such; the gate refuses one.
        docs = [read_results(path, complete=False) for path in args.files]
    except ResultsInputError as exc:
        print(f"pkcs11-conformance report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        write_report(Path(args.out), docs, list(args.files))
    except OSError as exc:
        print(f"pkcs11-conformance report: cannot write {args.out} ({exc.strerror or exc}); pass a writable -o path",
              file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.out}: {len(docs)} run(s), {sum(len(d.results) for d in docs)} results")
    return EXIT_OK


def _matrix(args: argparse.Namespace) -> int:
    """The checks under each --binding, side by side; bad input (a version, a missing --vendor) is one line, exit 2."""
    from .matrix.environments import BindingUnavailable, check_version, default_cache, environment
    from .matrix.runs import describe, run_matrix

    if not args.bindings or not (args.vendors or args.vendor_files):
        print("pkcs11-conformance matrix: name the bindings and vendors, e.g. --binding 0.9.3 --binding 0.10.1 "
              "--vendor=softhsm -o DIR", file=sys.stderr)
        return EXIT_USAGE
    try:
        versions = [check_version(v) for v in args.bindings]
        cache = Path(args.cache) if args.cache else default_cache()
        envs = []
        for version in versions:
            print(f"python-pkcs11 {version}: environment", flush=True)
            envs.append(environment(version, cache))
    except BindingUnavailable as exc:
        print(f"pkcs11-conformance matrix: {exc}", file=sys.stderr)
        return EXIT_USAGE
    pytest_args = [f"--vendor={v}" for v in args.vendors] + [f"--vendor-file={f}" for f in args.vendor_files]
    pytest_args += list(args.pytest_args)
    runs, matrix = run_matrix(envs, Path(args.out), pytest_args, say=lambda text: print(text, flush=True))
    if matrix is None:
        return EXIT_REGRESSIONS
    print(describe(matrix))
    print(f"{args.out}/report.html, {args.out}/matrix.md, {args.out}/matrix.json")
    return EXIT_OK


def _reproduce(args: argparse.Namespace) -> int:
    """A result's reproduction as a standalone script; bad input is one line on stderr and exit 2."""
    from .reproduce.command import ReproduceError, write_reproducer

    try:
        print(write_reproducer(args.results, args.check, args.vendor, args.out, [Path(d) for d in args.dir]))
    except ReproduceError as exc:
        print(f"pkcs11-conformance reproduce: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    from .bench.command import BenchUsageError, run_command

    try:
        return run_command(args)
    except BenchUsageError as exc:
        print(f"pkcs11-conformance bench: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _bench_gate(args: argparse.Namespace) -> int:
    from .bench.compare import compare_files, render_bench_gate
    from .bench.record import BenchInputError

    try:
        report = compare_files(args.baseline, args.candidate, args.aliases)
    except BenchInputError as exc:
        print(f"pkcs11-conformance bench-gate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(render_bench_gate(report, args.format))
    return EXIT_REGRESSIONS if report.regressions else EXIT_OK


def _gate_options(parser: argparse.ArgumentParser) -> None:
    """--format and --as, the same for both gates."""
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                        help="text (default), json (machine-readable classification) or markdown (a CI comment)")
    parser.add_argument("--as", dest="aliases", action="append", default=[], metavar="OLD=NEW",
                        help="compare the baseline's vendor OLD with the candidate's vendor NEW (repeatable); "
                        "automatic when each file has one vendor")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="pkcs11-conformance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    vendors = sub.add_parser("vendors", help="list vendor profiles, local and shipped: present or not (and why), "
                             "module package version, where the profile is")
    vendors.add_argument("--dir", action="append", default=[],
                         help="local profile directory, searched before the shipped profiles (default: ./vendors)")
    vendors.add_argument("--template", action="store_true",
                         help="print the annotated profile template (start a new vendor: "
                         "pkcs11-conformance vendors --template > vendors/NAME.toml)")
    vendors.add_argument("--strict", action="store_true", help="exit 1 if any profile cannot run here (CI)")
    vendors.set_defaults(func=_vendors)
    gate = sub.add_parser("gate", help="compare CANDIDATE.json against BASELINE.json: exit 0 no regressions, "
                          "1 regressions (one line each), 2 bad input")
    gate.add_argument("baseline", metavar="BASELINE.json", help="results JSON of the run you trust")
    gate.add_argument("candidate", metavar="CANDIDATE.json", help="results JSON of the run to judge (e.g. after an upgrade)")
    _gate_options(gate)
    gate.set_defaults(func=_gate)
    report = sub.add_parser("report", help="merge results files into one HTML matrix")
    report.add_argument("files", nargs="*", metavar="RESULTS.json", help="results files (several vendors or versions)")
    report.add_argument("-o", dest="out", metavar="OUT.html", help="the HTML page to write")
    report.set_defaults(func=_report)
    matrix = sub.add_parser("matrix", help="run the checks under several python-pkcs11 versions (each in its own "
                            "environment) and merge them: versions as columns, the gate between neighbours")
    matrix.add_argument("--binding", dest="bindings", action="append", default=[], metavar="VERSION",
                        help="a python-pkcs11 version, 0.7.0 to 0.10.x (repeatable, in upgrade order)")
    matrix.add_argument("--vendor", dest="vendors", action="append", default=[], metavar="NAME",
                        help="a vendor profile, as pytest --vendor (repeatable)")
    matrix.add_argument("--vendor-file", dest="vendor_files", action="append", default=[], metavar="PATH",
                        help="a vendor profile file, as pytest --vendor-file (repeatable)")
    matrix.add_argument("-o", dest="out", default="reports/matrix", metavar="DIR", help="where to write (default "
                        "reports/matrix)")
    matrix.add_argument("--cache", metavar="DIR", help="where the binding environments are kept (default "
                        "~/.cache/pkcs11-conformance)")
    matrix.add_argument("pytest_args", nargs="*", metavar="-- PYTEST ARGS",
                        help="passed to each run's pytest (after --), e.g. -- -n 2 -m concurrency")
    matrix.set_defaults(func=_matrix)
    reproduce = sub.add_parser("reproduce", help="write a result's reproduction as a standalone python-pkcs11 script "
                               "(exit 1 while the deviation is there, 0 once fixed)")
    reproduce.add_argument("results", metavar="RESULTS.json", help="results JSON of the run that found it")
    reproduce.add_argument("check", metavar="CHECK", help="the check id, e.g. sign.hmac_wrong_mac")
    reproduce.add_argument("--vendor", required=True, metavar="NAME", help="the vendor it was found on")
    reproduce.add_argument("-o", dest="out", required=True, metavar="FILE.py", help="the script to write")
    reproduce.add_argument("--dir", action="append", default=[],
                           help="local profile directory for the module path and token (default: ./vendors, then "
                           "the shipped profiles)")
    reproduce.set_defaults(func=_reproduce)
    from .bench.command import add_arguments

    bench = sub.add_parser("bench", help="throughput (ops/s, latency percentiles) per mechanism, session strategy "
                           "and thread count on each vendor: DIR/bench.json and DIR/bench.html")
    add_arguments(bench)
    bench.set_defaults(func=_bench)
    bench_gate = sub.add_parser("bench-gate", help="compare CANDIDATE bench.json against BASELINE: exit 0 no drop "
                                "beyond the trials' spread, 1 drops (one line each), 2 bad input")
    bench_gate.add_argument("baseline", metavar="BASELINE.json", help="bench.json of the run you trust")
    bench_gate.add_argument("candidate", metavar="CANDIDATE.json", help="bench.json of the run to judge")
    _gate_options(bench_gate)
    bench_gate.set_defaults(func=_bench_gate)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
