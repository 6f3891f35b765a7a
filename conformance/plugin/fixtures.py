"""Fixtures the checks use: the live vendor, sessions, the provider under test, and `observe`."""

from __future__ import annotations

import fnmatch
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, NoReturn

import pytest

from . import markers
from ..outcomes import DIED
from ..vendor.declarations import applicable, mark_for, model_params
from ..pins import redact
from .state import STATE
from ..results.records import check_properties
from ..vendor.runtime import VendorRuntime, VendorUnavailable, start
from ..live.capabilities import CALL_NEEDS, STEP_NEEDS, missing_of, one_shot_use, require, unsupported_steps
from ..executor.parent import Executor, ExecutorError, Limits
from ..engine.strategies import step_key
from ..engine.families import FAMILIES
from ..engine.judge import judge
from ..engine.params import ModelParams
from ..engine.planning import plan
from ..engine.explore import Exploration, ScheduleFailed, explore
from ..engine.schedule import Schedule, Step, Trace
from ..live.tokens import binding_version


@pytest.fixture(scope="session")
def vendor(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> VendorRuntime:
    """The vendor this check runs on: provisioned for this process (under xdist: this worker's own token), its
    module loaded in the executor child. Check bodies that take only vendor/observe/limits run in that child."""
    state = request.config.stash[STATE]
    name: str = request.param
    runtime = state.runtimes.get(name)
    if runtime is None:
        # tmp_path_factory is per xdist worker, so each worker provisions its own token here.
        try:
            runtime = start(state.profiles[name], tmp_path_factory.mktemp(f"vendor-{name}"), limits=state.limits,
                            sut=state.sut_spec, trace=state.trace)
        except VendorUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        state.runtimes[name] = runtime  # stopped in pytest_sessionfinish
    return runtime


def _meta(request: pytest.FixtureRequest) -> dict[str, Any]:
    meta = check_properties(request.node)
    if meta is not None:
        return meta
    raise RuntimeError(f"{request.node.nodeid} is not a conformance check (no @pytest.mark.check)")


@pytest.fixture(autouse=True)
def _conformance_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Per check: the profile's skips, declared deviations and the destructive guard (the child resets the token
    before and after each check body)."""
    if request.node.get_closest_marker(markers.CHECK) is None:
        yield
        return
    runtime: VendorRuntime = request.getfixturevalue("vendor")
    meta = _meta(request)
    for pattern, reason in runtime.profile.skip.items():
        if fnmatch.fnmatchcase(meta["check"], pattern):
            pytest.skip(f"{runtime.profile.name} profile: {reason}")
    if request.node.get_closest_marker(markers.DESTRUCTIVE) and not runtime.profile.disposable:
        pytest.skip(f"destructive check: {runtime.profile.name}'s token is not disposable")
    state = request.config.stash[STATE]
    if request.node.get_closest_marker(markers.RISKY) and not runtime.profile.disposable and not state.allow_risky:
        pytest.skip(f"can crash the module, and {runtime.profile.name}'s token is not disposable (a crash under such "
                    "load has wiped a token's store here); run it with --allow-risky after a backup")
    versions = {"python-pkcs11": binding_version(), "library": runtime.library_version}
    for origin, deviation in applicable(meta["check"], runtime.profile, versions):
        mark = mark_for(origin, deviation)
        if mark is not None:
            request.node.add_marker(mark)
        meta.setdefault("deviations", []).append({"origin": origin, **deviation.to_dict()})
    yield


@pytest.fixture
def observe(request: pytest.FixtureRequest) -> Callable[[Any], None]:
    """Record the behaviour a characterising check observed (a JSON value) in its result."""
    meta = _meta(request)
    secrets = request.config.stash[STATE].secrets

    def record(value: Any) -> None:
        # json.dumps refuses what the results file could not hold, at the check that made it; the PIN is
        # redacted at the source (the metadata also travels as a JUnit property and a pytest-html extra).
        meta["observed"] = json.loads(redact(json.dumps(value), secrets))

    return record


@pytest.fixture
def limits(request: pytest.FixtureRequest) -> Limits:
    """--block-window (how long a call is watched before it counts as blocked) and --step-timeout (how long a
    call that should return is given)."""
    return request.config.stash[STATE].limits


@pytest.fixture(scope="session")
def executor(request: pytest.FixtureRequest, vendor: VendorRuntime, tmp_path_factory: pytest.TempPathFactory) -> Executor:
    """The vendor's executor child (one per vendor per worker): scenarios run there, never in this process."""
    return vendor.executor


