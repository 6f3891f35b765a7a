"""The HMAC key scenario steps sign with, and the signature check they make: one definition for the executor's
actions (executor/actions.py) and the capability probe that tries exactly these calls first (capabilities.py)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from pkcs11 import KeyType, Mechanism
from pkcs11.constants import Attribute

from ..engine.vocabulary import MAC_DATA

# Its value can be read, so a signature is compared with Python's hmac.
MAC_TEMPLATE = {Attribute.SIGN: True, Attribute.VERIFY: True, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True,
                Attribute.VALUE_LEN: 32}


def mac_key(session: Any) -> tuple[Any, bytes]:
    """(a session SHA256-HMAC key, its CKA_VALUE): neither call takes python-pkcs11's operation lock."""
    key = session.generate_key(KeyType.GENERIC_SECRET, 256, store=False, mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                               template=MAC_TEMPLATE)
    return key, key[Attribute.VALUE]


def expected_mac(value: bytes) -> bytes:
    return hmac.new(value, MAC_DATA, hashlib.sha256).digest()


def signed(key: Any, value: bytes) -> bool:
    """A one-shot SHA256-HMAC equals Python's hmac. (Not multi-part: OpenCryptoki 3.8 dies in C_SignFinal(NULL) of an
    HMAC — sign.hmac_sha256_multi_part, opencryptoki#238 — and a crash would end every scenario on it.)"""
    return key.sign(MAC_DATA, mechanism=Mechanism.SHA256_HMAC) == expected_mac(value)


def verified(key: Any, value: bytes) -> bool:
    """The token accepts Python's hmac of the data (python-pkcs11's verify returns False on SignatureInvalid)."""
    return bool(key.verify(MAC_DATA, expected_mac(value), mechanism=Mechanism.SHA256_HMAC))
