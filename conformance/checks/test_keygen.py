"""Key generation as applications call it: Session.generate_key (C_GenerateKey) and generate_keypair /
DomainParameters.generate_keypair (C_GenerateKeyPair) with python-pkcs11's default templates; PKCS#11 v3.0 §5.18,
the key objects' attributes of §4.7-§4.9 and the mechanisms of §2.1 (RSA), §2.3 (EC, Edwards), §2.14 (AES),
§2.11 (generic secret). Public values are checked with `cryptography`.

Whether a token makes SESSION keys is part of what is checked here, so these checks call the binding directly
(store=False) instead of conformance/live/keys.py, which falls back to token keys."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from asn1crypto.core import ObjectIdentifier, OctetString
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.exceptions import PKCS11Error
from pkcs11.util.ec import encode_named_curve_parameters

from ..binding import binding_version
from ..labels import label
from ..live.capabilities import require_mechanism
from ..live.keys import rsa_pair, secret_key
from ..live.probes import refusal_name as refusal  # a CKR the binding has no class for: by its name

AES_BITS = (128, 192, 256)
RSA_BITS = (2048, 3072, 4096)
CURVES = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1, "secp521r1": ec.SECP521R1}
# Edwards curves: CKA_EC_PARAMS as the curve's OID (RFC 8410; PKCS#11 v3.0 §2.3.10), public key length, cryptography
EDWARDS = {"ed25519": ("1.3.101.112", 32, ed25519.Ed25519PublicKey),
           "ed448": ("1.3.101.113", 57, ed448.Ed448PublicKey)}
F4 = 65537
# DER DigestInfo prefix of a SHA-256 digest (RFC 8017 §9.2 note 1), for CKM_RSA_PKCS over a digest
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

# What a generated key's attributes say of how it was made (v3.0 §4.7.2 Table 27 common key attributes, §4.8/§4.9
# private and secret key attributes), observed as the module sets them under python-pkcs11's default template.
GENERATED = ("SENSITIVE", "EXTRACTABLE", "LOCAL", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE", "KEY_GEN_MECHANISM",
             "MODIFIABLE", "PRIVATE", "TOKEN")
# What python-pkcs11's default templates (0.7.0 to 0.10.x alike) do not set, so the module decides (v3.0 §4.4:
# "default values" of attributes not in the template are the token's), and what they do set, to see it honoured.
LEFT = {"secret": ("EXTRACTABLE", "MODIFIABLE", "COPYABLE", "TRUSTED", "WRAP_WITH_TRUSTED"),
        "private": ("EXTRACTABLE", "MODIFIABLE", "COPYABLE", "SIGN_RECOVER", "WRAP_WITH_TRUSTED",
                    "ALWAYS_AUTHENTICATE"),
        "public": ("PRIVATE", "MODIFIABLE", "COPYABLE", "VERIFY_RECOVER", "TRUSTED")}
ASKED = {"secret": {"ENCRYPT": True, "DECRYPT": True, "SIGN": True, "VERIFY": True, "WRAP": True, "UNWRAP": True,
                    "DERIVE": False, "PRIVATE": True, "SENSITIVE": True},
         "private": {"DECRYPT": True, "UNWRAP": True, "SIGN": True, "DERIVE": False, "PRIVATE": True,
                     "SENSITIVE": True},
         "public": {"ENCRYPT": True, "WRAP": True, "VERIFY": True}}




def read(obj: Any, name: str) -> Any:
    """An attribute as JSON: bool/int/str, an enum's name, bytes as hex; a refused read as the exception's name."""
    try:
        value = obj[Attribute[name]]
    except PKCS11Error as exc:
        return refusal(exc)
    except ValueError:  # an enum attribute holding no member (CK_UNAVAILABLE_INFORMATION, a vendor value)
        return "not a known value"
    if isinstance(value, bool) or value is None:
        return value
    if hasattr(value, "name") and isinstance(value, int):  # an enum (Mechanism, KeyType, ObjectClass)
        return value.name
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return value


def attributes(obj: Any, names: tuple[str, ...] = GENERATED) -> dict[str, Any]:
    return {name: read(obj, name) for name in names}


def asked_wrongly(attrs: dict[str, Any], token: bool = False) -> list[str]:
    """The template's asks the key does not show (v3.0 §5.18: the new key's attributes are the template's plus the
    mechanism's and the token's defaults): CKA_TOKEN `token`, CKA_PRIVATE and CKA_SENSITIVE true (python-pkcs11's
    default template). A read the module refused is left out here (the observed value shows it)."""
    expected = {"TOKEN": token, "PRIVATE": True, "SENSITIVE": True}
    return [f"CKA_{k} {attrs[k]!r} (asked {v!r})" for k, v in expected.items()
            if isinstance(attrs.get(k), bool) and attrs[k] != v]


def generate(observe: Any, make: Any, what: str) -> Any:
    """make(), or: observe the refusal and fail (the token lists the mechanism, so it must make the key)."""
    try:
        return make()
    except PKCS11Error as exc:
        refused = refusal(exc)
    observe({"generate": refused})
    pytest.fail(f"the token lists the mechanism but refuses to generate {what}: {refused}")


def point_of(ec_point: bytes) -> bytes:
    """The point inside CKA_EC_POINT: "DER-encoding of ANSI X9.62 ECPoint value Q" (v3.0 §2.3.3 Table 21), an
    OCTET STRING; strict, so a raw point (04 || X || Y) that merely starts like one is not taken for it."""
    return OctetString.load(ec_point, strict=True).native


@pytest.mark.check("keygen.aes_{bits}", layer="module", spec="PKCS#11 v3.0 §5.18 C_GenerateKey, §2.14 CKM_AES_KEY_GEN, §4.7.2, §4.9")
@pytest.mark.parametrize("bits", AES_BITS)
def test_aes(vendor, observe, bits):
    """CKM_AES_KEY_GEN: "the CKA_VALUE_LEN attribute of the template specifies the length of the key" (v3.0
    §2.14.3): a session AES key (CKA_TOKEN false, as asked) of the length asked, sensitive and private as the
    template asks. Records the attributes the module set under python-pkcs11's default template (what they must say
    of a generated key: keygen.local_*, keygen.key_gen_mechanism_*, keygen.sensitivity_history_*)."""
    require_mechanism(vendor, Mechanism.AES_KEY_GEN)
    session = vendor.open_session()
    key = generate(observe, lambda: session.generate_key(KeyType.AES, bits, store=False), f"a session AES-{bits} key")
    attrs = {"VALUE_LEN": read(key, "VALUE_LEN"), **attributes(key)}
    observe(attrs)
    assert not isinstance(attrs["VALUE_LEN"], int) or attrs["VALUE_LEN"] == bits // 8, (
        f"asked for a {bits}-bit key, CKA_VALUE_LEN is {attrs['VALUE_LEN']} bytes")
    wrong = asked_wrongly(attrs)
    assert not wrong, f"the generated AES-{bits} key has {', '.join(wrong)}"


@pytest.mark.check("keygen.generic_secret_256", layer="module", spec="PKCS#11 v3.0 §5.18 C_GenerateKey, §2.11 CKM_GENERIC_SECRET_KEY_GEN, §4.7.2, §4.9")
def test_generic_secret(vendor, observe):
    """CKM_GENERIC_SECRET_KEY_GEN: "It is mandatory that CKA_VALUE_LEN be specified in the template", the length
    of the key (v3.0 §2.11.2): a 256-bit session generic secret, sensitive and private as the template asks.
    Records the attributes the module set under python-pkcs11's default template."""
    require_mechanism(vendor, Mechanism.GENERIC_SECRET_KEY_GEN)
    session = vendor.open_session()
    # The mechanism and CKA_VALUE_LEN named, as later bindings put them in the template: python-pkcs11 0.7 has no
    # default generation mechanism for generic secrets and sets CKA_VALUE_LEN for AES keys only.
    key = generate(observe, lambda: session.generate_key(KeyType.GENERIC_SECRET, 256, store=False,
                                                         mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                                                         template={Attribute.VALUE_LEN: 32}),
                   "a session 256-bit generic secret")
    attrs = {"VALUE_LEN": read(key, "VALUE_LEN"), **attributes(key)}
    observe(attrs)
    assert not isinstance(attrs["VALUE_LEN"], int) or attrs["VALUE_LEN"] == 32, (
        f"asked for 32 bytes, CKA_VALUE_LEN is {attrs['VALUE_LEN']}")
    wrong = asked_wrongly(attrs)
    assert not wrong, f"the generated generic secret has {', '.join(wrong)}"


