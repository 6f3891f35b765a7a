"""Signatures and MACs as applications make and check them: Key.sign (C_SignInit, C_Sign, or C_SignUpdate ...
C_SignFinal for an iterable of chunks) and Key.verify (C_Verify, C_VerifyUpdate ... C_VerifyFinal); PKCS#11 v3.0
§5.13, §5.15, with the mechanisms of PKCS#11 Current Mechanisms v3.0 (RSA PKCS #1 v1.5 and PSS §2.1, ECDSA §2.3,
EdDSA §2.3.14, HMAC §4.x). Every signature the token makes is checked by `cryptography` (or Python's hmac), and
signatures made there are checked by the token."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from asn1crypto.core import OctetString
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error
from pkcs11.util.ec import (decode_ecdsa_signature, encode_ec_public_key, encode_ecdsa_signature,
                            encode_named_curve_parameters)

from ..labels import label
from ..live.capabilities import require_mechanism
from ..live.keys import ec_pair, rsa_pair, secret_key
from ..live.probes import OK, outcome_of

# name -> (hash mechanism, its infix in CKM_<infix>_RSA_PKCS[_PSS], MGF, cryptography hash, digest size in bytes)
HASHES = {"sha1": ("SHA_1", "SHA1", "SHA1", hashes.SHA1, 20),
          "sha224": ("SHA224", "SHA224", "SHA224", hashes.SHA224, 28),
          "sha256": ("SHA256", "SHA256", "SHA256", hashes.SHA256, 32),
          "sha384": ("SHA384", "SHA384", "SHA384", hashes.SHA384, 48),
          "sha512": ("SHA512", "SHA512", "SHA512", hashes.SHA512, 64)}
# check id suffix -> (curve name as asn1crypto and live/keys spell it, cryptography curve, the hash prehashed with)
CURVES = {"p256": ("secp256r1", ec.SECP256R1, hashes.SHA256), "p384": ("secp384r1", ec.SECP384R1, hashes.SHA384),
          "p521": ("secp521r1", ec.SECP521R1, hashes.SHA512)}
# RFC 8410 id-Ed25519 (1.3.101.112), DER: CKA_EC_PARAMS of an Ed25519 key (Current Mechanisms v3.0 §2.3.5)
ED25519_PARAMS = b"\x06\x03\x2b\x65\x70"
RSA_BITS = 2048
MESSAGE = b"pkcs11-conformance: a message to sign, " * 3
# chunks that cut the message unevenly (one byte, a middle run, the rest), for C_SignUpdate / C_VerifyUpdate
CHUNKS = (MESSAGE[:1], MESSAGE[1:50], MESSAGE[50:])


def rsa_public(public):
    """The token's RSA public key as `cryptography` sees it: from its CKA_MODULUS and CKA_PUBLIC_EXPONENT."""
    return rsa.RSAPublicNumbers(int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                                int.from_bytes(public[Attribute.MODULUS], "big")).public_key()


def accepts(verify) -> bool:
    """Whether a `cryptography` verify call accepts its signature."""
    try:
        verify()
    except InvalidSignature:
        return False
    return True


def imported(vendor, session, template, *, what, name):
    """A public key made from `template` by C_CreateObject: a session object, else (a token that refuses session
    objects, on a disposable profile) a token object under this run's label, destroyed when the check ends."""
    try:
        return session.create_object({**template, Attribute.TOKEN: False})
    except PKCS11Error as exc:
        refused = type(exc).__name__
    if not vendor.disposable:
        pytest.skip(f"the token refuses an imported {name} as a session object (C_CreateObject: {refused}), and its "
                    "profile is not disposable, so no token object is made instead")
    tag = label(f"key-{what}")
    vendor.token_objects.add(tag)  # destroyed at the check's end (LiveVendor.reset)
    try:
        return session.create_object({**template, Attribute.TOKEN: True, Attribute.LABEL: tag})
    except PKCS11Error as exc:
        pytest.skip(f"the token refuses an imported {name} (C_CreateObject): as a session object {refused}, as a "
                    f"token object {type(exc).__name__}")


