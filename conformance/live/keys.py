"""Keys for the checks of what applications do with them: session keys where the token makes them; where it refuses
session keys (tpm2-pkcs11 makes key pairs only as token objects) and the token is disposable, token keys under this
run's labels, destroyed when the check ends (LiveVendor.reset). Anything else is a skip naming what is missing.

Whether a token makes session keys at all is itself a behaviour: keygen.* checks record it; these helpers only get
the other checks a key to work with.
"""

from __future__ import annotations

from typing import Any, Mapping

import pytest
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.exceptions import PKCS11Error
from pkcs11.util.ec import encode_named_curve_parameters

from ..labels import label
from .capabilities import require_mechanism

# curve name (as `cryptography` and asn1crypto spell it) -> field size in bytes
CURVES = {"secp256r1": 32, "secp384r1": 48, "secp521r1": 66}
KEYGEN = {KeyType.AES: Mechanism.AES_KEY_GEN, KeyType.GENERIC_SECRET: Mechanism.GENERIC_SECRET_KEY_GEN,
          KeyType.RSA: Mechanism.RSA_PKCS_KEY_PAIR_GEN, KeyType.EC: Mechanism.EC_KEY_PAIR_GEN}


def secret_key(vendor: Any, session: Any, key_type: KeyType, bits: int, *, what: str,
               template: Mapping[Any, Any] | None = None) -> Any:
    """A secret key of `bits` on `session` (a session object, else a token object on a disposable token)."""
    require_mechanism(vendor, KEYGEN[key_type])
    # The mechanism and CKA_VALUE_LEN named, as later bindings send them: python-pkcs11 0.7.0 has no default
    # mechanism for a generic secret and sets CKA_VALUE_LEN only for AES (it raised ArgumentsBad itself).
    full = {Attribute.VALUE_LEN: bits // 8, **dict(template or {})}
    make = lambda store, **kw: session.generate_key(key_type, bits, store=store, mechanism=KEYGEN[key_type],  # noqa: E731
                                                    template=full, **kw)
    return _made(vendor, f"{key_type.name} {bits}-bit key", what, make)


READABLE = {Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True}  # CKA_VALUE readable, for a cross-check


def readable_secret_key(vendor: Any, session: Any, key_type: KeyType, bits: int, *, what: str,
                        template: Mapping[Any, Any] | None = None) -> tuple[Any, bytes]:
    """(key, its CKA_VALUE): a secret key made non-sensitive and extractable, so `cryptography` or hashlib can use
    the same key; a skip naming why where the token makes no such key or hides its value."""
    try:
        key = secret_key(vendor, session, key_type, bits, what=what, template={**READABLE, **dict(template or {})})
    except pytest.skip.Exception as exc:
        pytest.skip(f"{exc} (asked for CKA_SENSITIVE=false, CKA_EXTRACTABLE=true, which the cross-check needs)")
    try:
        return key, key[Attribute.VALUE]
    except PKCS11Error as exc:
        pytest.skip(f"the token does not reveal CKA_VALUE of a non-sensitive, extractable {key_type.name} key "
                    f"({type(exc).__name__}), which the cross-check needs")


def rsa_pair(vendor: Any, session: Any, bits: int, *, what: str, public_template: Mapping[Any, Any] | None = None,
             private_template: Mapping[Any, Any] | None = None) -> tuple[Any, Any]:
    """(public, private) RSA key pair of `bits` (public exponent 65537, python-pkcs11's default)."""
    require_mechanism(vendor, Mechanism.RSA_PKCS_KEY_PAIR_GEN)
    make = lambda store, **kw: session.generate_keypair(  # noqa: E731
        KeyType.RSA, bits, store=store, public_template=dict(public_template or {}),
        private_template=dict(private_template or {}), **kw)
    return _made(vendor, f"RSA-{bits} key pair", what, make)


def ec_pair(vendor: Any, session: Any, curve: str, *, what: str, public_template: Mapping[Any, Any] | None = None,
            private_template: Mapping[Any, Any] | None = None) -> tuple[Any, Any]:
    """(public, private) EC key pair on a named curve (CKA_EC_PARAMS: the curve's OID)."""
    require_mechanism(vendor, Mechanism.EC_KEY_PAIR_GEN)
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True)
    make = lambda store, **kw: params.generate_keypair(  # noqa: E731
        store=store, public_template=dict(public_template or {}), private_template=dict(private_template or {}), **kw)
    return _made(vendor, f"EC {curve} key pair", what, make)


def _made(vendor: Any, name: str, what: str, make: Any) -> Any:
    try:
        return make(False)
    except PKCS11Error as exc:
        refused = type(exc).__name__
    if not vendor.disposable:
        pytest.skip(f"the token makes no session {name} ({refused}), and its profile is not disposable, so no "
                    "token key is made instead")
    tag = label(f"key-{what}")
    vendor.token_objects.add(tag)  # destroyed at the check's end (LiveVendor.reset), whatever happens next
    try:
        return make(True, label=tag)
    except PKCS11Error as exc:
        pytest.skip(f"the token makes no {name}: as a session object {refused}, as a token object "
                    f"{type(exc).__name__}")
