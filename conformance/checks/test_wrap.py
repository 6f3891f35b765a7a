"""Key wrapping as applications call it: Key.wrap_key (C_WrapKey) and Key.unwrap_key (C_UnwrapKey) with AES key wrap
(RFC 3394, RFC 5649) and RSA-OAEP; PKCS#11 v3.0 §5.18 (key management functions) and the Current Mechanisms
specification's AES Key Wrap and PKCS #1 RSA OAEP sections. Wrapped keys are cross-checked with `cryptography`
(cryptography.hazmat.primitives.keywrap), and an unwrapped key must decrypt what the original encrypted."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import keywrap
from pkcs11 import DEFAULT, MGF, Attribute, KeyType, Mechanism, ObjectClass

from ..labels import label
from ..live.capabilities import require_mechanism
from ..live.keys import readable_secret_key, rsa_pair, secret_key
from ..live.probes import OK, message, outcome_of

IV = bytes(range(16))
EXTRACTABLE = {Attribute.EXTRACTABLE: True}
# check id suffix -> (mechanism name, cryptography's wrap function); KWP's enum is not in python-pkcs11 0.7.0
AES_WRAPS = {"aes_key_wrap": ("AES_KEY_WRAP", keywrap.aes_key_wrap),
             "aes_key_wrap_kwp": ("AES_KEY_WRAP_KWP", keywrap.aes_key_wrap_with_padding)}
# What CKM_AES_KEY_WRAP_PAD may be (v2.40/v3.0 leave it open): RFC 5649, or PKCS #7 padding to 8 bytes then RFC 3394
PAD_CONSTRUCTIONS = {"rfc5649": keywrap.aes_key_wrap_with_padding,
                     "pkcs7+rfc3394": lambda kek, key: keywrap.aes_key_wrap(kek, key + bytes([8 - len(key) % 8])
                                                                          * (8 - len(key) % 8))}
# wrapping mechanisms for the checks that are about the key or the template, not the mechanism: first listed
ANY_WRAP = (Mechanism.AES_KEY_WRAP, Mechanism.AES_CBC_PAD)
OAEP_SHA1 = (Mechanism.SHA_1, MGF.SHA1, None)  # python-pkcs11's default CK_RSA_PKCS_OAEP_PARAMS
ID = b"conformance-unwrapped"  # given, so every binding sends the same unwrap template (0.7/0.8 send CKA_ID b"" else)







def readable(vendor, session, bits: int, what: str):
    """(key, its value): an AES key made non-sensitive and extractable, so `cryptography` can use the same key."""
    return readable_secret_key(vendor, session, KeyType.AES, bits, what=what)


def same_key(original, unwrapped) -> bool:
    """Whether the unwrapped key decrypts what the original encrypted (AES-CBC-PAD)."""
    data = message(40)
    sealed = original.encrypt(data, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV)
    return unwrapped.decrypt(sealed, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV) == data


@pytest.mark.check("wrap.{name}", layer="module",
                   spec="PKCS#11 v3.0 §5.18 C_WrapKey, C_UnwrapKey; Current Mechanisms: AES Key Wrap "
                        "(CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_KWP); RFC 3394, RFC 5649")
@pytest.mark.parametrize("name", sorted(AES_WRAPS))
def test_aes_key_wrap(vendor, name):
    """C_WrapKey "wraps (i.e., encrypts) a private or secret key": CKM_AES_KEY_WRAP is RFC 3394,
    CKM_AES_KEY_WRAP_KWP (v3.0) RFC 5649 (CKM_AES_KEY_WRAP_PAD is wrap.aes_key_wrap_pad). Wrapping an
    extractable AES-128 key with an AES-256 key gives cryptography's wrapping of the key's value; C_UnwrapKey of it
    makes a key that decrypts what the original encrypted."""
    mech_name, wrap = AES_WRAPS[name]
    mechanism = getattr(Mechanism, mech_name, None)
    if mechanism is None:
        pytest.skip(f"this python-pkcs11 has no Mechanism.{mech_name} (added in 0.8.0), so it cannot ask for it")
    require_mechanism(vendor, mechanism, Mechanism.AES_CBC_PAD)
    session = vendor.open_session()
    wrapping, wrapping_value = readable(vendor, session, 256, f"{name}-wrapping")
    key, value = readable(vendor, session, 128, f"{name}-wrapped")
    wrapped = wrapping.wrap_key(key, mechanism=mechanism)
    expected = wrap(wrapping_value, value)
    assert wrapped == expected, (f"CKM_{mech_name} wrapped a 16-byte key into {len(wrapped)} bytes unlike "
                                 f"cryptography's {len(expected)}-byte {wrap.__name__}")
    unwrapped = wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=mechanism,
                                    label=label(f"{name}-unwrapped"), id=ID)
    assert same_key(key, unwrapped), f"the key unwrapped with CKM_{mech_name} does not decrypt what the original encrypted"


@pytest.mark.check("wrap.aes_key_wrap_pad", layer="module",
                   spec="PKCS#11 v3.0 §5.18 C_WrapKey, C_UnwrapKey; Current Mechanisms: AES Key Wrap "
                        "(CKM_AES_KEY_WRAP_PAD); RFC 3394, RFC 5649")
def test_aes_key_wrap_pad(vendor, observe):
    """CKM_AES_KEY_WRAP_PAD "does the usual padding of inputs ... before being passed to the AES key wrap
    algorithm": the specification names no padding, and modules differ (RFC 5649, which v3.0 names
    CKM_AES_KEY_WRAP_KWP; or PKCS #7 padding to 8 bytes, then RFC 3394, which v3.0 names CKM_AES_KEY_WRAP_PKCS7).
    Wrapping an extractable AES-128 key with an AES-256 key must give one of the two, computed with cryptography
    from the keys' values; characterises which. C_UnwrapKey of it makes a key that decrypts what the original
    encrypted."""
    require_mechanism(vendor, Mechanism.AES_KEY_WRAP_PAD, Mechanism.AES_CBC_PAD)
    session = vendor.open_session()
    wrapping, wrapping_value = readable(vendor, session, 256, "wrap-pad-wrapping")
    key, value = readable(vendor, session, 128, "wrap-pad-wrapped")
    wrapped = wrapping.wrap_key(key, mechanism=Mechanism.AES_KEY_WRAP_PAD)
    construction = next((name for name, wrap in PAD_CONSTRUCTIONS.items() if wrap(wrapping_value, value) == wrapped),
                        None)
    observe(construction)
    assert construction is not None, (f"CKM_AES_KEY_WRAP_PAD wrapped a 16-byte key into {len(wrapped)} bytes: neither "
                                      "RFC 5649 nor PKCS #7 padding then RFC 3394")
    unwrapped = wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=Mechanism.AES_KEY_WRAP_PAD,
                                    label=label("wrap-pad-unwrapped"), id=ID)
    assert same_key(key, unwrapped), "the key unwrapped with CKM_AES_KEY_WRAP_PAD does not decrypt what the original encrypted"


def any_wrap(vendor) -> Mechanism:
    """The first of ANY_WRAP the token lists (a skip naming them where it lists none)."""
    listed = set(vendor.token.slot.get_mechanisms())
    for mechanism in ANY_WRAP:
        if mechanism in listed:
            return mechanism
    pytest.skip(f"the token lists none of {', '.join('CKM_' + m.name for m in ANY_WRAP)} to wrap with")


def wrap_param(mechanism: Mechanism) -> bytes | None:
    return IV if mechanism == Mechanism.AES_CBC_PAD else None


@pytest.mark.check("wrap.rsa_oaep", layer="module",
                   spec="PKCS#11 v3.0 §5.18 C_WrapKey, C_UnwrapKey; Current Mechanisms: PKCS #1 RSA OAEP "
                        "(CKM_RSA_PKCS_OAEP)")
def test_rsa_oaep(vendor):
    """CKM_RSA_PKCS_OAEP wraps and unwraps secret keys: an extractable AES-128 key wrapped with an RSA-2048
    public key (OAEP, SHA-1 and MGF1-SHA-1: python-pkcs11's defaults) unwraps with the private key to a key that
    decrypts what the original encrypted."""
    require_mechanism(vendor, Mechanism.RSA_PKCS_OAEP, Mechanism.AES_CBC_PAD)
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="oaep-wrapped", template=EXTRACTABLE)
    public, private = rsa_pair(vendor, session, 2048, what="oaep-wrapping")
    wrapped = public.wrap_key(key, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=OAEP_SHA1)
    assert len(wrapped) == 256, f"an RSA-2048 OAEP wrapping of {len(wrapped)} bytes"
    unwrapped = private.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=Mechanism.RSA_PKCS_OAEP,
                                   mechanism_param=OAEP_SHA1, label=label("oaep-unwrapped"), id=ID)
    assert same_key(key, unwrapped), "the key unwrapped with CKM_RSA_PKCS_OAEP does not decrypt what the original encrypted"


@pytest.mark.check("wrap.non_extractable_refused", layer="module",
                   spec="PKCS#11 v3.0 §5.18 C_WrapKey, CKR_KEY_UNEXTRACTABLE; §4.9 CKA_EXTRACTABLE")
def test_non_extractable_refused(vendor, observe):
    """A key with CKA_EXTRACTABLE false "cannot be wrapped" (v3.0 §4.9): C_WrapKey of it (with CKM_AES_KEY_WRAP,
    else CKM_AES_CBC_PAD) must fail, with CKR_KEY_UNEXTRACTABLE ("the specified private or secret key can't be
    wrapped because its CKA_EXTRACTABLE attribute is set to CK_FALSE", §5.1) expected; characterises the answer."""
    mechanism = any_wrap(vendor)
    session = vendor.open_session()
    wrapping = secret_key(vendor, session, KeyType.AES, 256, what="unextractable-wrapping")
    key = secret_key(vendor, session, KeyType.AES, 128, what="unextractable",
                     template={Attribute.EXTRACTABLE: False})
    result = outcome_of(lambda: wrapping.wrap_key(key, mechanism=mechanism, mechanism_param=wrap_param(mechanism)))
    observe(result)
    assert result != OK, (f"C_WrapKey ({mechanism.name}) wrapped a key whose CKA_EXTRACTABLE reads "
                          f"{key[Attribute.EXTRACTABLE]!r}")


# the attributes of python-pkcs11's unwrap template (0.7.0 to 0.10.x, with an id and a label given)
UNWRAP_TEMPLATE = ("CLASS", "KEY_TYPE", "ID", "LABEL", "TOKEN", "ENCRYPT", "DECRYPT", "WRAP", "UNWRAP", "SIGN",
                   "VERIFY", "DERIVE")


@pytest.mark.check("wrap.unwrap_template", layer="module",
                   spec="PKCS#11 v3.0 §5.18 C_UnwrapKey, CKR_TEMPLATE_INCONSISTENT, CKR_ATTRIBUTE_TYPE_INVALID; "
                        "§4.7 secret key objects")
def test_unwrap_template(vendor, observe):
    """C_UnwrapKey creates the key from "the template" the application gives (v3.0 §5.18). python-pkcs11's
    default template names the class, key type, id, label, CKA_TOKEN false and every capability (CKA_ENCRYPT,
    CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP, CKA_SIGN, CKA_VERIFY true, CKA_DERIVE false for AES). Characterises
    whether the module takes it (unwrapping with CKM_AES_KEY_WRAP, else CKM_AES_CBC_PAD: "ok") or, where it refuses it, its answer and the attributes whose removal
    alone makes it accept."""
    mechanism = any_wrap(vendor)
    session = vendor.open_session()
    wrapping = secret_key(vendor, session, KeyType.AES, 256, what="template-wrapping")
    key = secret_key(vendor, session, KeyType.AES, 128, what="template-wrapped", template=EXTRACTABLE)
    wrapped = wrapping.wrap_key(key, mechanism=mechanism, mechanism_param=wrap_param(mechanism))

    def unwrap(without: str | None = None) -> None:
        template = {getattr(Attribute, without): DEFAULT} if without else None
        wrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=mechanism,
                            mechanism_param=wrap_param(mechanism), label=label("template-unwrapped"), id=ID,
                            template=template)

    result = outcome_of(unwrap)
    if result == OK:
        observe(OK)
        return
    rejected = [name for name in UNWRAP_TEMPLATE[2:] if outcome_of(lambda name=name: unwrap(name)) == OK]
    observe({"outcome": result, "accepted_without": rejected})
