"""The pytest plugin: options, markers, vendor selection, per-check metadata, results on the controller."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from . import markers, options
from ..outcomes import CHECK_LAYERS
from .state import STATE, RunState
from ..checks import CHECKS_DIR
from ..engine import hypothesis_profiles
from ..executor.parent import Limits
from ..vendor.preflight import PreflightFailed
from ..vendor.preflight import run as preflight
from ..vendor.profile import ProfileError, VendorProfile
from .collector import ResultsCollector
from ..gate.compare import GateInputError, match_vendors, vendors_of
from ..results.reader import ResultsInputError, read_results
from ..results.records import PROPERTY
from ..labels import ensure_run_tag
from ..vendor.registry import resolve, search_dirs
from ..results.document import Results, ResultsWriter, RunInfo
from ..sut import ProviderFactory, SutError, load_factory




def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)
    hypothesis_profiles.register()  # before hypothesis' own plugin resolves --hypothesis-profile


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def vendor_dirs(config: pytest.Config) -> list[Path]:
    """--vendor-dir, then the ini key, then ./vendors (of the rootdir and of the invocation directory), then the
    shipped profiles: a local NAME.toml overrides the shipped one."""
    local = [Path(d) for d in config.getoption(options.VENDOR_DIR)] + list(config.getini(options.INI_VENDOR_DIRS))
    local += [config.rootpath / "vendors", config.invocation_params.dir / "vendors"]
    return search_dirs(local)


@pytest.hookimpl(trylast=True)  # after pytest's tmpdir plugin, whose factory the preflight uses
def pytest_configure(config: pytest.Config) -> None:
    markers.register(config)
    if config.option.help or getattr(config.option, "version", False):
        return
    try:
        profiles = resolve(config.getoption(options.VENDOR), config.getoption(options.VENDOR_FILE), vendor_dirs(config))
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None
    if profiles:
        _select_checks(config)
    sut_spec = config.getoption(options.SUT)
    try:
        factory = load_factory(sut_spec)
    except SutError as exc:
        raise pytest.UsageError(str(exc)) from None
    # Read before the run overwrites anything: --baseline may name the same file as --conformance-json.
    baseline = _load_baseline(config.getoption(options.BASELINE), profiles) if is_controller(config) else None
    limits = Limits(block_window=config.getoption(options.BLOCK_WINDOW), step_timeout=config.getoption(options.STEP_TIMEOUT))
    check_timeout = config.getoption(options.CHECK_TIMEOUT)
    for name, value in ((options.BLOCK_WINDOW, limits.block_window), (options.STEP_TIMEOUT, limits.step_timeout),
                        (options.CHECK_TIMEOUT, check_timeout)):
        if not value > 0:
            raise pytest.UsageError(f"{name}={value}: give a positive number of seconds")
    explicit = config.getoption("hypothesis_profile", None)
    # Only a run of checks picks our profile; other test suites using this plugin keep their own settings.
    profile_name = hypothesis_profiles.choose(explicit) if profiles else (explicit or "default")
    replays = _load_replays(config.getoption(options.REPLAY))
    state = RunState({p.name: p for p in profiles}, sut_spec, factory, limits, profile_name, replays,
                     check_timeout=check_timeout, trace=config.getoption(options.TRACE),
                     allow_risky=config.getoption(options.ALLOW_RISKY))
    real = [p.name for p in profiles if not p.disposable]
    if state.allow_risky and real and is_controller(config):
        config.issue_config_time_warning(pytest.PytestWarning(
            f"{options.ALLOW_RISKY}: checks that can crash the module will run on {', '.join(real)}, whose token "
            "is not disposable; a crash under such load has wiped a token's store here — have a backup"), stacklevel=2)
    for profile in profiles:
        state.secrets.extend(profile.pin_values())
    config.stash[STATE] = state
    ensure_run_tag()  # before xdist starts workers: they and every executor child inherit it (labels.py)
    if is_controller(config) and profiles:
        vendors: dict[str, Any] = {}
        for profile in profiles:
            try:
                vendors[profile.name] = preflight(profile, _scratch(config), trace=state.trace, sut=sut_spec)
            except PreflightFailed as exc:
                raise pytest.UsageError(str(exc)) from None
        _clear_traces(Path(config.getoption(options.CONFORMANCE_JSON)), profiles)
        run = RunInfo.new(sut=sut_spec, hypothesis_profile=profile_name)
        writer = ResultsWriter(Path(config.getoption(options.CONFORMANCE_JSON)), run, vendors)
        collector = ResultsCollector(config, writer, state.secrets, baseline=baseline)
        config.pluginmanager.register(collector, "conformance.collector")


def _select_checks(config: pytest.Config) -> None:
    """With a vendor selected and no test paths on the command line, run the shipped checks (and the directories
    of the conformance_checks ini key beside them), wherever pytest runs: `pytest --vendor=NAME` needs no
    checkout. Paths on the command line are run as given (add the shipped ones with --pyargs conformance.checks)."""
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    config.args[:] = [str(CHECKS_DIR), *(str(p) for p in config.getini(options.INI_CHECKS))]


def _clear_traces(results: Path, profiles: list[VendorProfile]) -> None:
    """Trace slices of an earlier run of the same vendors would sit beside this run's unreferenced: remove them."""
    import shutil

    from .dispatch import TRACE_DIR

    for profile in profiles:
        shutil.rmtree(results.parent / TRACE_DIR / profile.name, ignore_errors=True)


