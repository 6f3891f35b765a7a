"""What the benchmark times, as data: each mechanism names the PKCS#11 mechanisms the token must list, makes what
its calls need once per module process (keys, a data object), finds them again from any session of that process
(session objects are visible to every session of the application that made them: v3.0 §4.4), and is one call.

Imported by the worker program only (it loads python-pkcs11 and the module); the names are the rows' mechanisms."""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import struct
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error
from pkcs11.util.ec import encode_named_curve_parameters

from ..labels import label

MESSAGE = bytes(range(256)) * 16  # 4 KiB: what AES-GCM encrypts and SHA-256 digests
SIGNED = MESSAGE[:64]  # what the RSA signatures hash (CKM_SHA256_RSA_PKCS)
HASHED = hashlib.sha256(MESSAGE).digest()  # what ECDSA signs (CKM_ECDSA signs a digest)
# PKCS #1 v1.5 DigestInfo of SHA-256(SIGNED) (RFC 8017 §9.2 note 1): what CKM_RSA_PKCS signs where the token has
# no CKM_SHA256_RSA_PKCS — the signature is the same bytes, the hash done by the application.
DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(SIGNED).digest()


class Unsupported(Exception):
    """The token cannot run this mechanism's calls (the row is a skip with this reason)."""


class WrongAnswer(Exception):
    """A call returned, but not what it must (a search that does not find its object): the row fails."""


@dataclass(frozen=True)
class Variant:
    """One way to make the workload's call: the first whose mechanisms the token lists is the one timed."""

    needs: tuple[Mechanism, ...]
    call: Callable[[Any, Any], Any]  # (session, found): one timed call
    note: str = ""  # said in the row when this variant (not the first) is the one timed


@dataclass(frozen=True)
class Workload:
    name: str
    title: str  # for the report
    needs: tuple[Mechanism, ...]  # making what the calls use needs these listed
    make: Callable[[Any, str, bool], None]  # (session, tag, store): make what the calls use, labelled tag
    find: Callable[[Any, str], Any]  # (session, tag) -> what `call` takes, found through that session
    variants: tuple[Variant, ...]


def _rsa(bits: int) -> tuple[Callable[[Any, str, bool], None], Callable[[Any, str], Any]]:
    def make(session: Any, tag: str, store: bool) -> None:
        session.generate_keypair(KeyType.RSA, bits, store=store, label=tag)

    return make, _private_key(KeyType.RSA)


def _private_key(key_type: KeyType) -> Callable[[Any, str], Any]:
    return lambda session, tag: session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=key_type, label=tag)


def _ec_make(session: Any, tag: str, store: bool) -> None:
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
    params.generate_keypair(store=store, label=tag)


def _aes_make(session: Any, tag: str, store: bool) -> None:
    session.generate_key(KeyType.AES, 256, store=store, label=tag, mechanism=Mechanism.AES_KEY_GEN,
                         template={Attribute.VALUE_LEN: 32})


_NONCES = itertools.count(1)  # a fresh GCM nonce per call (reusing one under a key is the one thing GCM forbids)
# CK_GCM_PARAMS {pIv, ulIvLen, ulIvBits, pAAD, ulAADLen, ulTagBits} in the platform's C layout, passed as bytes:
# python-pkcs11's raw-parameter path, the same call under every binding (GCMParams exists only since 0.9), so a
# bench-gate between binding versions compares the binding, not two ways of spelling the parameter.
_GCM_PARAMS = struct.Struct("@PLLPLL")


def _gcm_call(session: Any, key: Any) -> Any:
    iv = ctypes.create_string_buffer(next(_NONCES).to_bytes(12, "big"), 12)  # alive until the call returns
    param = _GCM_PARAMS.pack(ctypes.addressof(iv), 12, 96, 0, 0, 128)
    return key.encrypt(MESSAGE, mechanism=Mechanism.AES_GCM, mechanism_param=param)


def _data_make(session: Any, tag: str, store: bool) -> None:
    # Public where the token allows it, else private (tpm2-pkcs11 makes only private data objects).
    last: PKCS11Error | None = None
    for private in (False, True):
        try:
            session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: store,
                                   Attribute.PRIVATE: private, Attribute.LABEL: tag, Attribute.VALUE: b"bench"})
            return
        except PKCS11Error as exc:
            last = exc
    assert last is not None
    raise last


def _search(session: Any, tag: str) -> Any:
    found = list(session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: tag}))
    if len(found) != 1:
        raise WrongAnswer(f"a search for the one data object labelled {tag!r} found {len(found)}")
    return found


def _secret_key(session: Any, tag: str) -> Any:
    return session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=tag)


