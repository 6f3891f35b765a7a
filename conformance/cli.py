"""The pkcs11-conformance console script: `vendors` now; `gate` and `report` arrive with issue 4."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .registry import availability, profile_paths

EXIT_OK, EXIT_REGRESSIONS, EXIT_USAGE = 0, 1, 2


def _vendors(args: argparse.Namespace) -> int:
    dirs = [Path(d) for d in args.dir] or [Path.cwd() / "vendors"]
    found = profile_paths(dirs)
    if not found:
        print(f"no vendor profiles in {', '.join(map(str, dirs))}; pass --dir=PATH", file=sys.stderr)
        return EXIT_USAGE
    for name, path in found.items():
        a = availability(name, path)
        status = "present" if a.available else "unavailable"
        module = a.profile.module or ", ".join(a.profile.module_paths) if a.profile else "-"
        print(f"{name:20} {status:12} {module}" + (f"  ({a.why})" if a.why else ""))
    return EXIT_OK


def _not_yet(args: argparse.Namespace) -> int:
    print(f"pkcs11-conformance {args.command}: not available yet (issue 4)", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pkcs11-conformance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    vendors = sub.add_parser("vendors", help="list vendor profiles and whether each module is present")
    vendors.add_argument("--dir", action="append", default=[], help="profile directory (default: ./vendors)")
    vendors.set_defaults(func=_vendors)
    gate = sub.add_parser("gate", help="compare CANDIDATE.json against BASELINE.json")
    gate.add_argument("files", nargs="*")
    gate.set_defaults(func=_not_yet)
    report = sub.add_parser("report", help="merge results files into one HTML matrix")
    report.add_argument("files", nargs="*")
    report.add_argument("-o", dest="out")
    report.set_defaults(func=_not_yet)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
