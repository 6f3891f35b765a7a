"""Current Mechanisms v3.0 CKM_RSA_PKCS_OAEP with CK_RSA_PKCS_OAEP_PARAMS: hashAlg CKM_SHA256 and MGF1 with SHA-256
(no label) is a valid parameter set; C_Encrypt with it must work (RFC 8017 §7.1 RSAES-OAEP)."""

import pkcs11
from pkcs11 import MGF, KeyType, Mechanism


def reproduce(token, pin):
    with token.open(rw=True, user_pin=pin) as session:
        public, private = session.generate_keypair(KeyType.RSA, 2048, store=False)
        param = (Mechanism.SHA256, MGF.SHA256, None)
        try:
            ciphertext = public.encrypt(b"x" * 32, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=param)
        except pkcs11.exceptions.PKCS11Error as exc:
            return True, f"C_Encrypt with RSA-OAEP SHA-256 / MGF1-SHA-256 raised {type(exc).__name__}"
        back = private.decrypt(ciphertext, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=param)
        if back != b"x" * 32:
            return True, "RSA-OAEP SHA-256 decrypted to another message"
        return False, "RSA-OAEP with SHA-256 encrypts and decrypts"
