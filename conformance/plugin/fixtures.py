"""Fixtures every check can use: the vendor, `observe`, `limits`, and the per-check guard (profile skips, the
destructive and risky guards, declared deviations). The fixtures that drive the module's process are in
drivers.py."""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, Iterator

import pytest

from ..binding import binding_version
from ..executor.parent import Executor
from ..executor.protocol import Limits
from ..live.capabilities import one_shot_use
from ..sut import DEFAULT_SUT
from ..vendor.declarations import applicable, mark_for
from ..vendor.runtime import VendorRuntime, VendorUnavailable, start
from ..vendor.sharing import taking_turns
from . import markers
from .meta import meta_of, redacted, update
from .state import STATE


@pytest.fixture(scope="session")
def vendor(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> VendorRuntime:
    """The vendor this check runs on: provisioned for this process (under xdist: this worker's own token), its
    module loaded in the executor child. Check bodies that drive no child themselves run in that child, where
    `vendor` is the live vendor (live/vendor.py)."""
    state = request.config.stash[STATE]
    name: str = request.param
    runtime = state.runtimes.get(name)
    if runtime is None:
        # tmp_path_factory is per xdist worker, so each worker provisions its own token here; on a token that is
        # not disposable the workers take turns (vendor/sharing.py).
        try:
            with taking_turns(state.profiles[name]):
                runtime = start(state.profiles[name], tmp_path_factory.mktemp(f"vendor-{name}"),
                                explicit=state.explicit, sut=state.sut_spec, trace=state.trace)
        except VendorUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        state.runtimes[name] = runtime  # stopped in pytest_sessionfinish
    return runtime


def versions_of(runtime: VendorRuntime) -> dict[str, str]:
    """The component versions declarations are matched against."""
    return {"python-pkcs11": binding_version(), "library": runtime.library_version}


@pytest.fixture(autouse=True)
def _conformance_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Per check: the profile's skips, declared deviations and the destructive and risky guards (the child resets
    the token before and after each check body). On a token that is not disposable the check has the token to
    itself among this run's processes (vendor/sharing.py)."""
    meta = meta_of(request.node)
    if meta is None:
        yield
        return
    runtime: VendorRuntime = request.getfixturevalue("vendor")
    profile = runtime.profile
    for pattern, reason in profile.skip.items():
        if fnmatch.fnmatchcase(meta.check, pattern):
            pytest.skip(f"{profile.name} profile: {reason}")
    if request.node.get_closest_marker(markers.DESTRUCTIVE) and not profile.disposable:
        pytest.skip(f"destructive check: {profile.name}'s token is not disposable")
    state = request.config.stash[STATE]
    if request.node.get_closest_marker(markers.RISKY) and not profile.disposable and not state.allow_risky:
        pytest.skip(f"can crash the module, and {profile.name}'s token is not disposable (a crash under such "
                    "load has wiped a token's store here); run it with --allow-risky after a backup")
    declared = []
    for origin, deviation in applicable(meta.check, profile, versions_of(runtime),
                                        reference_provider=state.sut_spec == DEFAULT_SUT):
        mark = mark_for(origin, deviation)
        if mark is not None:
            request.node.add_marker(mark)
        declared.append({"origin": origin, **deviation.to_dict()})
    if declared:
        update(request.node, deviations=meta.deviations + tuple(declared))
    with taking_turns(profile):
        yield


@pytest.fixture
def observe(request: pytest.FixtureRequest) -> Callable[[Any], None]:
    """Record the behaviour a characterising check observed (a JSON value) in its result."""
    secrets = request.config.stash[STATE].secrets

    def record(value: Any) -> None:
        update(request.node, observed=redacted(value, secrets))

    return record


@pytest.fixture
def limits(vendor: VendorRuntime) -> Limits:
    """How long a call is watched before it counts as blocked (block_window) and how long a call that should
    return is given (step_timeout): derived from the vendor's measured latency, or --block-window/--step-timeout."""
    return vendor.timing.limits


@pytest.fixture(scope="session")
def executor(vendor: VendorRuntime) -> Executor:
    """The vendor's executor child (one per vendor per worker): scenarios run there, never in this process."""
    return vendor.executor


@pytest.fixture
def one_shot(vendor: VendorRuntime) -> str:
    """A one-shot use of a session the token supports (capabilities.ONE_SHOT_USES): `digest`, else `random`."""
    return one_shot_use(vendor)