def _load_baseline(path: str | None, profiles: list[VendorProfile]) -> Results | None:
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


def _scratch(config: pytest.Config) -> Path:
    """A directory under the run's basetemp, so nothing the harness makes lands outside it."""
    factory = getattr(config, "_tmp_path_factory", None)  # set by pytest's tmpdir plugin in its configure
    if factory is None:
        raise pytest.UsageError("pytest's tmpdir plugin is disabled; remove -p no:tmpdir")
    return factory.mktemp("preflight")


def _load_replays(path: str | None) -> dict[str, list[dict[str, Any]]]:
    """--replay=FILE: a results JSON (every failed check's reproducer) or one {"check", "reproducer"} object."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise pytest.UsageError(f"--replay={path}: cannot read it as JSON ({exc}); pass a results file") from None
    entries = data.get("results", [data]) if isinstance(data, dict) else []
    replays: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if isinstance(entry, dict) and entry.get("reproducer") and entry.get("check"):
            replays.setdefault(entry["check"], []).append(entry["reproducer"])
    if not replays:
        raise pytest.UsageError(f"--replay={path}: no reproducer in it; pass a results file with a failed scenario")
    return replays


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vendor" in metafunc.fixturenames:
        state = metafunc.config.stash[STATE]
        names = list(state.profiles)
        if names:
            metafunc.parametrize("vendor", names, indirect=True, scope="session", ids=names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    checks = [item for item in items if item.get_closest_marker(markers.CHECK)]
    if checks and not state.profiles:
        raise pytest.UsageError("no vendor selected: pass --vendor=NAME (e.g. --vendor=softhsm) or --vendor-file=PATH; "
                                "`pkcs11-conformance vendors` lists them")
    seen: dict[tuple[str, str], str] = {}
    for item in checks:
        mark = item.get_closest_marker(markers.CHECK)
        assert mark is not None
        check_id = mark.args[0] if mark.args else None
        layer = mark.kwargs.get("layer")
        if not check_id or layer not in CHECK_LAYERS:
            raise pytest.UsageError(f"{item.nodeid}: write @pytest.mark.check('area.name', layer='module|binding|provider', spec='...')")
        vendor = item.callspec.params.get("vendor") if hasattr(item, "callspec") else None
        if vendor is None:
            raise pytest.UsageError(f"{item.nodeid}: a check must use the 'vendor' fixture")
        key = (check_id, vendor)
        if key in seen:
            raise pytest.UsageError(f"check id {check_id!r} is used by {seen[key]} and {item.nodeid}; ids must be unique")
        seen[key] = item.nodeid
        item.user_properties.append(
            (PROPERTY, {"check": check_id, "vendor": vendor, "layer": layer, "spec": mark.kwargs.get("spec", "")})
        )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    for runtime in state.runtimes.values():
        runtime.stop()
    state.runtimes.clear()
    collector = session.config.pluginmanager.get_plugin("conformance.collector")
    if collector is not None and _postflight(session.config, state, collector):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a real token changed: never a green run


def _postflight(config: pytest.Config, state: RunState, collector: ResultsCollector) -> bool:
    """Tokens that are not disposable must be left exactly as found: sweep the harness's leftovers, look again,
    compare with the preflight's snapshot; the verdict goes in the results (vendors.NAME.integrity) and the
    terminal summary."""
    from ..live.integrity import Snapshot

    for name, profile in state.profiles.items():
        facts = collector.writer.vendors.get(name, {})
        before = facts.get("integrity", {}).get("before")
        if profile.disposable or before is None:
            continue
        try:
            after = preflight(profile, _scratch(config), post=True)["integrity"]["after"]
        except (PreflightFailed, KeyError) as exc:
            after = Snapshot(False, problem=str(exc)).to_dict()
        changes = Snapshot.from_dict(after).changes_since(Snapshot.from_dict(before))
        facts["integrity"] = {"before": before, "after": after, "intact": not changes, "changes": changes}
        collector.integrity[name] = changes
    return any(collector.integrity.values())
