"""Provisioners (make a private, disposable token per worker, or use one as it is) and wrappers (p11-kit-proxy,
pkcs11-spy between the binding and the module). Each kind lives in its own module and is named here once."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .base import Provisioned, Provisioner, Stage, Wrapper
from .errors import ProvisioningError
from .kinds import PROVISIONERS, WRAPPERS
from .native import build

if TYPE_CHECKING:
    from ..profile import VendorProfile

__all__ = ["PROVISIONERS", "WRAPPERS", "Provisioned", "Provisioner", "ProvisioningError", "Stage", "Wrapper",
           "provisioner_for", "set_up"]

def _load(spec: str) -> type:
    module, _, cls = spec.partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def provisioner_for(profile: VendorProfile) -> Provisioner:
    return _load(PROVISIONERS[profile.provisioning])()


def set_up(profile: VendorProfile, workdir: Path, module: str, via: Sequence[str] = (), *, tap: bool = True) -> Stage:
    """Provision the profile's token and apply its wrappers (innermost first); on failure everything started
    so far is stopped again before the ProvisioningError propagates. tap=False leaves the tap out (the benchmark:
    it needs no evidence, and times the module as the application's stack has it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    stage = Stage(profile=profile, workdir=workdir, module=module, real_module=module, env=dict(profile.env),
                  token_label=profile.token_label, token_uri=profile.token_uri)
    try:
        provisioner_for(profile).prepare(stage)
        stage.ground_truth = stage.module  # the module itself, loaded by whatever wraps it: same instance
        if tap and "p11-kit" not in via:
            _insert_tap(stage, required=not profile.disposable)  # innermost (p11-kit stacks get it after the proxy)
        for name in via:
            _load(WRAPPERS[name])().apply(stage)
            if tap and stage.tap and "CONFORMANCE_TAP_MODULE" not in stage.env:
                _insert_tap(stage, required=True)
                stage.ground_truth = stage.module  # the tap: the one instance both sides see
    except BaseException:
        stage.close()
        raise
    return stage


def _insert_tap(stage: Stage, *, required: bool) -> None:
    """Load the tap in place of the module so far. It watches every call (which thread is inside which call, what
    each returned: the evidence the executor uses before any timeout); it lets the binding and the ground truth
    share one instance (p11-kit-proxy hands every C_GetFunctionList caller a new one); and on a token that is not
    disposable it refuses the calls that would re-initialise it or change its PINs. Where it cannot be built and
    is not required (a disposable token), the run goes on with timing alone, and says so."""
    try:
        tap = str(build("tap"))
    except ProvisioningError as exc:
        if required:
            raise
        stage.notes["evidence"] = f"timing only: {exc}"
        return
    stage.env["CONFORMANCE_TAP_MODULE"] = stage.module
    if not stage.profile.disposable:
        # A real token: C_InitToken, C_InitPIN and C_SetPIN are refused in the tap, before the module.
        stage.env["CONFORMANCE_TAP_GUARD"] = "1"
        stage.notes["guard"] = "C_InitToken, C_InitPIN and C_SetPIN are refused (token not disposable)"
    stage.module = tap
    stage.evidence = tap