def rsa_checks(public: Any, bits: int) -> list[str]:
    """What the key pair says against what was asked: a modulus of exactly that many bits, CKA_MODULUS_BITS that
    number where the module lets it be read (what it answers is observed: public_MODULUS_BITS), and the public
    exponent python-pkcs11 asks for (F4)."""
    wrong = []
    modulus_bits = read(public, "MODULUS_BITS")
    modulus = int.from_bytes(public[Attribute.MODULUS], "big")
    exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
    if isinstance(modulus_bits, int) and modulus_bits != bits:
        wrong.append(f"CKA_MODULUS_BITS {modulus_bits}")
    if modulus.bit_length() != bits:
        wrong.append(f"a {modulus.bit_length()}-bit CKA_MODULUS")
    if exponent != F4:
        wrong.append(f"CKA_PUBLIC_EXPONENT {exponent}")
    return wrong


@pytest.mark.check("keygen.rsa_{bits}", layer="module", spec="PKCS#11 v3.0 §5.18 C_GenerateKeyPair, §2.1.4 CKM_RSA_PKCS_KEY_PAIR_GEN, §4.7.2, §4.8")
@pytest.mark.parametrize("bits", RSA_BITS)
def test_rsa(vendor, observe, bits):
    """CKM_RSA_PKCS_KEY_PAIR_GEN "generates RSA public/private key pairs ... with the specified CKA_MODULUS_BITS
    and CKA_PUBLIC_EXPONENT" (v3.0 §2.1.4): a session key pair (CKA_TOKEN false, as asked) with a modulus of that
    many bits and exponent 65537, the private key sensitive and private as asked. Records the private key's
    attributes and what the public key answers for CKA_MODULUS_BITS."""
    require_mechanism(vendor, Mechanism.RSA_PKCS_KEY_PAIR_GEN)
    session = vendor.open_session()
    public, private = generate(observe, lambda: session.generate_keypair(KeyType.RSA, bits, store=False),
                               f"a session RSA-{bits} key pair")
    attrs = attributes(private)
    observe({**attrs, "public_MODULUS_BITS": read(public, "MODULUS_BITS")})
    wrong = rsa_checks(public, bits) + asked_wrongly(attrs)
    assert not wrong, f"the generated RSA-{bits} key pair has {', '.join(wrong)}"


