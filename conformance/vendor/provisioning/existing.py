"""The token is already there (a real HSM partition, a shared dev token): use it as it is, never initialise it."""

from __future__ import annotations

from typing import ClassVar

from .base import Stage


class ExistingToken:
    kind: ClassVar[str] = "none"

    def prepare(self, stage: Stage) -> None:
        pass  # the profile's label/uri and environment are already on the stage
