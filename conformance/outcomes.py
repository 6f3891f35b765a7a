"""The results vocabulary, defined once: outcomes, layers, which outcomes are findings — and whose a failure is.

Every module that names an outcome or a layer takes it from here (the results schema, the profile's deviations,
the gate's classes, the report's colours).
"""

from __future__ import annotations

import traceback
from pathlib import Path

OUTCOMES = ("passed", "failed", "xfailed", "xpassed", "skipped", "error", "crashed", "hung")
# The layer a result is blamed on. A check judges one of the first three; "harness" is only ever our own bug.
LAYERS = ("module", "binding", "provider", "harness")
CHECK_LAYERS = ("module", "binding", "provider")
HARNESS = "harness"
MODULE = "module"
BINDING = "binding"
# Layers whose failures are checked against the module's own answers (engine/rawspec.py): where the module broke a
# rule on the way, the finding is lifted to it.
LIFTED = ("binding", "provider")
# Outcomes that are findings: something behaved other than the spec, the docs or a declaration say.
FINDINGS = ("failed", "crashed", "hung", "error")
# The module's process died (crashed) or stopped answering (hung) during the check.
DIED = ("crashed", "hung")
# Passing outcomes for the gate: a pass, or a declared deviation happening as declared.
GOOD = frozenset({"passed", "xfailed"})
BAD = frozenset(FINDINGS)


# --- whose a failure is: ours (the harness layer) or the system under test's ---------------------------------------
# Telling the harness's own failures from findings: an exception is ours when it was raised in the harness's code
# (not the binding's, the module's or a provider's) and is not one of the ways a check states a finding.
# 
# Ours ends a result as `error`, layer harness, with the place it broke — never as a module, binding or provider
# outcome: an incompatibility with an older python-pkcs11 (an attribute the release does not have) is the harness's
# to fix, and the report must not send anyone to a vendor for it.

PACKAGE = Path(__file__).resolve().parent
# Inside the package but the system under test: the reference session provider (the documented pattern's own
# mistakes are provider findings).
UNDER_TEST = frozenset({PACKAGE / "refsession.py"})


class HarnessFault(Exception):
    """The harness broke (in the module's process or here); the message names the exception and where."""


class ReportsFinding:
    """Mixin for the harness's exceptions that report what the system under test did (the module refusing a
    ground-truth call, the module's process dying or going silent): never ours, wherever they are raised."""


def _finding_types() -> tuple[type[BaseException], ...]:
    import pkcs11
    import pytest

    return (AssertionError, pkcs11.exceptions.PKCS11Error, ReportsFinding,  # type: ignore[return-value]
            pytest.fail.Exception, pytest.skip.Exception, pytest.xfail.Exception)


def ours(exc: BaseException) -> bool:
    """Raised by the harness's own code (its innermost frame is in this package, outside the system under test),
    and not a finding (an assertion, a pkcs11 error, a ReportsFinding, a pytest outcome)."""
    from .binding import BindingLacks

    if isinstance(exc, (HarnessFault, BindingLacks)):
        return True
    if isinstance(exc, _finding_types()) or not isinstance(exc, Exception):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return False
    innermost = Path(frames[-1].filename).resolve()
    return innermost.is_relative_to(PACKAGE) and innermost not in UNDER_TEST


def describe(exc: BaseException) -> str:
    """One line: the exception and the innermost place in the harness it came from."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve().is_relative_to(PACKAGE)]
    if frames:
        where = frames[-1]
        text += f" (at {Path(where.filename).resolve().relative_to(PACKAGE.parent)}:{where.lineno}: {where.line})"
    return text