@pytest.mark.check("keygen.rsa_2048_token", layer="module", spec="PKCS#11 v3.0 §5.18 C_GenerateKeyPair, §2.1.4, §4.4 CKA_TOKEN")
def test_rsa_token(vendor, observe):
    """C_GenerateKeyPair with CKA_TOKEN true in both templates makes token objects (v3.0 §4.4: "CK_TRUE if object
    is a token object"): an RSA-2048 pair, made on a disposable token only and destroyed again. Records the private
    key's attributes."""
    require_mechanism(vendor, Mechanism.RSA_PKCS_KEY_PAIR_GEN)
    if not vendor.disposable:
        pytest.skip("the token's profile is not disposable, so no token key pair is made on it")
    tag = label("keygen-rsa-token")
    vendor.token_objects.add(tag)  # swept at the check's end if it dies before destroying them
    session = vendor.open_session()
    public, private = generate(observe, lambda: session.generate_keypair(KeyType.RSA, 2048, store=True, label=tag),
                               "a token RSA-2048 key pair")
    try:
        attrs = attributes(private)
        wrong = rsa_checks(public, 2048)
        public_token = read(public, "TOKEN")
        if public_token is not True:
            wrong.append(f"a public key with CKA_TOKEN {public_token!r}")
    finally:
        for obj in (private, public):
            obj.destroy()
    observe(attrs)
    wrong += asked_wrongly(attrs, token=True)
    assert not wrong, f"the generated token RSA-2048 key pair has {', '.join(wrong)}"