# The provider stress uses only calls python-pkcs11 serialises with the session's lock: unserialised concurrent
# calls (random, key generation, attribute reads) crash or hang SoftHSM initialised without locking — the
# binding's finding (binding.concurrent_calls_survive), not the provider's.
ONE_SHOT = "one-shot"  # in STRESS uses: the token's own one-shot use (capabilities.one_shot_use)
STRESS = {"threads": 4, "iterations": 150, "switch_interval": 1e-6, "uses": [ONE_SHOT, "search"]}
STRESS_ROUNDS = 3
STRESS_TIMEOUT_S = 15.0  # a round takes well under a second; past this it is hung


@pytest.fixture
def stress(request: pytest.FixtureRequest, vendor: VendorRuntime, executor: Executor) -> Callable[[], dict[str, Any]]:
    """Free-running stress of the provider (barrier start, tiny switch interval) in the executor child."""
    meta = _meta(request)

    def run(params: dict[str, Any] = STRESS, rounds: int = STRESS_ROUNDS) -> dict[str, Any]:
        if "calls" in params:  # raw concurrent calls: only those the token supports
            usable = [c for c in params["calls"] if not any(cap in missing_of(vendor) for cap in CALL_NEEDS[c])]
            if not usable:
                require(vendor, *{cap for c in params["calls"] for cap in CALL_NEEDS[c]})
            params = {**params, "calls": usable}
        if "uses" in params:
            params = {**params, "uses": [one_shot_use(vendor) if u == ONE_SHOT else u for u in params["uses"]]}
        for use in params.get("uses", ()):
            require(vendor, *STEP_NEEDS.get(f"use:{use}", ()))
        result: dict[str, Any] = {}
        for _ in range(rounds):
            result = executor.stress(dict(params), timeout=STRESS_TIMEOUT_S)
            if result.get("status") != "passed":
                break
        meta["note"] = f"{rounds} rounds of {params}"
        status = result.get("status")
        integrity = ""
        if status in DIED:
            meta["status"] = status
            meta["integrity"] = vendor.integrity_note()
            integrity = "\n" + meta["integrity"]
        if status != "passed":
            detail = "\n".join(result.get("violations", [])) or result.get("cause", "")
            stacks = result.get("stacks")
            pytest.fail(f"stress {status}: {detail}{integrity}\n\nnot replayable step by step; run it again with "
                        f"-k '{request.node.name}' (parameters: {params})" + (f"\n\n{stacks}" if stacks else ""),
                        pytrace=False)
        return result

    return run


APPLICATIONS_START_S = 0.5  # from now to the common start moment: time for every process to get the request
APPLICATIONS_TIMEOUT_S = 60.0  # a login round or a step takes milliseconds; past this the process is stuck


class Applications:
    """Several applications (processes) on the vendor's token: application 0 is the worker's executor, the others
    its siblings (VendorRuntime.applications). A module process that dies or stalls makes the check crashed or
    hung."""

    def __init__(self, request: pytest.FixtureRequest, vendor: VendorRuntime) -> None:
        self.vendor, self.meta = vendor, _meta(request)
        self.used: set[int] = set()

    def _executors(self, n: int) -> list[Executor]:
        try:
            return self.vendor.applications(n)
        except ExecutorError as exc:
            pytest.fail(f"{self.vendor.profile.name}: a further process on the token did not come up ({exc})",
                        pytrace=False)

    def _crashed(self, which: str, exc: ExecutorError) -> NoReturn:
        self.meta["status"] = exc.status
        self.meta["integrity"] = self.vendor.integrity_note()
        pytest.fail(f"{which}: {exc}\n{self.meta['integrity']}", pytrace=False)

    def login_rounds(self, n: int, rounds: int) -> list[dict[str, Any]]:
        """n processes, each logging in and out `rounds` times from one common moment (engine/applications.py):
        what a service's worker processes do when they start together."""
        executors = self._executors(n)
        start_at = time.time() + APPLICATIONS_START_S
        with ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(e.ask, "login_rounds", APPLICATIONS_TIMEOUT_S, rounds=rounds, start_at=start_at)
                       for e in executors]
            answers: list[dict[str, Any]] = []
            for i, future in enumerate(futures):
                try:
                    answers.append(future.result())
                except ExecutorError as exc:
                    self._crashed(f"application {i} of {n}", exc)
        self.meta["note"] = f"{n} processes x {rounds} rounds of Token.open(user_pin=...) + close, from one moment"
        return answers

    def step(self, i: int, op: str) -> str:
        """Application i does `op` (engine/applications.app_step: login, close, state); its outcome."""
        executor = self._executors(i + 1)[i]
        self.used.add(i)
        try:
            return str(executor.ask("app", APPLICATIONS_TIMEOUT_S, op=op)["outcome"])
        except ExecutorError as exc:
            self._crashed(f"application {i}, {op}", exc)

    def end(self) -> None:
        """Every application that took steps closes its sessions (also after a failed check)."""
        for i in sorted(self.used):
            try:
                self.vendor.applications(i + 1)[i].ask("app", APPLICATIONS_TIMEOUT_S, op="end")
            except ExecutorError:
                pass  # a dead process has no sessions left; the next check restarts it