def raw_verify(key, data, signature, mechanism):
    """outcome_of C_VerifyInit + C_Verify as the binding makes them, without Key.verify's mapping of
    CKR_SIGNATURE_INVALID and CKR_SIGNATURE_LEN_RANGE to False (`_verify` exists from 0.7.0 to 0.10.x)."""
    call = getattr(key, "_verify", None)
    if call is None:
        pytest.skip("this python-pkcs11 has no Key._verify, so the CKR of a refused signature cannot be seen")
    return outcome_of(lambda: call(data, signature, mechanism=mechanism))


# --- RSA PKCS #1 v1.5 ---------------------------------------------------------------------------------------------

@pytest.mark.check("sign.rsa_pkcs_{hash}", layer="module",
                   spec="PKCS#11 v3.0 §5.13 C_Sign, §5.15 C_Verify; Current Mechanisms v3.0 §2.1.13; RFC 8017 §8.2")
@pytest.mark.parametrize("hash", sorted(HASHES))
def test_rsa_pkcs(vendor, hash):
    """CKM_SHAn_RSA_PKCS "performs single- and multiple-part digital signatures and verification operations" of
    RSASSA-PKCS1-v1_5 with the hash (Current Mechanisms v3.0 §2.1.13): a one-shot signature by an RSA-2048 key
    of the token verifies under RFC 8017 §8.2.2 (`cryptography`, public key from CKA_MODULUS and
    CKA_PUBLIC_EXPONENT), and the token verifies it too."""
    _, infix, _, algorithm, _ = HASHES[hash]
    mechanism = Mechanism[f"{infix}_RSA_PKCS"]
    require_mechanism(vendor, mechanism)
    session = vendor.open_session()
    public, private = rsa_pair(vendor, session, RSA_BITS, what=f"sign-rsa-pkcs-{hash}")
    signature = private.sign(MESSAGE, mechanism=mechanism)
    assert len(signature) == RSA_BITS // 8, f"CKM_{mechanism.name} gave a {len(signature)}-byte signature"
    assert accepts(lambda: rsa_public(public).verify(signature, MESSAGE, padding.PKCS1v15(), algorithm())), (
        f"the token's CKM_{mechanism.name} signature is not a valid RSASSA-PKCS1-v1_5 {hash} signature")
    assert public.verify(MESSAGE, signature, mechanism=mechanism), (
        f"the token refuses its own CKM_{mechanism.name} signature")


@pytest.mark.check("sign.rsa_pkcs_multi_part", layer="module",
                   spec="PKCS#11 v3.0 §5.13 C_SignUpdate, C_SignFinal, §5.15 C_VerifyUpdate, C_VerifyFinal")
def test_rsa_pkcs_multi_part(vendor):
    """C_SignUpdate "continues a multiple-part signature operation" and C_SignFinal finishes it (v3.0 §5.13):
    CKM_SHA256_RSA_PKCS over chunks signs the whole message, and RSASSA-PKCS1-v1_5 is deterministic, so the
    signature equals the one-shot one; C_VerifyUpdate/C_VerifyFinal over the chunks accept it (§5.15)."""
    require_mechanism(vendor, Mechanism.SHA256_RSA_PKCS)
    session = vendor.open_session()
    public, private = rsa_pair(vendor, session, RSA_BITS, what="sign-rsa-pkcs-multi")
    whole = private.sign(MESSAGE, mechanism=Mechanism.SHA256_RSA_PKCS)
    parts = private.sign(iter(CHUNKS), mechanism=Mechanism.SHA256_RSA_PKCS)
    assert parts == whole, (f"CKM_SHA256_RSA_PKCS over chunks of {[len(c) for c in CHUNKS]} bytes differs from "
                            "the one-shot signature of the same message")
    assert public.verify(iter(CHUNKS), whole, mechanism=Mechanism.SHA256_RSA_PKCS), (
        "multi-part C_VerifyUpdate/C_VerifyFinal refuses the one-shot signature")


