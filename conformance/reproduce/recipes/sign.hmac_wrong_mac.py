"""PKCS#11 v3.0 §5.1.6, §5.15: C_Verify of a wrong MAC gives CKR_SIGNATURE_INVALID (or CKR_SIGNATURE_LEN_RANGE for
a wrong length), which python-pkcs11's Key.verify answers as False. Tries a SHA256-HMAC with its last byte flipped."""

import hashlib
import hmac

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism

MESSAGE = b"pkcs11-conformance reproducer"


def reproduce(token, pin):
    with token.open(rw=True, user_pin=pin) as session:
        key = session.generate_key(KeyType.GENERIC_SECRET, 256, store=False,
                                   mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                                   template={Attribute.VALUE_LEN: 32, Attribute.SIGN: True, Attribute.VERIFY: True,
                                             Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
        mac = hmac.new(key[Attribute.VALUE], MESSAGE, hashlib.sha256).digest()
        forged = mac[:-1] + bytes([mac[-1] ^ 0x01])
        try:
            accepted = key.verify(MESSAGE, forged, mechanism=Mechanism.SHA256_HMAC)
        except pkcs11.exceptions.PKCS11Error as exc:
            return True, f"verify() of a forged SHA256-HMAC raised {type(exc).__name__}, not SignatureInvalid"
        if accepted:
            return True, "verify() accepted a forged SHA256-HMAC"
        return False, "verify() of a forged SHA256-HMAC returned False (CKR_SIGNATURE_INVALID)"
