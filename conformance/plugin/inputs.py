"""What the command line points the plugin at, each checked before any check runs (a bad input is one usage
error naming the fix): where profiles are found, which checks run, the --baseline file, the --replay file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..checks import CHECKS_DIR
from ..gate.compare import GateInputError, match_vendors
from ..gate.entries import vendors_of
from ..results.document import Results
from ..results.reader import ResultsInputError, read_results
from ..results.records import Reproducer
from ..vendor.profile import VendorProfile
from ..vendor.registry import search_dirs
from . import options


def vendor_dirs(config: pytest.Config) -> list[Path]:
    """--vendor-dir, then the ini key, then ./vendors (of the rootdir and of the invocation directory), then the
    shipped profiles: a local NAME.toml overrides the shipped one."""
    local = [Path(d) for d in config.getoption(options.VENDOR_DIR)] + list(config.getini(options.INI_VENDOR_DIRS))
    local += [config.rootpath / "vendors", config.invocation_params.dir / "vendors"]
    return search_dirs(local)


def select_checks(config: pytest.Config) -> None:
    """With a vendor selected and no test paths on the command line, run the shipped checks (and the paths of the
    conformance_checks ini key beside them), wherever pytest runs: `pytest --vendor=NAME` needs no checkout.
    Paths on the command line are run as given (add the shipped ones with --pyargs conformance.checks)."""
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    config.args[:] = [str(CHECKS_DIR), *(str(p) for p in config.getini(options.INI_CHECKS))]


def load_baseline(path: str | None, profiles: list[VendorProfile]) -> Results | None:
    """--baseline=PATH, validated before any check runs (a bad file is a usage error naming the fix)."""
    if not path:
        return None
    try:
        baseline = read_results(path, options.BASELINE)
    except ResultsInputError as exc:
        raise pytest.UsageError(str(exc)) from None
    if profiles:
        have, selected = sorted(vendors_of(baseline)), sorted(p.name for p in profiles)
        try:
            match_vendors(have, selected)
        except GateInputError:
            raise pytest.UsageError(
                f"{options.BASELINE}={path}: it has results of {', '.join(have)}, none of the selected vendors "
                f"({', '.join(selected)}); select one of its vendors with --vendor, or run without {options.BASELINE} "
                "and compare afterwards with `pkcs11-conformance gate --as OLD=NEW`") from None
    return baseline


def load_replays(path: str | None) -> dict[str, list[Reproducer]]:
    """--replay=FILE: a results JSON (every failed check's reproducer) or one {"check", "reproducer"} object."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise pytest.UsageError(f"{options.REPLAY}={path}: cannot read it as JSON ({exc}); pass a results file") from None
    entries = data.get("results", [data]) if isinstance(data, dict) else []
    replays: dict[str, list[Reproducer]] = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("reproducer"), dict) and entry.get("check"):
            replays.setdefault(str(entry["check"]), []).append(Reproducer.from_dict(entry["reproducer"]))
    if not replays:
        raise pytest.UsageError(f"{options.REPLAY}={path}: no reproducer in it; pass a results file with a failed "
                                "scenario")
    return replays
