"""PKCS#11 v3.0 §5.13 C_SignUpdate, C_SignFinal: CKM_SHA256_HMAC over chunks gives the RFC 2104 HMAC-SHA-256 of the
whole message. python-pkcs11 asks C_SignFinal for the length first (a NULL buffer): a module that writes the MAC
there crashes this process (then the exit status is the signal, not 0 or 1)."""

import hashlib
import hmac
import sys

from pkcs11 import Attribute, KeyType, Mechanism

CHUNKS = (b"pkcs11-", b"conformance ", b"reproducer")


def reproduce(token, pin):
    with token.open(rw=True, user_pin=pin) as session:
        key = session.generate_key(KeyType.GENERIC_SECRET, 256, store=False,
                                   mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                                   template={Attribute.VALUE_LEN: 32, Attribute.SIGN: True, Attribute.VERIFY: True,
                                             Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
        print("signing in parts (C_SignUpdate x3, C_SignFinal); a crash here is the finding", flush=True)
        sys.stdout.flush()
        mac = key.sign(iter(CHUNKS), mechanism=Mechanism.SHA256_HMAC)
        expected = hmac.new(key[Attribute.VALUE], b"".join(CHUNKS), hashlib.sha256).digest()
        if mac != expected:
            return True, "the multi-part SHA256-HMAC differs from RFC 2104 HMAC-SHA-256"
        return False, "the multi-part SHA256-HMAC is RFC 2104 HMAC-SHA-256 of the message"
