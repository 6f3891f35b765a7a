"""A private SoftHSM 2 token directory (own SOFTHSM2_CONF) initialised with softhsm2-util, per worker."""

from __future__ import annotations

import shutil
from typing import ClassVar

from .base import ProvisioningError, Stage


class SoftHSM2:
    kind: ClassVar[str] = "softhsm2"
    tool = "softhsm2-util"

    def prepare(self, stage: Stage) -> None:
        exe = shutil.which(self.tool)
        if exe is None:
            raise ProvisioningError(f"{self.tool} not found; install it (apt-get install softhsm2)")
        profile = stage.profile
        assert profile.token_label is not None and profile.so_pin is not None  # validated by the profile
        tokens = stage.workdir / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        conf = stage.workdir / "softhsm2.conf"
        conf.write_text(
            f"directories.tokendir = {tokens}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n"
            "slots.mechanisms = ALL\n"
            "library.reset_on_fork = false\n"
        )
        stage.env["SOFTHSM2_CONF"] = str(conf)
        pin, so_pin = profile.user_pin.reveal(), profile.so_pin.reveal()
        try:
            stage.run([exe, "--init-token", "--free", "--label", profile.token_label, "--pin", pin, "--so-pin", so_pin],
                      what="apt-get install softhsm2")
        except ProvisioningError as exc:
            raise ProvisioningError(f"{exc}; check the PIN lengths in {profile.source or profile.name}") from None
        stage.created = True
        stage.cleanups.append(lambda: shutil.rmtree(tokens, ignore_errors=True))
