"""What the token says of the mechanisms applications use: C_GetMechanismInfo's key sizes and flags, as observed
values (PKCS#11 v3.0 §5.5 C_GetMechanismInfo, §3.4 CK_MECHANISM_INFO). An upgrade that changes them (SoftHSM 2.7
changed several min/max key sizes) shows in the gate as a changed value."""

from __future__ import annotations

import ctypes
import sys

import pytest
from pkcs11 import Attribute, Mechanism, MechanismFlag

from ..binding import object_handle, session_handle
from ..engine.cryptoki import rv_name
from ..live.capabilities import require_mechanism
from ..live.keys import rsa_pair

# check id suffix -> mechanism: the ones python-pkcs11 applications use for keys, signatures, ciphers and digests
MECHANISMS = {
    "aes_key_gen": "AES_KEY_GEN", "aes_cbc": "AES_CBC", "aes_cbc_pad": "AES_CBC_PAD", "aes_ctr": "AES_CTR",
    "aes_gcm": "AES_GCM", "aes_ecb": "AES_ECB", "aes_key_wrap": "AES_KEY_WRAP", "aes_key_wrap_pad": "AES_KEY_WRAP_PAD",
    "generic_secret_key_gen": "GENERIC_SECRET_KEY_GEN", "rsa_pkcs_key_pair_gen": "RSA_PKCS_KEY_PAIR_GEN",
    "rsa_pkcs": "RSA_PKCS", "rsa_pkcs_oaep": "RSA_PKCS_OAEP", "rsa_pkcs_pss": "RSA_PKCS_PSS",
    "sha256_rsa_pkcs": "SHA256_RSA_PKCS", "sha256_rsa_pkcs_pss": "SHA256_RSA_PKCS_PSS",
    "ec_key_pair_gen": "EC_KEY_PAIR_GEN", "ecdsa": "ECDSA", "ecdsa_sha256": "ECDSA_SHA256",
    "ecdh1_derive": "ECDH1_DERIVE", "ec_edwards_key_pair_gen": "EC_EDWARDS_KEY_PAIR_GEN", "eddsa": "EDDSA",
    "sha256_hmac": "SHA256_HMAC", "sha_1": "SHA_1", "sha256": "SHA256", "sha512": "SHA512",
}


FILL = 0xFF  # every byte of CK_MECHANISM_INFO before the call, to see which fields the module writes


def flag_names(flags: int) -> list[str]:
    return sorted(flag.name for flag in MechanismFlag if flag.value and flags & flag.value == flag.value)


@pytest.mark.check("mechanism.info_{name}", layer="module", spec="PKCS#11 v3.0 §5.5 C_GetMechanismInfo, §3.4 CK_MECHANISM_INFO")
@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_mechanism_info(vendor, observe, name):
    """A mechanism in C_GetMechanismList has C_GetMechanismInfo (v3.0 §5.5), with ulMinKeySize <= ulMaxKeySize;
    records the sizes and flags (§3.4: their units are mechanism-defined) as the module writes them into a
    zeroed CK_MECHANISM_INFO (ground truth: python-pkcs11 passes its struct uninitialised, so where a module
    leaves a field alone the application reads stack garbage — mechanism.info_sets_every_field)."""
    mechanism = Mechanism[MECHANISMS[name]]
    require_mechanism(vendor, mechanism)
    info = vendor.ground_truth.mechanism_info(vendor.slot_id, mechanism)
    observe({"min_key_length": info.min_key_size, "max_key_length": info.max_key_size,
             "flags": flag_names(info.flags)})
    assert info.min_key_size <= info.max_key_size, (
        f"CKM_{mechanism.name}: ulMinKeySize {info.min_key_size} > ulMaxKeySize {info.max_key_size}")


@pytest.mark.check("mechanism.info_sets_every_field", layer="module", spec="PKCS#11 v3.0 §5.5 C_GetMechanismInfo, §3.4 CK_MECHANISM_INFO")
def test_info_sets_every_field(vendor, observe):
    """C_GetMechanismInfo "obtains information about a particular mechanism" into pInfo (v3.0 §5.5): every field
    of CK_MECHANISM_INFO is the module's answer, whatever the caller's buffer held. Asks for each listed mechanism
    twice, into a zeroed buffer and into one of 0xFF bytes; records the mechanisms whose answers differ."""
    slot = vendor.token.slot
    partial = []
    for mechanism in sorted(slot.get_mechanisms(), key=int):
        zeroed = vendor.ground_truth.mechanism_info(vendor.slot_id, mechanism)
        filled = vendor.ground_truth.mechanism_info(vendor.slot_id, mechanism, fill=FILL)
        if zeroed != filled:
            partial.append(getattr(mechanism, "name", f"{int(mechanism):#x}"))
    observe(partial)
    assert not partial, (f"C_GetMechanismInfo leaves fields of CK_MECHANISM_INFO as the caller's buffer had them for "
                         f"{', '.join('CKM_' + m for m in partial)}: python-pkcs11 (uninitialised struct) then reports "
                         "garbage flags")


@pytest.mark.check("mechanism.allowed_for_rsa_key", layer="module",
                   spec="PKCS#11 v3.0 §4.7.2 CKA_ALLOWED_MECHANISMS (common key attributes)")
def test_allowed_for_rsa_key(vendor, observe):
    """CKA_ALLOWED_MECHANISMS: "a list of mechanisms allowed to be used with this key" (v3.0 §4.7.2). Which a
    module gives a generated RSA-2048 private key is its choice, and an upgrade that narrows it breaks applications
    (tpm2-pkcs11 1.9.2 dropped CKM_SHA1_RSA_PKCS): characterised, as mechanism names (or the CKR of a refused read).
    Read through ctypes: python-pkcs11 decodes no CK_MECHANISM_TYPE_PTR attribute in any release."""
    session = vendor.open_session()
    _, private = rsa_pair(vendor, session, 2048, what="allowed-mechanisms")
    raw = vendor.ground_truth.attribute(session_handle(session), object_handle(private), Attribute.ALLOWED_MECHANISMS)
    if isinstance(raw, int):
        observe(rv_name(raw))
        return
    size = ctypes.sizeof(ctypes.c_ulong)
    assert len(raw) % size == 0, f"CKA_ALLOWED_MECHANISMS is {len(raw)} bytes: no array of CK_MECHANISM_TYPE"
    values = [int.from_bytes(raw[i:i + size], sys.byteorder) for i in range(0, len(raw), size)]
    known = {int(m): m.name for m in Mechanism}
    observe(sorted(known.get(v, f"{v:#x}") for v in values))
