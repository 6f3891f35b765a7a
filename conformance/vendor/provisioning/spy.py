"""OpenSC's pkcs11-spy between the binding and the module: a full call trace (every call, its arguments and
return value) in <workdir>/spy.log, which conformance.results.traces slices per check and strips of PINs."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .base import ProvisioningError, Stage

SPY_PATHS = (
    "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so",
    "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so",
)


def find_spy() -> str | None:
    return next((p for p in SPY_PATHS if Path(p).exists()), None)


class PKCS11Spy:
    name: ClassVar[str] = "spy"

    def apply(self, stage: Stage) -> None:
        spy = find_spy()
        if spy is None:
            raise ProvisioningError(f"pkcs11-spy.so not found (looked in {', '.join(SPY_PATHS)}); "
                                    "install it (apt-get install opensc-pkcs11)")
        if "PKCS11SPY" in stage.env:
            # spy reads one PKCS11SPY per process: a second layer would load itself
            raise ProvisioningError("the module is already wrapped by pkcs11-spy; list \"spy\" once in module.via")
        log = stage.workdir / "spy.log"
        log.touch(mode=0o600)  # the log shows key material of test keys: keep it the worker's own
        stage.env["PKCS11SPY"] = stage.module  # whatever is outermost so far (the module, or p11-kit-proxy)
        stage.env["PKCS11SPY_OUTPUT"] = str(log)  # default is stderr, which the executor's pipe would carry
        stage.trace_log = str(log)
        # Another process on the token traces nowhere: its calls must not interleave with the worker's trace (the
        # per-check slices), nor its C_Login leave the PIN in a file nobody cleans up.
        stage.sibling_env["PKCS11SPY_OUTPUT"] = "/dev/null"
        # The raw log has the PINs of every C_Login (only the per-check slices are redacted): gone with the stage.
        stage.cleanups.append(lambda: log.unlink(missing_ok=True))
        stage.notes["spy"] = f"pkcs11-spy wraps {stage.module}"
        stage.module = spy
        # stage.tap stays as it is: set by p11-kit when the proxy is inside
