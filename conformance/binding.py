"""The installed python-pkcs11, as the harness sees it: its version (recorded with every run; declarations of the
binding's deviations are keyed by it)."""

from __future__ import annotations

from importlib.metadata import version


def binding_version() -> str:
    return version("python-pkcs11")
