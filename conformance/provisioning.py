"""Provisioners: make (and remove) a private, disposable token for one pytest worker, or use a token as it is."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Mapping, Protocol

from .pins import redact

if TYPE_CHECKING:
    from .profile import VendorProfile


class ProvisioningError(RuntimeError):
    """A token could not be made; the message says what to install or fix."""


@dataclass(frozen=True)
class Provisioned:
    """What loading the module needs after provisioning: environment, and how to pick the token."""

    env: Mapping[str, str]
    token_label: str | None
    token_uri: str | None
    workdir: str | None = None
    created: bool = False
    notes: Mapping[str, str] = field(default_factory=dict)


class Provisioner(Protocol):
    """One kind of token set-up. `prepare` runs before the module is loaded in the process."""

    kind: ClassVar[str]

    def prepare(self, profile: VendorProfile, workdir: Path) -> Provisioned: ...

    def teardown(self, provisioned: Provisioned) -> None: ...


class ExistingToken:
    """The token is already there (a real HSM partition, a shared dev token): use it, never initialise it."""

    kind: ClassVar[str] = "none"

    def prepare(self, profile: VendorProfile, workdir: Path) -> Provisioned:
        return Provisioned(env=dict(profile.env), token_label=profile.token_label, token_uri=profile.token_uri)

    def teardown(self, provisioned: Provisioned) -> None:
        pass


class SoftHSM2:
    """A private SoftHSM 2 token directory (own SOFTHSM2_CONF) initialised with softhsm2-util."""

    kind: ClassVar[str] = "softhsm2"
    tool = "softhsm2-util"

    def prepare(self, profile: VendorProfile, workdir: Path) -> Provisioned:
        exe = shutil.which(self.tool)
        if exe is None:
            raise ProvisioningError(f"{self.tool} not found; install it (apt-get install softhsm2)")
        assert profile.token_label is not None and profile.so_pin is not None  # validated by the profile
        tokens = workdir / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        conf = workdir / "softhsm2.conf"
        conf.write_text(
            f"directories.tokendir = {tokens}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n"
            "slots.mechanisms = ALL\n"
            "library.reset_on_fork = false\n"
        )
        env = {**profile.env, "SOFTHSM2_CONF": str(conf)}
        pins = [profile.user_pin.reveal(), profile.so_pin.reveal()]
        cmd = [exe, "--init-token", "--free", "--label", profile.token_label, "--pin", pins[0], "--so-pin", pins[1]]
        proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            # softhsm2-util may echo its arguments: never let a PIN through.
            out = (proc.stderr or proc.stdout).strip()
            detail = redact(out.splitlines()[-1], pins) if out else f"exit {proc.returncode}"
            raise ProvisioningError(f"{self.tool} --init-token failed ({detail}); "
                                    f"check the PIN lengths in {profile.source or profile.name}")
        return Provisioned(env=env, token_label=profile.token_label, token_uri=None, workdir=str(workdir), created=True)

    def teardown(self, provisioned: Provisioned) -> None:
        if provisioned.created and provisioned.workdir:
            shutil.rmtree(Path(provisioned.workdir) / "tokens", ignore_errors=True)


PROVISIONERS: dict[str, type[Provisioner]] = {p.kind: p for p in (ExistingToken, SoftHSM2)}


def provisioner_for(profile: VendorProfile) -> Provisioner:
    return PROVISIONERS[profile.provisioning]()
