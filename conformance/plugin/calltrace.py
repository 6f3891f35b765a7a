"""Call traces (--call-trace, or a profile with via = ["spy"]): each failing check's slice of the vendor's
pkcs11-spy log, PINs redacted, written next to the results JSON (plugin hook module)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ..results.traces import TraceCursor, trace_slice
from . import options
from .meta import meta_of
from .state import STATE

TRACE_START = pytest.StashKey[int]()
TRACE_DIR = "traces"  # next to the results JSON; records hold paths relative to it


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    runtime = getattr(item, "funcargs", {}).get("vendor")
    log = getattr(getattr(runtime, "provisioned", None), "trace_log", None)
    if log is not None:
        item.stash[TRACE_START] = TraceCursor(log).mark()
    return (yield)


def write_slice(item: pytest.Item) -> str | None:
    """Write the check's redacted trace slice next to the results JSON; its path relative to it (None: no
    trace, or nothing in it)."""
    if TRACE_START not in item.stash:
        return None
    runtime = item.funcargs["vendor"]  # type: ignore[attr-defined]
    state = item.config.stash[STATE]
    meta = meta_of(item)
    assert meta is not None  # only checks have a vendor with a trace log
    text = trace_slice(runtime.provisioned.trace_log, item.stash[TRACE_START], state.secrets)
    if not text.strip():
        return None
    results = Path(item.config.getoption(options.CONFORMANCE_JSON))
    relative = Path(TRACE_DIR) / runtime.profile.name / f"{meta.check}.log"
    target = results.parent / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return str(relative)