@pytest.mark.check("keygen.ec_{curve}", layer="module", spec="PKCS#11 v3.0 §5.18 C_GenerateKeyPair, §2.3.5 CKM_EC_KEY_PAIR_GEN, §2.3.3, §4.8")
@pytest.mark.parametrize("curve", sorted(CURVES))
def test_ec(vendor, observe, curve):
    """CKM_EC_KEY_PAIR_GEN "generates a public/private key pair over a particular elliptic curve" whose
    CKA_EC_PARAMS is in the public key template (v3.0 §2.3.5): a session key pair on the named curve whose
    CKA_EC_POINT ("DER-encoding of ANSI X9.62 ECPoint value Q", §2.3.3) is a point on that curve (cryptography);
    the private key sensitive and private as asked. Records the private key's attributes."""
    require_mechanism(vendor, Mechanism.EC_KEY_PAIR_GEN)
    session = vendor.open_session()
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True)
    public, private = generate(observe, lambda: params.generate_keypair(store=False),
                               f"a session EC {curve} key pair")
    attrs = attributes(private)
    observe(attrs)
    raw = public[Attribute.EC_POINT]
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(CURVES[curve](), point_of(raw))
    except ValueError as exc:
        pytest.fail(f"CKA_EC_POINT {raw[:8].hex()}... is not a DER OCTET STRING holding a point on {curve}: {exc}")
    wrong = asked_wrongly(attrs)
    assert not wrong, f"the generated EC {curve} key pair has {', '.join(wrong)}"


@pytest.mark.check("keygen.ec_secp256r1_token", layer="module", spec="PKCS#11 v3.0 §5.18 C_GenerateKeyPair, §2.3.5, §4.4 CKA_TOKEN")
def test_ec_token(vendor, observe):
    """C_GenerateKeyPair with CKA_TOKEN true makes token objects (v3.0 §4.4): an EC secp256r1 pair, made on a
    disposable token only and destroyed again, its CKA_EC_POINT a point on the curve. Records the private key's
    attributes."""
    require_mechanism(vendor, Mechanism.EC_KEY_PAIR_GEN)
    if not vendor.disposable:
        pytest.skip("the token's profile is not disposable, so no token key pair is made on it")
    tag = label("keygen-ec-token")
    vendor.token_objects.add(tag)  # swept at the check's end if it dies before destroying them
    session = vendor.open_session()
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
    public, private = generate(observe, lambda: params.generate_keypair(store=True, label=tag),
                               "a token EC secp256r1 key pair")
    try:
        attrs = attributes(private)
        raw = public[Attribute.EC_POINT]
        public_token = read(public, "TOKEN")
    finally:
        for obj in (private, public):
            obj.destroy()
    observe(attrs)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point_of(raw))
    except ValueError as exc:
        pytest.fail(f"CKA_EC_POINT {raw[:8].hex()}... is not a DER OCTET STRING holding a point on secp256r1: {exc}")
    wrong = asked_wrongly(attrs, token=True)
    if public_token is not True:
        wrong.append(f"a public key with CKA_TOKEN {public_token!r}")
    assert not wrong, f"the generated token EC secp256r1 key pair has {', '.join(wrong)}"


@pytest.mark.check("keygen.{curve}", layer="module", spec="PKCS#11 v3.0 §5.18 C_GenerateKeyPair, §2.3.10 CKM_EC_EDWARDS_KEY_PAIR_GEN, §2.3.6, §4.8")
@pytest.mark.parametrize("curve", sorted(EDWARDS))
def test_edwards(vendor, observe, curve):
    """CKM_EC_EDWARDS_KEY_PAIR_GEN "generates a public/private key pair over a particular Edwards curve" named by
    CKA_EC_PARAMS (v3.0 §2.3.10; here the curve's OID, RFC 8410): a session key pair whose CKA_EC_POINT ("DER-
    encoding of the b-bit public key value in little endian order as defined in RFC 8032", §2.3.6) is a public key
    of that curve (cryptography); the private key sensitive and private as asked. Records its attributes."""
    key_type = getattr(KeyType, "EC_EDWARDS", None)
    mechanism = getattr(Mechanism, "EC_EDWARDS_KEY_PAIR_GEN", None)
    if key_type is None or mechanism is None:
        pytest.skip(f"python-pkcs11 {binding_version()} has no KeyType.EC_EDWARDS / Mechanism.EC_EDWARDS_KEY_PAIR_GEN")
    require_mechanism(vendor, mechanism)
    oid, length, public_type = EDWARDS[curve]
    session = vendor.open_session()
    params = session.create_domain_parameters(key_type, {Attribute.EC_PARAMS: ObjectIdentifier(oid).dump()},
                                              local=True)
    public, private = generate(observe, lambda: params.generate_keypair(store=False), f"a session {curve} key pair")
    attrs = attributes(private)
    observe(attrs)
    raw = public[Attribute.EC_POINT]
    try:
        public_type.from_public_bytes(point_of(raw))
    except ValueError as exc:
        pytest.fail(f"CKA_EC_POINT ({len(raw)} bytes, {raw[:4].hex()}...) is not a DER OCTET STRING holding a "
                    f"{length}-byte {curve} public key: {exc}")
    wrong = asked_wrongly(attrs)
    assert not wrong, f"the generated {curve} key pair has {', '.join(wrong)}"


