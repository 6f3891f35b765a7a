"""The one error of provisioning: shared by the stage, the namespace isolation and the native build."""

from __future__ import annotations


class ProvisioningError(RuntimeError):
    """A token could not be made; the message says what to install or fix (never a PIN)."""
