"""Fixtures that drive the module's process from pytest: drawn scenarios (`scenario`), scripted ones (`play`),
free-running stress (`stress`) and several applications on one token (`applications`).

A check that takes one of these runs in pytest and reaches the module only through them; every other check body
runs in the module's process (dispatch.py).
"""

from __future__ import annotations

import time
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, NoReturn

import pytest
from hypothesis import settings

from ..engine.explore import Exploration, ScheduleFailed, explore
from ..engine.families import FAMILIES
from ..engine.judge import judge
from ..engine.params import ModelParams
from ..engine.planning import plan
from ..engine.schedule import Step, Trace
from ..engine.predicting import CLOSED_SESSION_RULES
from ..engine.strategies import step_key
from ..executor.parent import Executor, ExecutorError
from ..executor.protocol import CallStress, LoginRoundsAnswer, ProviderStress, StressAnswer
from ..live.capabilities import CALL_NEEDS, STEP_NEEDS, missing_of, one_shot_use, require, unsupported_steps
from ..outcomes import BINDING, DIED, LIFTED, MODULE
from ..results.records import Behaviour, Coverage, Reproducer
from ..vendor.runtime import VendorRuntime
from .meta import META, update
from .state import STATE

# Fixtures a check drives the module's process through: a check that takes one runs in pytest.
DRIVERS = ("scenario", "play", "stress", "applications", "executor")

# The provider stress uses only calls python-pkcs11 serialises with the session's lock: unserialised concurrent
# calls (random, key generation, attribute reads) crash or hang SoftHSM initialised without locking — the
# binding's finding (binding.concurrent_calls_survive), not the provider's.
ONE_SHOT = "one-shot"  # in a stress's uses: the token's own one-shot use (capabilities.one_shot_use)
STRESS = ProviderStress(threads=4, iterations=150, uses=(ONE_SHOT, "search"))
STRESS_ROUNDS = 3

STRESS_BROKE = "broke under a free-running stress (crashed, hung or an error: how, the race decides)"


def _died(item: pytest.Item, vendor: VendorRuntime, outcome: str) -> str:
    """The module's process crashed or hung: record it and whether the token is intact; the integrity line."""
    integrity = vendor.integrity_note()
    update(item, died=outcome, integrity=integrity)
    return integrity


@pytest.fixture
def stress(request: pytest.FixtureRequest, vendor: VendorRuntime, executor: Executor) -> Callable[..., StressAnswer]:
    """Free-running stress in the module's process (barrier start, tiny switch interval): the provider under test
    by default (ProviderStress), or raw concurrent calls (CallStress)."""

    def run(command: ProviderStress | CallStress = STRESS, rounds: int = STRESS_ROUNDS) -> StressAnswer:
        missing = missing_of(vendor)
        if isinstance(command, CallStress):  # raw concurrent calls: only those the token supports
            usable = tuple(c for c in command.calls if not any(cap in missing for cap in CALL_NEEDS[c]))
            if not usable:
                require(vendor, *{cap for c in command.calls for cap in CALL_NEEDS[c]})
            command = replace(command, calls=usable)
        else:
            uses = tuple(one_shot_use(vendor) if u == ONE_SHOT else u for u in command.uses)
            for use in uses:
                require(vendor, *STEP_NEEDS.get(f"use:{use}", ()))
            command = replace(command, uses=uses)
        answer = StressAnswer("passed")
        budget = vendor.timing.stress_budget(command.threads, command.iterations)
        for _ in range(rounds):
            # The threads get the budget; the process a little more, to say which of them are stuck.
            answer = executor.stress(replace(command, timeout=budget), timeout=budget + 10.0)
            if answer.outcome != "passed":
                break
        described = {k: v for k, v in command.to_dict().items() if k != "timeout"}
        update(request.node, note=f"{rounds} rounds of {described}")
        integrity = "\n" + _died(request.node, vendor, answer.outcome) if answer.outcome in DIED else ""
        # A call held inside the module is quoted (answer.cause) but does not move the blame here: the threads
        # call the module at once, which python-pkcs11's C_Initialize(NULL) told it would not happen (v3.0 §5.4).
        # A failure is checked against the module's own answers (only calls that did not overlap conclude).
        blame = ""
        if answer.outcome == "failed" and request.node.stash[META].layer in LIFTED:
            judged = executor.judge_calls()
            if judged.deviation is not None and not request.node.stash[META].declared_failure:
                update(request.node, layer=MODULE)
            blame = f"\nblame: {judged.explain()}"
        if answer.outcome != "passed":
            # How a free-running race breaks (a crash, a hang, which error on which thread) falls differently from
            # run to run on the same setup: the behaviour the gate compares is that it broke, not how.
            update(request.node, behaviour=Behaviour("failed", STRESS_BROKE))
            detail = "\n".join([*answer.violations, answer.cause] if answer.cause else answer.violations) + blame
            pytest.fail(f"stress {answer.outcome}: {detail}{integrity}\n\nnot replayable step by step; run it again "
                        f"with -k '{request.node.name}' (parameters: {described})"
                        + (f"\n\n{answer.stacks}" if answer.stacks else ""), pytrace=False)
        return answer

    return run


