"""A vendor made live for one pytest process: token provisioned, the module loaded in the executor child (never
here), token found, PIN verified. The pytest process keeps only the facts and the executor."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..executor.parent import Executor, ExecutorError
from ..executor.protocol import ChildInit, MeasureLatency, Measured
from ..executor.timing import Explicit, Timing, derive
from ..live.characterise import MEASURED
from ..live.integrity import Snapshot
from ..pins import PinUnavailable, redact
from .profile import VendorProfile
from .provisioning import Provisioned, ProvisioningError, Stage, set_up


INTEGRITY_TIMEOUT_S = 30.0  # loading the module again and looking at the token, after a crash


class VendorUnavailable(RuntimeError):
    """The vendor cannot be used as configured; the message is one line that names the fix (never a PIN)."""


@dataclass
class VendorRuntime:
    """One vendor in one pytest process (one per xdist worker). Not a boundary type: never serialised."""

    profile: VendorProfile
    stage: Stage
    provisioned: Provisioned
    executor: Executor
    at_start: Snapshot | None = None  # the token as this process found it (integrity.py)
    siblings: list[Executor] = field(default_factory=list)  # further applications on the token, started on demand
    timing: Timing = field(default_factory=lambda: derive(None))  # the waits, from the module's measured latency

    @property
    def facts(self) -> dict[str, Any]:
        return self.executor.facts

    @property
    def library_version(self) -> str:
        return str(self.facts.get("library", {}).get("version", "0.0"))

    def user_pin(self) -> str:
        return self.profile.user_pin.reveal()

    def describe(self) -> dict[str, Any]:
        return {"module": self.profile.module or "", **self.facts}

    def snapshot(self, timeout: float | None = None) -> Snapshot:
        """The token as the module's process sees it now (integrity.py); ExecutorError if that process cannot
        answer — each caller says what that means at its moment."""
        return Snapshot.from_dict(self.executor.snapshot(timeout))

    def integrity_note(self, timeout: float = INTEGRITY_TIMEOUT_S) -> str:
        """After a crashed or hung check: is the token still present and intact? One line for the result.
        Bounded: a module that no longer loads is said to, not taken for a vanished token."""
        if self.at_start is None:
            return ""
        try:
            now = self.snapshot(timeout)
        except ExecutorError as exc:
            return f"token integrity after the crash not checked: the module does not come up again ({exc})"
        changes = now.changes_since(self.at_start)
        if not changes:
            return "token integrity after the crash: present and intact (flags and objects as at start)"
        return "TOKEN NOT INTACT after the crash: " + "; ".join(changes)

    def applications(self, n: int) -> list[Executor]:
        """n applications (processes) on the token: this worker's executor and n-1 siblings, each started on first
        use and kept for the run; ExecutorError if one does not come up."""
        while len(self.siblings) < n - 1:
            sibling = self.executor.sibling(f"app{len(self.siblings) + 1}", self.provisioned.sibling_env)
            try:
                sibling.ensure()
            except BaseException:
                sibling.close()
                raise
            self.siblings.append(sibling)
        return [self.executor, *self.siblings[: n - 1]]

    def stop(self) -> None:
        try:
            for sibling in self.siblings:
                sibling.close()
            self.executor.close()
        finally:
            self.stage.close()


def start(profile: VendorProfile, workdir: Path, *, explicit: Explicit = Explicit(), sut: str = "",
          trace: bool = False, verify_login: bool = False) -> VendorRuntime:
    """Provision, start the executor child (which loads the module and finds the token), measure the module's
    latency and derive the waits from it (explicit ones win); every failure is VendorUnavailable with the fix.
    trace=True wraps the module in pkcs11-spy (if the profile does not already)."""
    module = profile.module
    if module is None:
        raise VendorUnavailable(f"{profile.name}: module not found at {', '.join(profile.module_paths)}; "
                                "install it or fix module.path in the profile")
    via = list(profile.via) + (["spy"] if trace and "spy" not in profile.via else [])
    pin_problem: PinUnavailable | None = None
    try:
        pin = profile.user_pin.reveal()
    except PinUnavailable as exc:
        # Reported after the module and token are known good: those faults are named first.
        pin, pin_problem = "", exc
    try:
        stage = set_up(profile, workdir / "token", module, via)
    except (ProvisioningError, PinUnavailable) as exc:
        raise VendorUnavailable(f"{profile.name}: {exc}") from None
    executor: Executor | None = None
    try:
        provisioned = stage.freeze()
        init = ChildInit(
            name=profile.name, module=provisioned.module, module_shown=module, real_module=module,
            ground_truth=provisioned.ground_truth, env=dict(provisioned.env), token_label=provisioned.token_label,
            token_uri=provisioned.token_uri, pin=pin, sut=sut, evidence=provisioned.evidence,
            disposable=profile.disposable,
            sys_path=tuple(p for p in sys.path if p),  # so the child imports the --sut module and checks as we did
        )
        executor = Executor(init, workdir / "executor", derive(None, explicit).limits, launcher=provisioned.launcher,
                            cwd=provisioned.cwd)
        try:
            executor.ensure()
        except ExecutorError as exc:
            raise VendorUnavailable(f"{profile.name}: {exc}") from None
        runtime = VendorRuntime(profile, stage, provisioned, executor)
        if pin_problem is not None:
            executor.close()
            raise VendorUnavailable(f"{profile.name}: {pin_problem}")
        if verify_login:
            check_login(runtime)  # before the probe below logs in: a wrong PIN costs one try, not several
        try:
            executor.capabilities()
            _characterise(executor)
            problem = executor.sut_problem() if sut else None
            runtime.timing = derive(executor.ask(MeasureLatency(), Measured).latency, explicit, executor.limits)
        except ExecutorError as exc:
            raise VendorUnavailable(f"{profile.name}: {exc}") from None
        executor.limits = runtime.timing.limits
        executor.facts["timing"] = runtime.timing.to_dict()
        # How "blocked", "slow" and "hung" are told apart on this vendor (executor/waiting.py).
        executor.facts["evidence"] = (
            {"source": "tap", "detail": "the tap in front of the module sees which call each thread is in"}
            if provisioned.evidence else
            {"source": "timing", "detail": provisioned.notes.get("evidence", "no tap in the stack")})
        if problem:
            raise VendorUnavailable(redact(problem, [pin]))
        executor.facts["stack"] = list(via)
        if not profile.disposable and verify_login:
            # Once per run, before any check (the preflight): leftovers of an earlier, killed run go first.
            executor.facts["swept"] = executor.sweep()
        try:
            runtime.at_start = runtime.snapshot()
        except ExecutorError as exc:
            raise VendorUnavailable(f"{profile.name}: the token could not be inspected at start ({exc})") from None
        return runtime
    except BaseException:
        if executor is not None:
            executor.close()  # the module's process goes first, then its namespace and daemons
        stage.close()
        raise


def _characterise(executor: Executor) -> None:
    """Characterise first (live/characterise.py): the model's parameters for this run come from what this setup
    does. A module process that dies during the probes leaves the defaults, saying so; the next ask starts it anew."""
    try:
        executor.characterise()
    except ExecutorError as exc:
        executor.facts["characterised"] = {name: {"value": None, "evidence": f"not measured: {exc}"}
                                           for name in MEASURED}


def check_login(runtime: VendorRuntime) -> None:
    """Log in once and out again, so a wrong or locked PIN stops the run before any check (one failed try)."""
    profile = runtime.profile
    answer = runtime.executor.login_check()
    problem = answer.problem
    if problem is None:
        return
    runtime.stop()
    if problem == "wrong_pin":
        raise VendorUnavailable(f"{profile.name}: the user PIN (from {profile.user_pin.source}) is wrong; "
                                "set PKCS11_TOKEN_PIN or fix token.user_pin")
    if problem == "locked":
        raise VendorUnavailable(f"{profile.name}: the token's user PIN is locked; have the SO unlock it")
    raise VendorUnavailable(f"{profile.name}: logging in failed ({answer.error}); check the token and its PIN")