@pytest.mark.check("sign.rsa_pkcs_foreign", layer="module",
                   spec="PKCS#11 v3.0 §5.15 C_Verify, §4.8 public key objects; Current Mechanisms v3.0 §2.1.13")
def test_rsa_pkcs_foreign(vendor):
    """A public key is usable as soon as it is an object (v3.0 §4.8, C_CreateObject with CKA_MODULUS and
    CKA_PUBLIC_EXPONENT): an RSASSA-PKCS1-v1_5 SHA-256 signature made elsewhere (`cryptography`) verifies
    under CKM_SHA256_RSA_PKCS with the imported public key."""
    require_mechanism(vendor, Mechanism.SHA256_RSA_PKCS)
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    numbers = foreign.public_key().public_numbers()
    session = vendor.open_session()
    public = imported(vendor, session, {
        Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.VERIFY: True,
        Attribute.MODULUS: numbers.n.to_bytes(RSA_BITS // 8, "big"),
        Attribute.PUBLIC_EXPONENT: numbers.e.to_bytes(3, "big")}, what="sign-rsa-foreign", name="RSA public key")
    signature = foreign.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    assert public.verify(MESSAGE, signature, mechanism=Mechanism.SHA256_RSA_PKCS), (
        "the token refuses a valid RSASSA-PKCS1-v1_5 SHA-256 signature made by cryptography")


@pytest.mark.check("sign.rsa_pkcs_wrong_signature", layer="module",
                   spec="PKCS#11 v3.0 §5.15 C_Verify, §5.1.6 CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE")
def test_rsa_pkcs_wrong_signature(vendor, observe):
    """A changed signature does not verify: "CKR_SIGNATURE_INVALID ... the signature is invalid", and
    CKR_SIGNATURE_LEN_RANGE "solely on the basis of its length" (v3.0 §5.1.6); python-pkcs11's verify answers
    False for either. Checks a signature with one byte flipped and one a byte short; characterises which CKR the
    module gives each (the exception python-pkcs11 raises from C_Verify)."""
    require_mechanism(vendor, Mechanism.SHA256_RSA_PKCS)
    session = vendor.open_session()
    public, private = rsa_pair(vendor, session, RSA_BITS, what="sign-rsa-wrong")
    signature = private.sign(MESSAGE, mechanism=Mechanism.SHA256_RSA_PKCS)
    wrong = {"flipped": signature[:-1] + bytes([signature[-1] ^ 0x01]), "truncated": signature[:-1]}
    seen = {how: raw_verify(public, MESSAGE, sig, Mechanism.SHA256_RSA_PKCS) for how, sig in sorted(wrong.items())}
    observe(seen)
    accepted = [how for how, result in seen.items() if result == OK]
    assert not accepted, f"C_Verify accepts a {' and a '.join(accepted)} signature"
    answers = {how: public.verify(MESSAGE, sig, mechanism=Mechanism.SHA256_RSA_PKCS) for how, sig in wrong.items()}
    assert not any(answers.values()), f"Key.verify of a changed signature: {answers}"
    assert public.verify(MESSAGE, signature, mechanism=Mechanism.SHA256_RSA_PKCS), (
        "after the refused ones, the token refuses the right signature")


# --- RSA PSS ------------------------------------------------------------------------------------------------------

@pytest.mark.check("sign.rsa_pss_{hash}", layer="module",
                   spec="PKCS#11 v3.0 §5.13 C_Sign; Current Mechanisms v3.0 §2.1.14-2.1.15 CK_RSA_PKCS_PSS_PARAMS; "
                        "RFC 8017 §8.1")
@pytest.mark.parametrize("hash", sorted(HASHES))
def test_rsa_pss(vendor, hash):
    """CKM_SHAn_RSA_PKCS_PSS with CK_RSA_PKCS_PSS_PARAMS (hashAlg the same hash, MGF1 with it, sLen the digest
    size; Current Mechanisms v3.0 §2.1.14-2.1.15) signs RSASSA-PSS (RFC 8017 §8.1): `cryptography` verifies the
    token's signature with the same salt length, and the token verifies it too."""
    hash_mech, infix, mgf, algorithm, size = HASHES[hash]
    mechanism = Mechanism[f"{infix}_RSA_PKCS_PSS"]
    require_mechanism(vendor, mechanism)
    param = (Mechanism[hash_mech], MGF[mgf], size)
    session = vendor.open_session()
    public, private = rsa_pair(vendor, session, RSA_BITS, what=f"sign-rsa-pss-{hash}")
    signature = private.sign(MESSAGE, mechanism=mechanism, mechanism_param=param)
    pss = padding.PSS(mgf=padding.MGF1(algorithm()), salt_length=size)
    assert accepts(lambda: rsa_public(public).verify(signature, MESSAGE, pss, algorithm())), (
        f"the token's CKM_{mechanism.name} signature is not a valid RSASSA-PSS {hash} signature "
        f"(MGF1-{hash}, {size}-byte salt)")
    assert public.verify(MESSAGE, signature, mechanism=mechanism, mechanism_param=param), (
        f"the token refuses its own CKM_{mechanism.name} signature")


# --- ECDSA --------------------------------------------------------------------------------------------------------

@pytest.mark.check("sign.ecdsa_{curve}", layer="module",
                   spec="PKCS#11 v3.0 §5.13 C_Sign; Current Mechanisms v3.0 §2.3.7 CKM_ECDSA; ANSI X9.62")
@pytest.mark.parametrize("curve", sorted(CURVES))
def test_ecdsa(vendor, curve):
    """CKM_ECDSA signs a hash given as the data (Current Mechanisms v3.0 §2.3.7: "the input to the mechanism is
    the hash"), the signature r || s, each as long as the curve's order: `cryptography` verifies it over the
    prehashed message with the token's public key (CKA_EC_PARAMS, CKA_EC_POINT), and the token verifies it too."""
    name, _, algorithm = CURVES[curve]
    require_mechanism(vendor, Mechanism.ECDSA)
    session = vendor.open_session()
    public, private = ec_pair(vendor, session, name, what=f"sign-ecdsa-{curve}")
    digest = hashlib.new(algorithm.name, MESSAGE).digest()
    signature = private.sign(digest, mechanism=Mechanism.ECDSA)
    theirs = serialization.load_der_public_key(encode_ec_public_key(public))
    assert accepts(lambda: theirs.verify(encode_ecdsa_signature(signature), digest,
                                         ec.ECDSA(utils.Prehashed(algorithm())))), (
        f"the token's CKM_ECDSA signature on {name} is not a valid ECDSA signature of the hash")
    assert public.verify(digest, signature, mechanism=Mechanism.ECDSA), "the token refuses its own CKM_ECDSA signature"


@pytest.mark.check("sign.ecdsa_sha256", layer="module",
                   spec="PKCS#11 v3.0 §5.13 C_Sign; Current Mechanisms v3.0 §2.3.8 CKM_ECDSA_SHA256")
def test_ecdsa_sha256(vendor):
    """CKM_ECDSA_SHA256 hashes the data with SHA-256 and signs the hash as CKM_ECDSA (Current Mechanisms v3.0
    §2.3.8): a P-256 signature of the message verifies in `cryptography` (ECDSA with SHA-256) and in the token."""
    require_mechanism(vendor, Mechanism.ECDSA_SHA256)
    session = vendor.open_session()
    public, private = ec_pair(vendor, session, "secp256r1", what="sign-ecdsa-sha256")
    signature = private.sign(MESSAGE, mechanism=Mechanism.ECDSA_SHA256)
    theirs = serialization.load_der_public_key(encode_ec_public_key(public))
    assert accepts(lambda: theirs.verify(encode_ecdsa_signature(signature), MESSAGE, ec.ECDSA(hashes.SHA256()))), (
        "the token's CKM_ECDSA_SHA256 signature is not a valid ECDSA SHA-256 signature of the message")
    assert public.verify(MESSAGE, signature, mechanism=Mechanism.ECDSA_SHA256), (
        "the token refuses its own CKM_ECDSA_SHA256 signature")


@pytest.mark.check("sign.ecdsa_foreign", layer="module",
                   spec="PKCS#11 v3.0 §5.15 C_Verify; Current Mechanisms v3.0 §2.3.3 EC public key objects, §2.3.7")
def test_ecdsa_foreign(vendor):
    """An EC public key object is CKA_EC_PARAMS (the curve) and CKA_EC_POINT ("DER-encoding of ANSI X9.62 ECPoint
    value Q", Current Mechanisms v3.0 §2.3.3): a P-256 ECDSA signature made by `cryptography` verifies under
    CKM_ECDSA (over the SHA-256 hash) with the imported key."""
    require_mechanism(vendor, Mechanism.ECDSA)
    foreign = ec.generate_private_key(ec.SECP256R1())
    point = foreign.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    session = vendor.open_session()
    public = imported(vendor, session, {
        Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC, Attribute.VERIFY: True,
        Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1"),
        Attribute.EC_POINT: OctetString(point).dump()}, what="sign-ecdsa-foreign", name="EC P-256 public key")
    digest = hashlib.sha256(MESSAGE).digest()
    signature = decode_ecdsa_signature(foreign.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))))
    assert public.verify(digest, signature, mechanism=Mechanism.ECDSA), (
        "the token refuses a valid P-256 ECDSA signature made by cryptography")