APPLICATIONS_START_S = 0.5  # from now to the common start moment: time for every process to get the request


class Applications:
    """Several applications (processes) on the vendor's token: application 0 is the worker's executor, the others
    its siblings (VendorRuntime.applications). A module process that dies or stalls makes the check crashed or
    hung."""

    def __init__(self, item: pytest.Item, vendor: VendorRuntime) -> None:
        self.item, self.vendor = item, vendor
        self.used: set[int] = set()

    def _executors(self, n: int) -> list[Executor]:
        try:
            return self.vendor.applications(n)
        except ExecutorError as exc:
            pytest.fail(f"{self.vendor.profile.name}: a further process on the token did not come up ({exc})",
                        pytrace=False)

    def _crashed(self, which: str, exc: ExecutorError) -> NoReturn:
        pytest.fail(f"{which}: {exc}\n{_died(self.item, self.vendor, exc.outcome)}", pytrace=False)

    def login_rounds(self, n: int, rounds: int) -> list[LoginRoundsAnswer]:
        """n processes, each logging in and out `rounds` times from one common moment (executor/applications.py):
        what a service's worker processes do when they start together."""
        executors = self._executors(n)
        start_at = time.time() + APPLICATIONS_START_S
        with ThreadPoolExecutor(n) as pool:
            budget = self.vendor.timing.applications_budget(rounds)
            futures = [pool.submit(e.login_rounds, rounds, start_at, budget) for e in executors]
            answers: list[LoginRoundsAnswer] = []
            for i, future in enumerate(futures):
                try:
                    answers.append(future.result())
                except ExecutorError as exc:
                    self._crashed(f"application {i} of {n}", exc)
        update(self.item, note=f"{n} processes x {rounds} rounds of Token.open(user_pin=...) + close, from one moment")
        return answers

    def step(self, i: int, op: str) -> str:
        """Application i does `op` (executor/applications.app_step: login, close, state); its outcome."""
        executor = self._executors(i + 1)[i]
        self.used.add(i)
        try:
            return executor.app_step(op, self.vendor.timing.applications_budget(1))
        except ExecutorError as exc:
            self._crashed(f"application {i}, {op}", exc)

    def end(self) -> None:
        """Every application that took steps closes its sessions (also after a failed check)."""
        for i in sorted(self.used):
            try:
                self.vendor.applications(i + 1)[i].app_step("end", self.vendor.timing.applications_budget(1))
            except ExecutorError:
                pass  # a dead process has no sessions left; the next check restarts it


@pytest.fixture
def applications(request: pytest.FixtureRequest, vendor: VendorRuntime) -> Iterator[Applications]:
    """Several applications (processes) on the vendor's token; see Applications."""
    apps = Applications(request.node, vendor)
    yield apps
    apps.end()


