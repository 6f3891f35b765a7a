"""Runs check bodies in the vendor's executor child instead of the pytest process (plugin hook module).

A check whose function takes only `vendor`, `observe` and `limits` is sent to the child by name; its outcome
comes back as data and is re-raised here, so pytest, xfail-strict deviations and the results see it as if it
had run in-process. A module that crashes or hangs takes the child, not the run: the check is `crashed` / `hung`
with every thread's stack. Checks that drive the child themselves (play, scenario, stress) run here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from . import markers
from ..outcomes import DIED, HARNESS
from ..executor.checkrun import CHILD_ARGS
from ..pins import redact


def runs_in_child(item: pytest.Function) -> bool:
    if item.get_closest_marker(markers.CHECK) is None:
        return False
    args = item._fixtureinfo.argnames  # the function's own parameters (not autouse fixtures)
    return "vendor" in args and set(args) <= set(CHILD_ARGS)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not runs_in_child(pyfuncitem):
        return None
    from .state import STATE
    from ..results.records import check_properties

    state = pyfuncitem.config.stash[STATE]
    runtime = pyfuncitem.funcargs["vendor"]
    meta = check_properties(pyfuncitem)
    assert meta is not None  # runs_in_child: a check
    function = pyfuncitem.function
    result = runtime.executor.check(function.__module__, function.__name__, pyfuncitem._fixtureinfo.argnames,
                                    timeout=state.check_timeout)
    if "observed" in result:
        # Redacted here, at the source: the metadata also travels as a JUnit property and a pytest-html extra.
        meta["observed"] = json.loads(redact(json.dumps(result["observed"]), state.secrets))
    outcome = result.get("outcome")
    message = redact(str(result.get("message", "")), state.secrets)
    if outcome == "passed":
        return True
    if outcome == "skipped":
        pytest.skip(message)
    if outcome in DIED:
        meta["status"] = outcome
        stacks = redact(result.get("stacks") or "", state.secrets)
        meta["integrity"] = runtime.integrity_note()
        pytest.fail(f"{message}\n{meta['integrity']}\n\n{stacks}".rstrip(), pytrace=False)
    if outcome == "error":  # the child could not import the check: ours, not the vendor's
        meta["layer"] = HARNESS
    where = result.get("where")
    pytest.fail(f"{message}\n{where}" if where else message, pytrace=False)


# --- call traces: each failing check's slice of the vendor's pkcs11-spy log -----------------------------------

TRACE_START = pytest.StashKey[int]()
TRACE_DIR = "traces"  # next to the results JSON; records hold paths relative to it


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    runtime = getattr(item, "funcargs", {}).get("vendor")
    log = getattr(getattr(runtime, "provisioned", None), "trace_log", None)
    if log is not None:
        from ..results.traces import TraceCursor

        item.stash[TRACE_START] = TraceCursor(log).mark()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    if call.when == "call" and TRACE_START in item.stash and (report.failed or hasattr(report, "wasxfail")):
        _attach_trace(item, item.stash[TRACE_START])
    return report


def _attach_trace(item: pytest.Item, start: int) -> None:
    """Write the check's redacted trace slice next to the results JSON and record its relative path."""
    import os
    from pathlib import Path

    from . import options
    from .state import STATE
    from ..results.records import check_properties
    from ..results.traces import trace_slice

    runtime = item.funcargs["vendor"]  # type: ignore[attr-defined]
    state = item.config.stash[STATE]
    meta = check_properties(item)
    assert meta is not None  # only checks have a vendor with a trace log
    text = trace_slice(runtime.provisioned.trace_log, start, state.secrets)
    if not text.strip():
        return
    results = Path(item.config.getoption(options.CONFORMANCE_JSON))
    relative = Path(TRACE_DIR) / runtime.profile.name / f"{meta['check']}.log"
    target = results.parent / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    meta["trace"] = str(relative)
