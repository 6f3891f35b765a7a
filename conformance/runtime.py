"""A vendor made live in this process: token provisioned, module loaded, token found, PIN verified."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11

from .groundtruth import GroundTruth
from .pins import PinUnavailable, Secret
from .profile import VendorProfile
from .provisioning import Provisioned, ProvisioningError, provisioner_for
from .tokens import LOAD_ERRORS, TokenNotFound, describe, find_token


class VendorUnavailable(RuntimeError):
    """The vendor cannot be used as configured; the message is one line that names the fix (never a PIN)."""


@dataclass
class VendorRuntime:
    """Live objects for one vendor in one process. Not a boundary type: never serialised."""

    profile: VendorProfile
    provisioned: Provisioned
    module_path: str
    lib: Any
    token: Any
    ground_truth: GroundTruth

    @property
    def slot_id(self) -> int:
        return self.token.slot.slot_id

    def user_pin(self) -> str:
        return self.profile.user_pin.reveal()

    def open_session(self, *, login: bool = True, rw: bool = True) -> Any:
        """A new session; with login=True the user is logged in through it (python-pkcs11's token.open)."""
        return self.token.open(rw=rw, user_pin=self.user_pin() if login else None)

    def reset(self) -> None:
        """Cheap per-test reset: drop dangling iterators, close every session of ours, back to public state."""
        gc.collect()
        self.ground_truth.close_all_sessions(self.slot_id)

    def describe(self) -> dict[str, Any]:
        return {"module": self.module_path, **describe(self.lib, self.token)}

    def stop(self) -> None:
        try:
            self.reset()
        finally:
            provisioner_for(self.profile).teardown(self.provisioned)


def start(profile: VendorProfile, workdir: Path, *, verify_login: bool = False) -> VendorRuntime:
    """Provision (if disposable), load and find the token; every failure is VendorUnavailable with the fix."""
    module = profile.module
    if module is None:
        raise VendorUnavailable(f"{profile.name}: module not found at {', '.join(profile.module_paths)}; "
                                "install it or fix module.path in the profile")
    loaded = getattr(pkcs11, "_loaded", {})
    if module in loaded:
        raise VendorUnavailable(f"{profile.name}: module {module} is already loaded in this process by another "
                                "vendor; run these vendors in separate pytest runs")
    provisioner = provisioner_for(profile)
    try:
        provisioned = provisioner.prepare(profile, workdir)
    except (ProvisioningError, PinUnavailable) as exc:
        raise VendorUnavailable(f"{profile.name}: {exc}") from None
    try:
        # The module reads its configuration (e.g. SOFTHSM2_CONF) when it is initialised, i.e. on load.
        os.environ.update(provisioned.env)
        try:
            lib = pkcs11.lib(module)
        except LOAD_ERRORS as exc:
            raise VendorUnavailable(f"{profile.name}: {module} could not be loaded as a PKCS#11 module "
                                    f"({type(exc).__name__}: {exc}); point module.path at the vendor's PKCS#11 library") from None
        try:
            token = find_token(lib, provisioned.token_label, provisioned.token_uri)
        except (TokenNotFound, ValueError) as exc:
            raise VendorUnavailable(f"{profile.name}: {exc}") from None
        runtime = VendorRuntime(profile, provisioned, module, lib, token, GroundTruth(module))
        if verify_login:
            check_login(runtime)
        return runtime
    except BaseException:
        provisioner.teardown(provisioned)
        raise


def check_login(runtime: VendorRuntime) -> None:
    """Log in once and out again, so a wrong or locked PIN stops the run before any check (one failed try)."""
    profile = runtime.profile
    try:
        session = runtime.open_session(login=True, rw=True)
    except PinUnavailable as exc:
        raise VendorUnavailable(f"{profile.name}: {exc}") from None
    except pkcs11.exceptions.PinIncorrect:
        raise VendorUnavailable(f"{profile.name}: the user PIN (from {profile.user_pin.source}) is wrong; "
                                "set PKCS11_TOKEN_PIN or fix token.user_pin") from None
    except pkcs11.exceptions.PinLocked:
        raise VendorUnavailable(f"{profile.name}: the token's user PIN is locked; have the SO unlock it") from None
    except pkcs11.exceptions.PKCS11Error as exc:
        raise VendorUnavailable(f"{profile.name}: logging in failed ({type(exc).__name__}); "
                                "check the token and its PIN") from None
    session.close()


def pins_of(profile: VendorProfile) -> list[str]:
    """Every PIN value the profile resolves to, for redaction (missing ones are skipped)."""
    values = []
    for secret in (profile.user_pin, profile.so_pin):
        if isinstance(secret, Secret):
            try:
                values.append(secret.reveal())
            except PinUnavailable:
                pass
    return values
