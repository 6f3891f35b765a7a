"""PKCS#11 v3.0 §5.10 C_Decrypt, CKR_ENCRYPTED_DATA_INVALID: a CKM_AES_CBC_PAD ciphertext whose last block decrypts
to a final byte of 0 has no valid PKCS #7 padding, so C_Decrypt must fail. The ciphertext is made by the token
itself: AES-CBC without padding of 31 bytes and a zero byte."""

import pkcs11
from pkcs11 import KeyType, Mechanism

IV = bytes(range(16))


def reproduce(token, pin):
    with token.open(rw=True, user_pin=pin) as session:
        key = session.generate_key(KeyType.AES, 128, store=False)
        bad = key.encrypt(b"m" * 31 + b"\0", mechanism=Mechanism.AES_CBC, mechanism_param=IV)
        try:
            plain = key.decrypt(bad, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV)
        except pkcs11.exceptions.PKCS11Error as exc:
            return False, f"C_Decrypt refused the badly padded ciphertext ({type(exc).__name__})"
        return True, f"C_Decrypt accepted a ciphertext whose padding byte is 0 and gave {len(plain)} bytes"
