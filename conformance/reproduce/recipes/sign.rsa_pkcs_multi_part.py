"""PKCS#11 v3.0 §5.13: C_SignUpdate continues a multiple-part signature and C_SignFinal finishes it, so
CKM_SHA256_RSA_PKCS over chunks signs the whole message. python-pkcs11 asks C_SignFinal for the length first
(a NULL buffer); a module that resets the operation there signs the empty message instead. The key pair is a
session object where the token makes one, else a token object under this script's label, destroyed at the end."""

from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.exceptions import PKCS11Error

LABEL = "pkcs11-conformance reproducer"
CHUNKS = (b"pkcs11-", b"conformance ", b"reproducer")


def reproduce(token, pin):
    with token.open(rw=True, user_pin=pin) as session:
        try:
            public, private = session.generate_keypair(KeyType.RSA, 2048, store=False)
        except PKCS11Error:  # tpm2-pkcs11 makes key pairs only as token objects
            public, private = session.generate_keypair(KeyType.RSA, 2048, store=True, label=LABEL)
        try:
            signature = private.sign(iter(CHUNKS), mechanism=Mechanism.SHA256_RSA_PKCS)
            whole = public.verify(b"".join(CHUNKS), signature, mechanism=Mechanism.SHA256_RSA_PKCS)
            empty = public.verify(b"", signature, mechanism=Mechanism.SHA256_RSA_PKCS)
        finally:
            for key in (public, private):
                if key[Attribute.TOKEN]:
                    key.destroy()
        if whole:
            return False, "the multi-part signature verifies for the message"
        return True, ("the multi-part signature does not verify for the message"
                      + (" — it is a signature of the empty message" if empty else ""))