def _nothing(session: Any, tag: str) -> Any:
    return tag


def _nothing_made(session: Any, tag: str, store: bool) -> None:
    return None


_RSA2048, _RSA3072 = _rsa(2048), _rsa(3072)

_RSA_SIGN = (Variant((Mechanism.SHA256_RSA_PKCS,), lambda s, key: key.sign(SIGNED, mechanism=Mechanism.SHA256_RSA_PKCS)),
             Variant((Mechanism.RSA_PKCS,), lambda s, key: key.sign(DIGEST_INFO, mechanism=Mechanism.RSA_PKCS),
                     "CKM_RSA_PKCS over the SHA-256 DigestInfo (the token lists no CKM_SHA256_RSA_PKCS)"))

WORKLOADS: Mapping[str, Workload] = {w.name: w for w in (
    Workload("rsa2048_sign", "RSA-2048 sign (CKM_SHA256_RSA_PKCS, 64 bytes)", (Mechanism.RSA_PKCS_KEY_PAIR_GEN,),
             *_RSA2048, _RSA_SIGN),
    Workload("rsa3072_sign", "RSA-3072 sign (CKM_SHA256_RSA_PKCS, 64 bytes)", (Mechanism.RSA_PKCS_KEY_PAIR_GEN,),
             *_RSA3072, _RSA_SIGN),
    Workload("ecdsa_p256_sign", "ECDSA P-256 sign (CKM_ECDSA over a SHA-256 digest)", (Mechanism.EC_KEY_PAIR_GEN,),
             _ec_make, _private_key(KeyType.EC),
             (Variant((Mechanism.ECDSA,), lambda s, key: key.sign(HASHED, mechanism=Mechanism.ECDSA)),)),
    Workload("aes_gcm_4k_encrypt", "AES-256-GCM encrypt, 4 KiB (CKM_AES_GCM, fresh 96-bit nonce)",
             (Mechanism.AES_KEY_GEN,), _aes_make, _secret_key, (Variant((Mechanism.AES_GCM,), _gcm_call),)),
    Workload("sha256_digest", "SHA-256 digest, 4 KiB (CKM_SHA256)", (), _nothing_made, _nothing,
             (Variant((Mechanism.SHA256,), lambda s, _: s.digest(MESSAGE, mechanism=Mechanism.SHA256)),)),
    Workload("random", "C_GenerateRandom, 32 bytes", (), _nothing_made, _nothing,
             (Variant((), lambda s, _: s.generate_random(256)),)),
    Workload("search", "find one data object by label (C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal)", (),
             _data_make, _nothing, (Variant((), lambda s, tag: _search(s, tag)),)),
)}


def choose(workload: Workload, listed: set[Any]) -> Variant | str:
    """The variant to time on this token, or why the token lists the mechanisms of none, before anything is
    made."""
    missing = [m.name for m in workload.needs if m not in listed]
    if missing:
        return f"the token does not list {_names(missing)}"
    for variant in workload.variants:
        if all(m in listed for m in variant.needs):
            return variant
    return f"the token does not list {' or '.join(_names([m.name for m in v.needs]) for v in workload.variants)}"


def _names(mechanisms: list[str]) -> str:
    return ", ".join("CKM_" + m for m in mechanisms)


def make(workload: Workload, session: Any, disposable: bool) -> str:
    """Make what the workload's calls use and return its label: session objects; on a disposable token that refuses them (tpm2-pkcs11
    makes key pairs only as token objects), token objects under this run's label. Unsupported otherwise.
    Token objects an earlier worker of this run made and could not destroy (it crashed) are used again: made
    twice, the next search for them would find two."""
    tag = label(f"bench-{workload.name}")
    if workload.make is not _nothing_made and list(session.get_objects({Attribute.LABEL: tag})):
        return tag
    try:
        workload.make(session, tag, False)
        return tag
    except PKCS11Error as exc:
        refused = type(exc).__name__
    if not disposable:
        raise Unsupported(f"the token makes no session objects for it ({refused}), and its profile is not "
                          "disposable, so no token objects are made instead")
    try:
        workload.make(session, tag, True)
    except PKCS11Error as exc:
        raise Unsupported(f"the token makes them neither as session objects ({refused}) nor as token objects "
                          f"({type(exc).__name__})") from None
    return tag


def destroy(session: Any, tag: str) -> None:
    """Everything set-up made, token objects and session objects alike: some modules keep session objects past
    their session (tpm2-pkcs11), and the token must be left as it was found."""
    for obj in list(session.get_objects({Attribute.LABEL: tag})):
        obj.destroy()
