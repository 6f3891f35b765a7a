"""PINs as values that never print themselves, and redaction of any text that might echo one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

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


def redact_data(value: Any, secrets: list[str]) -> Any:
    """JSON-like data with every secret removed from its strings (keys too); a number that *is* a secret (a PIN of
    digits) becomes the redaction mark. Redacting the data, not its JSON text: a PIN of digits inside a measured
    duration (0.0123456 with PIN 1234) would otherwise break the JSON, and is no PIN."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {redact(str(k), secrets): redact_data(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v, secrets) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and str(value) in secrets:
        return REDACTED
    return value