# --- HMAC ---------------------------------------------------------------------------------------------------------

def hmac_key(vendor, session, what):
    """A 256-bit generic secret key for SHA256-HMAC whose CKA_VALUE can be read (to compare with Python's hmac)."""
    require_mechanism(vendor, Mechanism.SHA256_HMAC)
    return secret_key(vendor, session, KeyType.GENERIC_SECRET, 256, what=what, template={
        Attribute.SIGN: True, Attribute.VERIFY: True, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})


@pytest.mark.check("sign.hmac_sha256_one_shot", layer="module",
                   spec="PKCS#11 v3.0 §5.13 C_Sign, §5.15 C_Verify; Current Mechanisms v3.0 CKM_SHA256_HMAC; RFC 2104")
def test_hmac_sha256_one_shot(vendor):
    """CKM_SHA256_HMAC over a generic secret key gives the RFC 2104 HMAC-SHA-256 (32 bytes) of the message under
    the key's value (Python's hmac), and the token verifies it."""
    session = vendor.open_session()
    key = hmac_key(vendor, session, "sign-hmac-one-shot")
    mac = key.sign(MESSAGE, mechanism=Mechanism.SHA256_HMAC)
    assert mac == hmac.new(key[Attribute.VALUE], MESSAGE, hashlib.sha256).digest(), (
        "CKM_SHA256_HMAC differs from RFC 2104 HMAC-SHA-256 under the key's CKA_VALUE")
    assert key.verify(MESSAGE, mac, mechanism=Mechanism.SHA256_HMAC), "the token refuses its own SHA256-HMAC"


