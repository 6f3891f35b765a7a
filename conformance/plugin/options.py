"""Every command-line option and ini key of the plugin, declared once with its help text."""

from __future__ import annotations

import pytest

from ..sut import DEFAULT_SUT

VENDOR = "--vendor"
VENDOR_FILE = "--vendor-file"
VENDOR_DIR = "--vendor-dir"
SUT = "--sut"
CONFORMANCE_JSON = "--conformance-json"
CONFORMANCE_HTML = "--conformance-html"
BASELINE = "--baseline"
BLOCK_WINDOW = "--block-window"
STEP_TIMEOUT = "--step-timeout"
REPLAY = "--replay"
CHECK_TIMEOUT = "--check-timeout"
ALLOW_RISKY = "--allow-risky"
TRACE = "--call-trace"  # pytest owns --trace (pdb)

INI_VENDOR_DIRS = "conformance_vendor_dirs"
INI_CHECKS = "conformance_checks"

DEFAULT_JSON = "reports/results.json"
DEFAULT_HTML = "reports/report.html"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "PKCS#11 conformance")
    group.addoption(
        VENDOR,
        action="append",
        default=[],
        metavar="NAME",
        help="vendor profile to run: NAME.toml in --vendor-dir, ./vendors or the shipped profiles; repeatable; "
        "'all' = every profile whose module is present",
    )
    group.addoption(
        VENDOR_FILE,
        action="append",
        default=[],
        metavar="PATH",
        help="vendor profile TOML file to run; repeatable",
    )
    group.addoption(
        VENDOR_DIR,
        action="append",
        default=[],
        metavar="DIR",
        help="directory of vendor profiles NAME.toml, searched before ./vendors and the shipped profiles (a profile "
        "there overrides a shipped one of the same name); repeatable",
    )
    group.addoption(
        SUT,
        default=DEFAULT_SUT,
        metavar="MODULE:FACTORY",
        help="session provider under test: FACTORY(open_session) -> provider "
        f"(default: the documented refcounted session, {DEFAULT_SUT})",
    )
    group.addoption(
        CONFORMANCE_JSON,
        default=DEFAULT_JSON,
        metavar="PATH",
        help=f"where to write the versioned results JSON (default: {DEFAULT_JSON})",
    )
    group.addoption(
        CONFORMANCE_HTML,
        default=DEFAULT_HTML,
        metavar="PATH",
        help=f"where to write the HTML compatibility report (default: {DEFAULT_HTML})",
    )
    group.addoption(
        BASELINE,
        default=None,
        metavar="PATH",
        help="results JSON of a previous run to gate against: after the run every check x vendor is compared "
        "with it (regressed, fixed, new, removed, lost coverage, stale declarations, ...), the report is printed "
        "in the terminal summary, and any regression fails the run (exit 1). May be the --conformance-json file "
        "itself: it is read before the run",
    )
    group.addoption(
        BLOCK_WINDOW,
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a call expected to block is watched before it counts as blocked (default: derived from the "
        "module's measured latency, at least 0.05)",
    )
    group.addoption(
        STEP_TIMEOUT,
        type=float,
        default=None,
        metavar="SECONDS",
        help="a call not expected to block that has not returned after this long is hung (default: derived from "
        "the module's measured latency and login time, at least 1)",
    )
    group.addoption(
        REPLAY,
        default=None,
        metavar="FILE",
        help="results JSON whose reproducers are run first by their scenario checks (replay a failure)",
    )
    group.addoption(
        CHECK_TIMEOUT,
        type=float,
        default=None,
        metavar="SECONDS",
        help="a check whose body (or a scenario's whole exploration) runs longer than this is hung: every thread's "
        "stack is reported and the module process is restarted (default: derived from the module's measured latency "
        "and the work the check does, at least 120)",
    )
    group.addoption(
        TRACE,
        action="store_true",
        default=False,
        help="wrap every vendor's module in OpenSC's pkcs11-spy and attach each failing check's slice of the "
        "PKCS#11 call trace (PINs redacted) to its result",
    )
    group.addoption(
        ALLOW_RISKY,
        action="store_true",
        default=False,
        help="also run the checks that can crash a module or cost PIN tries (marked risky: free-running concurrent "
        "calls, logins racing from several processes) on tokens that are not disposable. A module crash under such "
        "load has wiped a token's store here; the harness checks the token after any crash, but back it up first",
    )
    parser.addini(
        INI_VENDOR_DIRS,
        type="paths",
        default=[],
        help="directories searched for vendor profiles NAME.toml, after --vendor-dir and before ./vendors and the "
        "shipped profiles",
    )
    parser.addini(
        INI_CHECKS,
        type="paths",
        default=[],
        help="your own checks (files or directories), run beside the shipped checks when --vendor is given "
        "without test paths on the command line",
    )
