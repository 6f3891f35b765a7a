"""Runs check bodies in the vendor's module process instead of the pytest process (plugin hook module).

A check placed in the child (placement.py) is sent there by name; its outcome comes back as data and is
re-raised here, so pytest, xfail-strict deviations and the results see it as if it had run in-process. A module
that crashes or hangs takes the child, not the run: the check is `crashed` / `hung` with every thread's stack.
Checks that drive the child themselves (play, scenario, stress, applications) run here.
"""

from __future__ import annotations

import pytest

from ..outcomes import DIED, LIFTED, MODULE, HarnessFault
from ..pins import redact
from ..vendor.runtime import VendorRuntime
from .meta import meta_of, redacted, update
from .placement import PLACEMENT
from .state import STATE


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    placement = pyfuncitem.stash.get(PLACEMENT, None)
    if placement is None or not placement.in_child:
        return None
    state = pyfuncitem.config.stash[STATE]
    runtime = pyfuncitem.funcargs["vendor"]
    assert isinstance(runtime, VendorRuntime)  # in pytest the vendor fixture is the runtime
    function = pyfuncitem.function
    answer = runtime.executor.check(function.__module__, function.__name__, placement.args,
                                    timeout=runtime.timing.check_budget(), params=placement.params or {})
    if answer.has_observed:
        update(pyfuncitem, observed=redacted(answer.observed, state.secrets))
    message = redact(answer.message, state.secrets)
    if answer.outcome == "passed":
        return True
    if answer.outcome == "skipped":
        pytest.skip(message)
    if answer.outcome in DIED:
        integrity = runtime.integrity_note()
        update(pyfuncitem, died=answer.outcome, integrity=integrity)
        if answer.inside is not None:  # the tap saw the call held inside the module: the module's finding
            update(pyfuncitem, layer=MODULE)
        pytest.fail(f"{message}\n{integrity}\n\n{redact(answer.stacks, state.secrets)}".rstrip(), pytrace=False)
    meta = meta_of(pyfuncitem)
    assert meta is not None  # placed: a check
    if answer.outcome == "error":  # ours, not the vendor's (hooks.py records it as error, layer harness)
        raise HarnessFault(f"{message}\n{redact(answer.where, state.secrets)}".rstrip())
    if meta.layer in LIFTED:
        # A binding or provider check failed: did the module itself break a rule on the way?
        judged = runtime.executor.judge_calls()
        if judged.deviation is not None and not meta.declared_failure:  # a declared finding keeps its declared layer
            update(pyfuncitem, layer=MODULE)
        message = f"{message}\nblame: {redact(judged.explain(), state.secrets)}"
    where = redact(answer.where, state.secrets)
    pytest.fail(f"{message}\n{where}" if where else message, pytrace=False)