@pytest.mark.check("sign.hmac_sha256_multi_part", layer="module",
                   spec="PKCS#11 v3.0 §5.13 C_SignUpdate, C_SignFinal, §5.15 C_VerifyUpdate, C_VerifyFinal; RFC 2104")
def test_hmac_sha256_multi_part(vendor):
    """CKM_SHA256_HMAC is a single- and multiple-part mechanism: C_SignUpdate over chunks then C_SignFinal gives the
    RFC 2104 HMAC-SHA-256 of the whole message (Python's hmac), and C_VerifyUpdate/C_VerifyFinal accept it."""
    session = vendor.open_session()
    key = hmac_key(vendor, session, "sign-hmac-multi")
    expected = hmac.new(key[Attribute.VALUE], MESSAGE, hashlib.sha256).digest()
    mac = key.sign(iter(CHUNKS), mechanism=Mechanism.SHA256_HMAC)
    assert mac == expected, (f"CKM_SHA256_HMAC over chunks of {[len(c) for c in CHUNKS]} bytes differs from RFC 2104 "
                             "HMAC-SHA-256 of the message")
    assert key.verify(iter(CHUNKS), expected, mechanism=Mechanism.SHA256_HMAC), (
        "multi-part C_VerifyUpdate/C_VerifyFinal refuses the right SHA256-HMAC")


