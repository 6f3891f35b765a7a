"""Runs one check's body in the executor child: the function is imported by name and called with the child's
live vendor; the outcome comes back as data (passed / failed with the message / skipped with the reason).

Checks are plain functions: `assert ... , "message"`, pytest.raises, pytest.skip work as in the pytest process.
"""

from __future__ import annotations

import importlib
import json
import traceback
from typing import Any

from ..live.vendor import LiveVendor
from ..pins import redact

CHILD_ARGS = ("vendor", "observe", "limits")  # what a check body can ask for when it runs in the child


def run_check(vendor: LiveVendor, msg: dict[str, Any]) -> dict[str, Any]:
    """{"outcome", "message", "where", "observed"} for the check named in msg; never raises."""
    import pytest

    from .parent import Limits

    observed: list[Any] = []

    def observe(value: Any) -> None:
        json.dumps(value)  # refuse what the results file could not hold, at the check that made it
        observed[:] = [value]

    provided = {"vendor": vendor, "observe": observe, "limits": Limits(**msg.get("limits", {}))}
    try:
        function = getattr(importlib.import_module(msg["module"]), msg["function"])
    except (ImportError, AttributeError) as exc:
        return {"outcome": "error", "message": f"cannot import {msg['module']}.{msg['function']}: {exc}"}
    kwargs = {name: provided[name] for name in msg["args"]}
    out: dict[str, Any] = {"outcome": "passed"}
    try:
        vendor.reset()
        function(**kwargs)
    except pytest.skip.Exception as exc:
        out = {"outcome": "skipped", "message": str(exc.msg)}
    except BaseException as exc:  # noqa: BLE001 - every failure of the body is data for the parent
        out = {"outcome": "failed", "message": f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
               "where": _where(exc, msg["module"])}
        exc.__traceback__ = None  # frames must not keep sessions or iterators alive past the reset
        del exc
    try:
        vendor.reset()
    except Exception as exc:  # noqa: BLE001
        if out["outcome"] == "passed":
            out = {"outcome": "failed", "message": f"reset after the check failed: {type(exc).__name__}: {exc}"}
    if observed:
        out["observed"] = observed[0]
    # Modules and python-pkcs11 may echo arguments in exception text: the PIN never leaves this process.
    for key in ("message", "where"):
        if key in out:
            out[key] = redact(out[key], [vendor.pin])
    return out


def _where(exc: BaseException, module: str) -> str:
    """The check's own frames (file:line and source), innermost last: where in the check it failed."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(module.rsplit(".", 1)[-1] + ".py")]
    return "\n".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}: {f.line}" for f in frames[-3:])


def login_check(vendor: LiveVendor) -> dict[str, Any]:
    """Log in once and out again (one try): {"ok": true}, or {"problem": wrong_pin | locked | other, "error"}."""
    import pkcs11

    try:
        session = vendor.open_session(login=True, rw=True)
    except pkcs11.exceptions.PinIncorrect:
        return {"problem": "wrong_pin"}
    except pkcs11.exceptions.PinLocked:
        return {"problem": "locked"}
    except pkcs11.exceptions.PKCS11Error as exc:
        return {"problem": "other", "error": type(exc).__name__}
    session.close()
    return {"ok": True}
