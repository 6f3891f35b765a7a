"""The provisioning kinds and wrappers by name, as data: what a profile may name (profile.py validates against
these) and where each is implemented (imported only when used, so a profile validates without the tools)."""

from __future__ import annotations

# kind -> "module:Class" in this package
PROVISIONERS: dict[str, str] = {
    "none": "existing:ExistingToken",
    "softhsm2": "softhsm2:SoftHSM2",
    "opencryptoki": "opencryptoki:OpenCryptoki",
    "tpm2": "tpm2:TPM2",
    "nss": "nss:NSSSoftokn",
}
WRAPPERS: dict[str, str] = {
    "p11-kit": "p11kit:P11KitProxy",
    "spy": "spy:PKCS11Spy",
}
