"""PINs as values that never print themselves, and redaction of any text that might echo one."""

from __future__ import annotations

import os
from dataclasses import dataclass

REDACTED = "***"


class PinUnavailable(LookupError):
    """The PIN's environment variable is not set; the message says which one to set."""


@dataclass(frozen=True, repr=False)
class Secret:
    """A PIN as written in a profile: a literal, or "env:VAR"; PKCS11_TOKEN_PIN-style variables override both.

    str() and repr() never show the value; call reveal() only at the point of C_Login.
    """

    spec: str
    override_env: str | None = None

    def reveal(self) -> str:
        if self.override_env and os.environ.get(self.override_env):
            return os.environ[self.override_env]
        if self.spec.startswith("env:"):
            var = self.spec[4:]
            value = os.environ.get(var)
            if not value:
                raise PinUnavailable(f"the PIN comes from ${var}, which is not set; export {var}=... "
                                     f"(or {self.override_env})")
            return value
        return self.spec

    @property
    def source(self) -> str:
        """Where the PIN comes from, safe to print."""
        if self.override_env and os.environ.get(self.override_env):
            return f"${self.override_env}"
        return f"${self.spec[4:]}" if self.spec.startswith("env:") else "profile literal"

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__


def redact(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of any secret value in text — as text, and hex-dumped (any case, spaced or not,
    as modules and tracers print buffers) — longest first, so overlaps cannot leak."""
    forms: set[str] = set()
    for value in (s for s in secrets if s):
        forms.add(value)
        raw = value.encode("utf-8")
        if len(raw) >= 2:  # a one-byte hex form would match everywhere
            for joiner in ("", " ", ":"):
                hexed = joiner.join(f"{b:02x}" for b in raw)
                forms.update((hexed, hexed.upper()))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text
