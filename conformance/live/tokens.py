"""Choosing a token (label or RFC 7512 URI) on a loaded module, and describing library and token for reports."""

from __future__ import annotations

import sys
import time
from typing import Any
from urllib.parse import unquote

import pkcs11

# RFC 7512 path attributes that select a token, mapped to python-pkcs11 Token attributes.
_URI_TOKEN_ATTRS = {"token": "label", "manufacturer": "manufacturer_id", "serial": "serial", "model": "model"}


class TokenNotFound(LookupError):
    """No token matches; the message lists the tokens that are there."""


def parse_uri(uri: str) -> dict[str, str]:
    """The token-selecting attributes of a pkcs11: URI (unknown attributes are refused, not ignored)."""
    if not uri.startswith("pkcs11:"):
        raise ValueError(f"{uri!r} is not a pkcs11: URI")
    path = uri[len("pkcs11:"):].split("?", 1)[0]
    wanted: dict[str, str] = {}
    for part in filter(None, path.split(";")):
        key, _, value = part.partition("=")
        if key not in _URI_TOKEN_ATTRS:
            raise ValueError(f"URI attribute {key!r} cannot select a token; use {', '.join(_URI_TOKEN_ATTRS)}")
        wanted[key] = unquote(value)
    return wanted


def _token_value(token: Any, attr: str) -> str:
    value = getattr(token, _URI_TOKEN_ATTRS[attr])
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).rstrip()


def find_token(lib: Any, label: str | None, uri: str | None) -> Any:
    """The one initialised token that matches label or uri."""
    wanted = parse_uri(uri) if uri else {"token": label or ""}
    tokens = [slot.get_token() for slot in lib.get_slots(token_present=True)]
    matches = [t for t in tokens if all(_token_value(t, k) == v for k, v in wanted.items())]
    if len(matches) == 1:
        return matches[0]
    present = ", ".join(repr(v) for t in tokens if (v := _token_value(t, "token"))) or "none"
    what = uri or f"label {label!r}"
    if not matches:
        raise TokenNotFound(f"no token matches {what} (tokens present: {present}); fix the profile's token selection")
    raise TokenNotFound(f"{len(matches)} tokens match {what}; select one by pkcs11:token=...;serial=...")


def describe(lib: Any, token: Any) -> dict[str, Any]:
    """Library, token and mechanism facts recorded with every run (no secrets)."""
    mechanisms = list(token.slot.get_mechanisms())
    return {
        "library": {
            "manufacturer": lib.manufacturer_id,
            "description": lib.library_description,
            "version": "%d.%d" % lib.library_version,
            "cryptoki_version": "%d.%d" % lib.cryptoki_version,
        },
        "token": {
            "label": token.label,
            "manufacturer": token.manufacturer_id,
            "model": token.model,
            "serial": _token_value(token, "serial"),
            "flags": [f.name for f in type(token.flags) if f in token.flags and f.name],
        },
        "mechanisms": len(mechanisms),
    }


# python-pkcs11 raises these when a module is missing or is not a PKCS#11 library.
LOAD_ERRORS = (pkcs11.exceptions.PKCS11Error, OSError)


SETUP_RETRIES = 3


def open_for_setup(token: Any, pin: str, *, rw: bool = True) -> Any:
    """A logged-in session for the harness's own set-up and inspection (capability probe, sweeps, snapshots), with
    a short retry on CKR_GENERAL_ERROR: SoftHSM's file-backed token answers C_Login that way now and then while
    another process logs in to the same token (two xdist workers on one shared token). Checks never retry."""
    for attempt in range(SETUP_RETRIES):
        try:
            return token.open(rw=rw, user_pin=pin)
        except pkcs11.exceptions.GeneralError:
            if attempt == SETUP_RETRIES - 1:
                raise
            print(f"pkcs11-conformance: C_Login gave CKR_GENERAL_ERROR during set-up; retry {attempt + 1}",
                  file=sys.stderr)
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