@pytest.mark.check("keygen.two_types_one_session", layer="module", spec="PKCS#11 v3.0 §5.18, §5.8 C_Encrypt, §5.13 C_Sign; UG v2.40 §2.6")
def test_two_types_one_session(vendor):
    """Objects a session makes are all usable through it (UG v2.40 §2.6: a session's objects): an AES key and an
    RSA key pair generated on one session both work — AES-CBC-PAD encryption round-trips, and a SHA-256
    PKCS #1 v1.5 signature made by the token (CKM_SHA256_RSA_PKCS, else CKM_RSA_PKCS over the DigestInfo)
    verifies with cryptography."""
    require_mechanism(vendor, Mechanism.AES_CBC_PAD)
    listed = set(vendor.token.slot.get_mechanisms())
    if Mechanism.SHA256_RSA_PKCS not in listed:  # the same signature, the DigestInfo made here (v3.0 §2.1.6)
        require_mechanism(vendor, Mechanism.RSA_PKCS)
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="keygen-two-aes")
    public, private = rsa_pair(vendor, session, 2048, what="keygen-two-rsa")
    data, iv = b"conformance two keys", bytes(range(16))
    assert key.decrypt(key.encrypt(data, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv),
                       mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv) == data, (
        "AES-CBC-PAD decryption of the AES key's own ciphertext gave other data")
    if Mechanism.SHA256_RSA_PKCS in listed:
        signature = private.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
    else:
        signature = private.sign(SHA256_DIGEST_INFO + hashlib.sha256(data).digest(), mechanism=Mechanism.RSA_PKCS)
    numbers = rsa.RSAPublicNumbers(int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                                   int.from_bytes(public[Attribute.MODULUS], "big"))
    numbers.public_key().verify(signature, data, padding.PKCS1v15(), hashes.SHA256())  # raises InvalidSignature


GENERATION = {"aes": Mechanism.AES_KEY_GEN, "rsa": Mechanism.RSA_PKCS_KEY_PAIR_GEN}


def generated(vendor: Any, kind: str, what: str) -> dict[str, Any]:
    """The keys of one generation with python-pkcs11's default template, by role: an AES-128 key ("secret"), or
    an RSA-2048 pair ("public", "private"); session keys, else token keys on a disposable token
    (conformance/live/keys.py: what these checks are about does not depend on CKA_TOKEN)."""
    session = vendor.open_session()
    if kind == "aes":
        return {"secret": secret_key(vendor, session, KeyType.AES, 128, what=what)}
    public, private = rsa_pair(vendor, session, 2048, what=what)
    return {"public": public, "private": private}


@pytest.mark.check("keygen.local_{kind}", layer="module", spec="PKCS#11 v3.0 §4.7.2 Table 27 CKA_LOCAL")
@pytest.mark.parametrize("kind", sorted(GENERATION))
def test_local(vendor, observe, kind):
    """CKA_LOCAL: "CK_TRUE only if key was either generated locally (i.e., on the token) with a C_GenerateKey or
    C_GenerateKeyPair call, or created with a C_CopyObject call as a copy of a key which had its CKA_LOCAL
    attribute set to CK_TRUE" (v3.0 §4.7.2 Table 27): every key C_GenerateKey / C_GenerateKeyPair makes (an
    AES-128 key; an RSA-2048 pair, both halves) has CKA_LOCAL true."""
    require_mechanism(vendor, GENERATION[kind])
    seen = {role: read(obj, "LOCAL") for role, obj in generated(vendor, kind, f"local-{kind}").items()}
    observe(seen)
    wrong = {role: value for role, value in seen.items() if value is not True}
    assert not wrong, f"CKA_LOCAL of the generated {kind} keys (expected True): {wrong}"