@pytest.fixture
def applications(request: pytest.FixtureRequest, vendor: VendorRuntime) -> Iterator[Applications]:
    """Several applications (processes) on the vendor's token; see Applications."""
    apps = Applications(request, vendor)
    yield apps
    apps.end()


def _fail_with(request: pytest.FixtureRequest, meta: dict[str, Any], vendor: VendorRuntime, failure: ScheduleFailed,
               deterministic: bool | None, hypothesis_note: str | None) -> None:
    """Report a failing schedule: layer and crashed/hung status into the record, reproducer, readable program."""
    meta["layer"] = failure.verdict.layer
    integrity = ""
    if failure.verdict.status in DIED:
        meta["status"] = failure.verdict.status
        meta["integrity"] = vendor.integrity_note()
        integrity = "\n" + meta["integrity"]
    meta["reproducer"] = {"schedule": [s.to_dict() for s in failure.schedule.steps], "hypothesis": hypothesis_note}
    determinism = {True: "replayed: same outcomes", False: "replayed: DIFFERENT outcomes (not deterministic)",
                   None: ""}[deterministic]
    pytest.fail(f"{failure}{integrity}\n\n{determinism}\nreplay: pytest --vendor={vendor.profile.name} "
                f"--replay=RESULTS.json -k '{request.node.name}'", pytrace=False)


def _params(vendor: VendorRuntime) -> ModelParams:
    versions = {"python-pkcs11": binding_version(), "library": vendor.library_version}
    unsupported = unsupported_steps(missing_of(vendor))
    return model_params(vendor.profile, versions).declare([("unsupported_steps", unsupported)])


@pytest.fixture
def scenario(request: pytest.FixtureRequest, vendor: VendorRuntime, executor: Executor) -> Callable[[str], Exploration]:
    """Explore one scenario family on the vendor; a finding fails the check with the minimal schedule."""
    state = request.config.stash[STATE]
    meta = _meta(request)

    def run(family: str) -> Exploration:
        replay = [Schedule.from_steps(family, r["schedule"]) for r in state.replays.get(meta["check"], [])]
        try:
            found = explore(executor, family, _params(vendor), replay, budget_s=state.check_timeout)
        except ExecutorError as exc:
            pytest.fail(f"{vendor.profile.name}: {exc}", pytrace=False)
        meta["observed"] = {point: sorted(values) for point, values in sorted(found.observed.items())} or None
        meta["note"] = f"{found.examples} examples ({state.hypothesis_profile} profile), executor restarts: {executor.restarts}"
        if found.failure is not None:
            _fail_with(request, meta, vendor, found.failure, found.deterministic, found.hypothesis_note)
        if found.over_budget:
            pytest.fail(f"exploration stopped at --check-timeout={state.check_timeout:g} s after {found.examples} "
                        "examples, without a finding so far; raise --check-timeout for a slow module", pytrace=False)
        return found

    return run


@pytest.fixture
def one_shot(vendor: VendorRuntime) -> str:
    """A one-shot use of a session the token supports (capabilities.ONE_SHOT_USES): `digest`, else `random`."""
    return one_shot_use(vendor)


@pytest.fixture
def play(request: pytest.FixtureRequest, vendor: VendorRuntime, executor: Executor) -> Callable[..., Trace]:
    """Run a fixed list of steps in the executor child, judged by the model like any drawn schedule: a scripted
    scenario. Returns the trace (for characterising checks to read a step's outcome)."""
    meta = _meta(request)

    def run(family: str, *steps: Step) -> Trace:
        params = _params(vendor)
        for step in steps:
            needs = STEP_NEEDS.get(step_key(step), ())
            require(vendor, *needs)
        schedule = plan(FAMILIES[family], params, steps)
        try:
            trace = executor.run(schedule)
        except ExecutorError as exc:
            pytest.fail(f"{vendor.profile.name}: {exc}", pytrace=False)
        verdict = judge(schedule, trace, FAMILIES[family].new_model(params))
        if verdict.failed:
            _fail_with(request, meta, vendor, ScheduleFailed(schedule, trace, verdict), None, None)
        return trace

    return run