TRIES = 5  # a wrong MAC is tried this often: the answer of one module (NSS) depends on its earlier errors


@pytest.mark.check("sign.hmac_wrong_mac", layer="module",
                   spec="PKCS#11 v3.0 §5.15 C_Verify, §5.1.6 CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE")
def test_hmac_wrong_mac(vendor, observe):
    """A changed MAC does not verify: "CKR_SIGNATURE_INVALID ... the signature is invalid", CKR_SIGNATURE_LEN_RANGE
    "solely on the basis of its length" (v3.0 §5.1.6); python-pkcs11's verify answers False for either. Tries a
    SHA256-HMAC with one byte flipped, one a byte short and one all zeros, each TRIES times; characterises the
    CKRs the module gives each (the exceptions python-pkcs11 raises from C_Verify)."""
    session = vendor.open_session()
    key = hmac_key(vendor, session, "sign-hmac-wrong")
    mac = hmac.new(key[Attribute.VALUE], MESSAGE, hashlib.sha256).digest()
    wrong = {"flipped": mac[:-1] + bytes([mac[-1] ^ 0x01]), "truncated": mac[:-1], "zeros": bytes(len(mac))}
    seen = {how: sorted({raw_verify(key, MESSAGE, sig, Mechanism.SHA256_HMAC) for _ in range(TRIES)})
            for how, sig in sorted(wrong.items())}
    observe(seen)
    accepted = [how for how, results in seen.items() if OK in results]
    assert not accepted, f"C_Verify accepts a {' and a '.join(accepted)} SHA256-HMAC"
    other = {how: results for how, results in seen.items()
             if not set(results) <= {"SignatureInvalid", "SignatureLenRange"}}
    assert not other, f"C_Verify of a changed MAC gives {other}, not CKR_SIGNATURE_INVALID or _LEN_RANGE"
    assert key.verify(MESSAGE, mac, mechanism=Mechanism.SHA256_HMAC), "after the refused ones, the right MAC fails"


# --- EdDSA --------------------------------------------------------------------------------------------------------

@pytest.mark.check("sign.eddsa", layer="module",
                   spec="PKCS#11 v3.0 §5.13 C_Sign; Current Mechanisms v3.0 §2.3.14 CKM_EDDSA, §2.3.5; RFC 8032 §5.1")
def test_eddsa(vendor):
    """CKM_EDDSA without parameters is Ed25519 for an edwards25519 key (Current Mechanisms v3.0 §2.3.14): the
    token's signature (64 bytes, RFC 8032 §5.1.6) verifies in `cryptography` with the key's CKA_EC_POINT, and the
    token verifies it too."""
    if not hasattr(KeyType, "EC_EDWARDS"):
        pytest.skip("this python-pkcs11 has no KeyType.EC_EDWARDS")
    require_mechanism(vendor, Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA)
    session = vendor.open_session()
    params = session.create_domain_parameters(KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: ED25519_PARAMS}, local=True)
    try:
        public, private = params.generate_keypair(store=False, mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN)
    except PKCS11Error as exc:
        pytest.skip(f"the token makes no session Ed25519 key pair (CKM_EC_EDWARDS_KEY_PAIR_GEN: {type(exc).__name__})")
    signature = private.sign(MESSAGE, mechanism=Mechanism.EDDSA)
    assert len(signature) == 64, f"CKM_EDDSA gave a {len(signature)}-byte Ed25519 signature"
    point = public[Attribute.EC_POINT]
    # §2.3.5: the DER OCTET STRING of the 32-byte key; some modules store the bare 32 bytes
    raw = point if len(point) == 32 else bytes(OctetString.load(point))
    theirs = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    assert accepts(lambda: theirs.verify(signature, MESSAGE)), "the token's CKM_EDDSA signature is not valid Ed25519"
    assert public.verify(MESSAGE, signature, mechanism=Mechanism.EDDSA), "the token refuses its own CKM_EDDSA signature"