@pytest.mark.check("keygen.key_gen_mechanism_{kind}", layer="module", spec="PKCS#11 v3.0 §4.7.2 Table 27 CKA_KEY_GEN_MECHANISM")
@pytest.mark.parametrize("kind", sorted(GENERATION))
def test_key_gen_mechanism(vendor, observe, kind):
    """CKA_KEY_GEN_MECHANISM: "Identifier of the mechanism used to generate the key material" (v3.0 §4.7.2 Table
    27, a common key attribute, so one every key has; CK_UNAVAILABLE_INFORMATION is for keys not generated
    locally): an AES-128 key names CKM_AES_KEY_GEN, both halves of an RSA-2048 pair CKM_RSA_PKCS_KEY_PAIR_GEN."""
    mechanism = GENERATION[kind]
    require_mechanism(vendor, mechanism)
    seen = {role: read(obj, "KEY_GEN_MECHANISM") for role, obj in generated(vendor, kind, f"kgm-{kind}").items()}
    observe(seen)
    wrong = {role: value for role, value in seen.items() if value != mechanism.name}
    assert not wrong, f"CKA_KEY_GEN_MECHANISM of the generated {kind} keys (expected {mechanism.name}): {wrong}"


@pytest.mark.check("keygen.sensitivity_history_{kind}", layer="module", spec="PKCS#11 v3.0 §4.8 Table 34, §4.9 Table 36 CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE")
@pytest.mark.parametrize("kind", sorted(GENERATION))
def test_sensitivity_history(vendor, observe, kind):
    """CKA_ALWAYS_SENSITIVE: "CK_TRUE if key has always had the CKA_SENSITIVE attribute set to CK_TRUE";
    CKA_NEVER_EXTRACTABLE: "CK_TRUE if key has never had the CKA_EXTRACTABLE attribute set to CK_TRUE" (v3.0 §4.9
    Table 36, §4.8 Table 34): a key generated sensitive (python-pkcs11's template) is always-sensitive, and
    never-extractable exactly when it is not extractable now (nothing changed it since)."""
    require_mechanism(vendor, GENERATION[kind])
    keys = generated(vendor, kind, f"history-{kind}")
    key = keys.get("secret", keys.get("private"))
    seen = attributes(key, ("SENSITIVE", "EXTRACTABLE", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE"))
    observe(seen)
    expected = {"ALWAYS_SENSITIVE": True}
    if isinstance(seen["EXTRACTABLE"], bool):
        expected["NEVER_EXTRACTABLE"] = not seen["EXTRACTABLE"]
    wrong = [f"CKA_{k} {seen[k]!r} (expected {v!r})" for k, v in expected.items() if seen[k] != v]
    assert not wrong, f"the generated {kind} key (CKA_EXTRACTABLE {seen['EXTRACTABLE']!r}) has {', '.join(wrong)}"


@pytest.mark.check("keygen.mechanism_defaults", layer="module", spec="PKCS#11 v3.0 §4.4, §4.7.2, §4.8, §4.9 (attribute defaults)")
def test_mechanism_defaults(vendor, observe):
    """Attributes a template leaves out take the token's defaults (v3.0 §4.1: "if the template does not specify
    ... the token supplies a default"): records what the module gives an AES-128 key and an RSA-2048 pair for the
    attributes python-pkcs11's default templates leave out (CKA_EXTRACTABLE, CKA_MODIFIABLE, CKA_COPYABLE, ...),
    and checks that those the templates set (CKA_SIGN, CKA_DECRYPT, CKA_WRAP, ...) are as asked."""
    require_mechanism(vendor, Mechanism.AES_KEY_GEN, Mechanism.RSA_PKCS_KEY_PAIR_GEN)
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="keygen-defaults-aes")
    public, private = rsa_pair(vendor, session, 2048, what="keygen-defaults-rsa")
    objects = {"secret": key, "private": private, "public": public}
    seen = {kind: attributes(obj, LEFT[kind] + tuple(ASKED[kind])) for kind, obj in objects.items()}
    observe(seen)
    wrong = [f"{kind} CKA_{name} {seen[kind][name]!r} (asked {value!r})" for kind, asked in ASKED.items()
             for name, value in asked.items() if seen[kind][name] != value]
    assert not wrong, f"the module did not honour the template: {', '.join(wrong)}"

