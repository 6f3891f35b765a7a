"""Runs one check's body in the module's process: the function is imported by name and called with the child's
live vendor; the outcome comes back as data (passed / failed with the message / skipped with the reason).

Checks are plain functions: `assert ... , "message"`, pytest.raises, pytest.skip work as in the pytest process.
"""

from __future__ import annotations

import importlib
import json
import traceback
from typing import Any

from ..binding import BindingLacks
from ..live.vendor import LiveVendor
from ..outcomes import describe, ours
from ..pins import redact
from .protocol import CheckAnswer, LoginChecked, RunCheck

# What a check body can ask for when it runs in the module's process (besides its own parametrize values).
CHILD_ARGS = ("vendor", "observe", "limits")


def run_check(vendor: LiveVendor, command: RunCheck) -> CheckAnswer:
    """The outcome of the check named in the command; never raises."""
    import pytest

    observed: list[Any] = []

    def observe(value: Any) -> None:
        json.dumps(value)  # refuse what the results file could not hold, at the check that made it
        observed[:] = [value]

    provided = {"vendor": vendor, "observe": observe, "limits": command.limits, **command.params}
    try:
        function = getattr(importlib.import_module(command.module), command.function)
    except (ImportError, AttributeError) as exc:
        return CheckAnswer("error", f"cannot import {command.module}.{command.function}: {exc}")
    kwargs = {name: provided[name] for name in command.args}
    outcome, message, where = "passed", "", ""
    try:
        vendor.reset()
        function(**kwargs)
    except pytest.skip.Exception as exc:
        outcome, message = "skipped", str(exc.msg)
    except BindingLacks as exc:  # this python-pkcs11 cannot do what the check needs: not a finding either way
        outcome, message = "skipped", str(exc)
    except BaseException as exc:  # noqa: BLE001 - every failure of the body is data for the parent
        if ours(exc):
            outcome, message = "error", f"the harness broke running the check: {describe(exc)}"
        else:
            outcome = "failed"
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        where = _where(exc, command.module)
        exc.__traceback__ = None  # frames must not keep sessions or iterators alive past the reset
        del exc
    try:
        vendor.reset()
    except Exception as exc:  # noqa: BLE001
        if outcome == "passed":
            outcome, message = (("error", f"the harness broke resetting after the check: {describe(exc)}") if ours(exc)
                                else ("failed", f"reset after the check failed: {type(exc).__name__}: {exc}"))
    # Modules and python-pkcs11 may echo arguments in exception text: the PIN never leaves this process.
    return CheckAnswer(outcome, redact(message, [vendor.pin]), redact(where, [vendor.pin]),
                       observed[0] if observed else None, bool(observed), restart=vendor.retire)


def _where(exc: BaseException, module: str) -> str:
    """The check's own frames (file:line and source), innermost last: where in the check it failed."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(module.rsplit(".", 1)[-1] + ".py")]
    return "\n".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}: {f.line}" for f in frames[-3:])


def login_check(vendor: LiveVendor) -> LoginChecked:
    """Log in once and out again (one try): no problem, or wrong_pin | locked | other with the error class."""
    import pkcs11

    try:
        session = vendor.open_session(login=True, rw=True)
    except pkcs11.exceptions.PinIncorrect:
        return LoginChecked("wrong_pin")
    except pkcs11.exceptions.PinLocked:
        return LoginChecked("locked")
    except pkcs11.exceptions.PKCS11Error as exc:
        return LoginChecked("other", type(exc).__name__)
    session.close()
    return LoginChecked()
