"""Key derivation as applications call it: PrivateKey.derive_key (C_DeriveKey) with CKM_ECDH1_DERIVE, the other
party's public value in CK_ECDH1_DERIVE_PARAMS (python-pkcs11: mechanism_param=(KDF, shared data, public data));
PKCS#11 v3.0 §5.18 C_DeriveKey, §2.3.15 (ECDH). The other party is `cryptography`, whose ECDH exchange gives the
shared secret the token must derive."""

from __future__ import annotations

from typing import Any

import pytest
from asn1crypto.core import OctetString
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pkcs11 import KDF, Attribute, KeyType, Mechanism
from pkcs11.exceptions import PKCS11Error

from ..live.capabilities import require_mechanism
from ..live.keys import CURVES as FIELD_BYTES
from ..live.keys import READABLE, ec_pair
from ..live.probes import refusal_name as refusal  # a CKR the binding has no class for: by its name

CURVES = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1}
# Derived keys are made READABLE, so their value can be compared (v3.0 §4.9: CKA_VALUE of a sensitive or
# unextractable key cannot be revealed).


def exchange(vendor: Any, curve: str, what: str) -> tuple[Any, bytes, bytes]:
    """(the token's private key, the other party's public value as a raw X9.62 uncompressed point, the shared
    secret by cryptography's ECDH of the other party's private key and the token's public key)."""
    require_mechanism(vendor, Mechanism.ECDH1_DERIVE)
    session = vendor.open_session()
    public, private = ec_pair(vendor, session, curve, what=what)
    token_point = OctetString.load(public[Attribute.EC_POINT], strict=True).native
    token_public = ec.EllipticCurvePublicKey.from_encoded_point(CURVES[curve](), token_point)
    other = ec.generate_private_key(CURVES[curve]())
    other_point = other.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return private, other_point, other.exchange(ec.ECDH(), token_public)


def derive(observe: Any, private: Any, key_type: KeyType, bits: int, other_point: bytes, **kwargs: Any) -> Any:
    """C_DeriveKey with CKM_ECDH1_DERIVE, CKD_NULL and no shared data; a refusal is observed and fails the check
    (the token lists the mechanism)."""
    try:
        return private.derive_key(key_type, bits, mechanism=Mechanism.ECDH1_DERIVE,
                                  mechanism_param=(KDF.NULL, None, other_point), **kwargs)
    except PKCS11Error as exc:
        refused = refusal(exc)
    observe({"derive": refused})
    pytest.fail(f"the token lists CKM_ECDH1_DERIVE but refuses to derive a {key_type.name} key from a raw "
                f"uncompressed point: {refused}")


@pytest.mark.check("derive.ecdh_{curve}", layer="module", spec="PKCS#11 v3.0 §5.18 C_DeriveKey, §2.3.15 CKM_ECDH1_DERIVE, §2.3.14 CK_ECDH1_DERIVE_PARAMS")
@pytest.mark.parametrize("curve", sorted(CURVES))
def test_ecdh(vendor, observe, curve):
    """CKM_ECDH1_DERIVE "is a mechanism for key derivation based on the Diffie-Hellman version of the elliptic
    curve key agreement scheme"; with kdf CKD_NULL no KDF is applied, and pPublicData is the other party's public
    value, which "A token MUST be able to accept ... encoded as a raw octet string (as per section A.5.2 of [ANSI
    X9.62])" (v3.0 §2.3.14, §2.3.15): a generic secret of the field's size derived by the token from a cryptography
    peer's point is the shared secret cryptography computes from the token's public key."""
    private, other_point, shared = exchange(vendor, curve, f"derive-{curve}")
    length = FIELD_BYTES[curve]
    key = derive(observe, private, KeyType.GENERIC_SECRET, 8 * length, other_point, template=READABLE)
    value = key[Attribute.VALUE]
    assert value == shared, (f"the derived {len(value)}-byte secret differs from the ECDH shared secret "
                             f"cryptography computes ({length} bytes)")


@pytest.mark.check("derive.ecdh_key_usable", layer="module", spec="PKCS#11 v3.0 §5.18 C_DeriveKey, §2.3.15 CKM_ECDH1_DERIVE, §2.14 CKM_AES_CBC_PAD")
def test_ecdh_key_usable(vendor, observe):
    """A key C_DeriveKey makes is a key like any other of its type (v3.0 §5.18: it "creates a new key object"):
    an AES-256 key derived with CKM_ECDH1_DERIVE (secp256r1, CKD_NULL: its 32 bytes are the shared secret)
    encrypts with AES-CBC-PAD what cryptography decrypts under the shared secret, and decrypts cryptography's
    ciphertext."""
    require_mechanism(vendor, Mechanism.AES_CBC_PAD)
    private, other_point, shared = exchange(vendor, "secp256r1", "derive-usable")
    key = derive(observe, private, KeyType.AES, 256, other_point)
    data, iv = b"derived key, conformance check", bytes(range(16))
    cipher = Cipher(algorithms.AES(shared), modes.CBC(iv))
    ciphertext = key.encrypt(data, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv)
    unpadder = sym_padding.PKCS7(128).unpadder()
    decryptor = cipher.decryptor()
    plain = decryptor.update(ciphertext) + decryptor.finalize()
    try:
        theirs = unpadder.update(plain) + unpadder.finalize()
    except ValueError:
        theirs = None
    assert theirs == data, "the token's AES-CBC-PAD ciphertext under the derived key does not decrypt under the shared secret"
    padder = sym_padding.PKCS7(128).padder()
    encryptor = cipher.encryptor()
    ours = encryptor.update(padder.update(data) + padder.finalize()) + encryptor.finalize()
    assert key.decrypt(ours, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv) == data, (
        "the token's AES-CBC-PAD decryption under the derived key of cryptography's ciphertext gave other data")