def _fail_with(item: pytest.Item, vendor: VendorRuntime, executor: Executor, failure: ScheduleFailed,
               deterministic: bool | None, hypothesis_note: str | None) -> NoReturn:
    """Report a failing schedule: the layer it blames (the module's, where its own answers broke a rule on the
    way), a crash or hang into the record, the reproducer, the readable program."""
    layer, blame = failure.verdict.layer, ""
    first = failure.verdict.mismatches[0] if failure.verdict.mismatches else None
    if failure.verdict.status == "failed" and layer in LIFTED:
        judged = executor.judge_calls()  # up to the failing schedule just run (or its replay)
        # A declared finding keeps its declared layer (the module's deviation is quoted beside it).
        layer = MODULE if judged.deviation is not None and not item.stash[META].declared_failure else layer
        blame = f"\nblame: {judged.explain()}"
    elif (failure.verdict.status == "failed" and first is not None and first.rule in CLOSED_SESSION_RULES
          and not item.stash[META].declared_failure):
        judged = executor.judge_calls()
        if judged.available and judged.deviation is None:
            layer = BINDING
            blame = ("\nblame: binding — the module's own answers to the calls the tap logged follow PKCS#11: to the "
                     "module the handle was a live session when the call came (handed out again after its close, "
                     "which the spec allows, or never closed), so python-pkcs11 used a handle its Session had closed")
        else:
            blame = f"\nblame: {judged.explain()}"
    update(item, layer=layer, reproducer=Reproducer.of(failure.schedule, hypothesis_note))
    integrity = "\n" + _died(item, vendor, failure.verdict.status) if failure.verdict.status in DIED else ""
    determinism = {True: "replayed: same outcomes", False: "replayed: DIFFERENT outcomes (not deterministic)",
                   None: ""}[deterministic]
    pytest.fail(f"{failure}{blame}{integrity}\n\n{determinism}\nreplay: pytest --vendor={vendor.profile.name} "
                f"--replay=RESULTS.json -k '{item.name}'", pytrace=False)


def _params(vendor: VendorRuntime) -> ModelParams:
    """Characterise first, then explore: the defaults, then what this setup was measured to do at the start of the
    run (never a declaration), then the steps the token cannot run left out."""
    unsupported = unsupported_steps(missing_of(vendor))
    return ModelParams().declare(vendor.executor.characterise().settings()).declare([("unsupported_steps", unsupported)])


@pytest.fixture
def scenario(request: pytest.FixtureRequest, vendor: VendorRuntime, executor: Executor) -> Callable[[str], Exploration]:
    """Explore one scenario family on the vendor; a finding fails the check with the minimal schedule."""
    state = request.config.stash[STATE]
    item = request.node

    def run(family: str) -> Exploration:
        replay = [r.to_schedule(family) for r in state.replays.get(item.stash[META].check, [])]
        budget = vendor.timing.exploration_budget(settings().max_examples, FAMILIES[family].max_steps)
        try:
            found = explore(executor, family, _params(vendor), replay, budget_s=budget)
        except ExecutorError as exc:
            pytest.fail(f"{vendor.profile.name}: {exc}", pytrace=False)
        observed = {point: sorted(values) for point, values in sorted(found.observed.items())} or None
        planned = settings().max_examples
        coverage = Coverage(found.examples, planned, complete=not found.over_budget)
        note = f"{found.examples} examples ({state.hypothesis_profile} profile), executor restarts: {executor.restarts}"
        if found.over_budget:
            # A slow module is not a finding: say how far the exploration got, and record it for the gate.
            bound = (f"--check-timeout={budget:g} s" if vendor.timing.explicit.check_timeout
                     else f"its budget of {budget:g} s (from the module's measured latency)")
            note = (f"no finding in {coverage.describe()}: the exploration stopped at {bound} "
                    f"({state.hypothesis_profile} profile; raise --check-timeout to explore them all)")
        update(item, observed=observed, note=note, coverage=coverage)
        if found.failure is not None:
            _fail_with(item, vendor, executor, found.failure, found.deterministic, found.hypothesis_note)
        return found

    return run


@pytest.fixture
def play(request: pytest.FixtureRequest, vendor: VendorRuntime, executor: Executor) -> Callable[..., Trace]:
    """Run a fixed list of steps in the executor child, judged by the model like any drawn schedule: a scripted
    scenario. Returns the trace (for characterising checks to read a step's outcome)."""

    def run(family: str, *steps: Step) -> Trace:
        params = _params(vendor)
        for step in steps:
            require(vendor, *STEP_NEEDS.get(step_key(step), ()))
        schedule = plan(FAMILIES[family], params, steps)
        try:
            trace = executor.run(schedule)
        except ExecutorError as exc:
            pytest.fail(f"{vendor.profile.name}: {exc}", pytrace=False)
        verdict = judge(schedule, trace, FAMILIES[family].new_model(params))
        if verdict.failed:
            _fail_with(request.node, vendor, executor, ScheduleFailed(schedule, trace, verdict), None, None)
        return trace

    return run
