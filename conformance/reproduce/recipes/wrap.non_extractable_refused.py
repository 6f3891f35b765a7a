"""PKCS#11 v3.0 §4.9: a key with CKA_EXTRACTABLE false "cannot be wrapped"; C_WrapKey of it must fail
(CKR_KEY_UNEXTRACTABLE, §5.1). Wraps a non-extractable AES-128 key with an AES-256 key (CKM_AES_KEY_WRAP where the
token lists it, else CKM_AES_CBC_PAD)."""

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism


def reproduce(token, pin):
    listed = set(token.slot.get_mechanisms())
    mechanism = Mechanism.AES_KEY_WRAP if Mechanism.AES_KEY_WRAP in listed else Mechanism.AES_CBC_PAD
    param = bytes(16) if mechanism == Mechanism.AES_CBC_PAD else None
    with token.open(rw=True, user_pin=pin) as session:
        wrapping = session.generate_key(KeyType.AES, 256, store=False)
        key = session.generate_key(KeyType.AES, 128, store=False, template={Attribute.EXTRACTABLE: False})
        try:
            wrapped = wrapping.wrap_key(key, mechanism=mechanism, mechanism_param=param)
        except pkcs11.exceptions.PKCS11Error as exc:
            return False, f"C_WrapKey ({mechanism.name}) refused the non-extractable key ({type(exc).__name__})"
        return True, (f"C_WrapKey ({mechanism.name}) wrapped a key whose CKA_EXTRACTABLE reads "
                      f"{key[Attribute.EXTRACTABLE]!r} ({len(wrapped)} bytes)")
