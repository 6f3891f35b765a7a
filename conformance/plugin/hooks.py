"""The plugin's pytest hooks, in the order a run meets them: configure (inputs, preflight of every vendor, the
results writer), test generation (one item per check x vendor), collection (each check's metadata and where its
body runs), reports (the metadata onto every report), session finish (vendors stopped, real tokens looked at
again)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Generator

import pytest

from ..engine import hypothesis_profiles
from ..executor.timing import Explicit
from ..labels import ensure_run_tag
from ..live.integrity import Snapshot
from ..outcomes import CHECK_LAYERS, HARNESS, ours
from ..results.document import ResultsWriter, RunInfo
from ..sut import SutError, load_factory
from ..vendor.preflight import PreflightFailed
from ..vendor.preflight import run as preflight
from ..vendor.profile import ProfileError, VendorProfile
from ..vendor.registry import resolve
from ..vendor.sharing import taking_turns
from . import calltrace, markers, options
from .behaviour import behaviour_of
from .collector import ResultsCollector
from .inputs import load_baseline, load_replays, select_checks, vendor_dirs
from .meta import META, CheckMeta, attach, meta_of, update
from .placement import PLACEMENT, place
from .state import STATE, RunState

COLLECTOR = "conformance.collector"


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)
    hypothesis_profiles.register()  # before hypothesis' own plugin resolves --hypothesis-profile


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")  # pytest-xdist gives workers a workerinput; the report is ours


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    markers.register(config)
    if config.option.help or getattr(config.option, "version", False):
        return
    try:
        profiles = resolve(config.getoption(options.VENDOR), config.getoption(options.VENDOR_FILE), vendor_dirs(config))
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None
    if profiles:
        select_checks(config)
    sut_spec = config.getoption(options.SUT)
    try:
        factory = load_factory(sut_spec)
    except SutError as exc:
        raise pytest.UsageError(str(exc)) from None
    # Read before the run overwrites anything: --baseline may name the same file as --conformance-json.
    baseline = load_baseline(config.getoption(options.BASELINE), profiles) if is_controller(config) else None
    explicit = Explicit(block_window=config.getoption(options.BLOCK_WINDOW),
                        step_timeout=config.getoption(options.STEP_TIMEOUT),
                        check_timeout=config.getoption(options.CHECK_TIMEOUT))
    for name, value in ((options.BLOCK_WINDOW, explicit.block_window), (options.STEP_TIMEOUT, explicit.step_timeout),
                        (options.CHECK_TIMEOUT, explicit.check_timeout)):
        if value is not None and not value > 0:
            raise pytest.UsageError(f"{name}={value}: give a positive number of seconds")
    named = config.getoption("hypothesis_profile", None)
    # Only a run of checks picks our profile; other test suites using this plugin keep their own settings.
    profile_name = hypothesis_profiles.choose(named) if profiles else (named or "default")
    replays = load_replays(config.getoption(options.REPLAY))
    state = RunState({p.name: p for p in profiles}, sut_spec, factory, explicit, profile_name, replays,
                     trace=config.getoption(options.TRACE), allow_risky=config.getoption(options.ALLOW_RISKY))
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
                vendors[profile.name] = _preflight(config, profile, trace=state.trace, sut=sut_spec, explicit=explicit)
            except PreflightFailed as exc:
                raise pytest.UsageError(str(exc)) from None
        _clear_traces(Path(config.getoption(options.CONFORMANCE_JSON)), profiles)
        run = RunInfo.new(sut=sut_spec, hypothesis_profile=profile_name)
        writer = ResultsWriter(Path(config.getoption(options.CONFORMANCE_JSON)), run, vendors)
        collector = ResultsCollector(config, writer, state.secrets, baseline=baseline)
        config.pluginmanager.register(collector, COLLECTOR)


def _preflight(config: pytest.Config, profile: VendorProfile, **kwargs: Any) -> dict[str, Any]:
    """The preflight (or postflight) of one vendor in a scratch directory of its own (under --basetemp if given),
    removed afterwards: the token it provisions there is only for this look."""
    basetemp = config.getoption("basetemp")
    if basetemp:
        Path(basetemp).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pkcs11-conformance-preflight-", dir=basetemp or None,
                                     ignore_cleanup_errors=True) as scratch:
        return preflight(profile, Path(scratch), **kwargs)


def _clear_traces(results: Path, profiles: list[VendorProfile]) -> None:
    """Trace slices of an earlier run of the same vendors would sit beside this run's unreferenced: remove them."""
    for profile in profiles:
        shutil.rmtree(results.parent / calltrace.TRACE_DIR / profile.name, ignore_errors=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vendor" in metafunc.fixturenames:
        state = metafunc.config.stash[STATE]
        names = list(state.profiles)
        if names:
            metafunc.parametrize("vendor", names, indirect=True, scope="session", ids=names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every check gets its CheckMeta and its placement (where its body runs); a malformed check is a usage error."""
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
        if not check_id or layer not in CHECK_LAYERS or not isinstance(item, pytest.Function):
            raise pytest.UsageError(f"{item.nodeid}: write @pytest.mark.check('area.name', layer='module|binding|provider', spec='...')")
        params = item.callspec.params if hasattr(item, "callspec") else {}
        if params.get("vendor") is None:
            raise pytest.UsageError(f"{item.nodeid}: a check must use the 'vendor' fixture")
        vendor = str(params["vendor"])
        check_id = _check_id(item, check_id, params)
        key = (check_id, vendor)
        if key in seen:
            raise pytest.UsageError(f"check id {check_id!r} is used by {seen[key]} and {item.nodeid}; ids must be unique")
        seen[key] = item.nodeid
        item.stash[META] = CheckMeta(check_id, vendor, layer, mark.kwargs.get("spec", ""))
        item.stash[PLACEMENT] = place(item)


def _check_id(item: pytest.Item, template: str, params: dict[str, Any]) -> str:
    """A parametrized check names each case in its id: @pytest.mark.check("keygen.aes_{bits}") with bits=128 is
    keygen.aes_128 (the gate keys on ids, so every case needs its own)."""
    try:
        return template.format(**{k: v for k, v in params.items() if k != "vendor"})
    except (KeyError, IndexError, ValueError) as exc:
        raise pytest.UsageError(f"{item.nodeid}: check id {template!r} names {exc}, which is not one of the "
                                "check's parametrize arguments; write the id with {NAME} of a parametrize argument") from None


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: pytest's xfail marking (wasxfail) is done by then
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Every report of a check carries its CheckMeta (the controller builds the record from it); a failing or
    declared-failing check first gets its call-trace slice."""
    report: pytest.TestReport = yield
    if meta_of(item) is None:
        return report
    if call.excinfo is not None and ours(call.excinfo.value):
        update(item, layer=HARNESS)  # our own code raised: the result is an error, never the vendor's finding
        if hasattr(report, "wasxfail"):  # and a declared deviation must not hide it as the declared failure
            del report.wasxfail
            report.outcome = "failed"
    meta = meta_of(item)
    assert meta is not None
    seen = behaviour_of(meta, report, call)
    if seen is not None and (meta.behaviour is None or meta.behaviour.kind == "passed"):
        update(item, behaviour=seen)  # the first phase that says something; a teardown error after a pass too
    if call.when == "call" and (report.failed or hasattr(report, "wasxfail")):
        trace = calltrace.write_slice(item)
        if trace is not None:
            update(item, trace=trace)
    meta = meta_of(item)
    assert meta is not None
    attach(report, meta)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    for runtime in state.runtimes.values():
        with taking_turns(runtime.profile):  # the module's process closes its sessions as it goes
            runtime.stop()
    state.runtimes.clear()
    collector = session.config.pluginmanager.get_plugin(COLLECTOR)
    if collector is not None and _postflight(session.config, state, collector):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a real token changed: never a green run


def _postflight(config: pytest.Config, state: RunState, collector: ResultsCollector) -> bool:
    """Tokens that are not disposable must be left exactly as found: sweep the harness's leftovers, look again,
    compare with the preflight's snapshot; the verdict goes in the results (vendors.NAME.integrity) and the
    terminal summary."""
    for name, profile in state.profiles.items():
        facts = collector.writer.vendors.get(name, {})
        before = facts.get("integrity", {}).get("before")
        if profile.disposable or before is None:
            continue
        try:
            after = _preflight(config, profile, post=True)["integrity"]["after"]
        except (PreflightFailed, KeyError) as exc:
            after = Snapshot(False, problem=str(exc)).to_dict()
        changes = Snapshot.from_dict(after).changes_since(Snapshot.from_dict(before))
        facts["integrity"] = {"before": before, "after": after, "intact": not changes, "changes": changes}
        collector.integrity[name] = changes
    return any(collector.integrity.values())
