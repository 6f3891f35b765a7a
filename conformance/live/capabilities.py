"""What a token can do, asked of the token itself (mechanism list, and one try of each operation the checks build
on). A missing capability is a skip that says which and why; scenario menus leave out the steps that need it.
No check ever asks which vendor it runs on."""

from __future__ import annotations

from typing import Any, Callable, Collection, Mapping

import pytest
from pkcs11 import KeyType, Mechanism, ObjectClass
from pkcs11.constants import Attribute

from .integrity import sweep_token
from .stepkeys import mac_key, signed, verified
from ..binding import batched_search, binding_version
from ..labels import label
from .tokens import open_for_setup

# capability -> what it is, for skip reasons
CAPABILITIES = {
    "aes_keygen": "session AES-128 key generation (C_GenerateKey, CKM_AES_KEY_GEN)",
    "aes_cbc_pad": "AES-CBC-PAD encryption and decryption (CKM_AES_CBC_PAD)",
    "aes_cbc": "AES-CBC decryption of whole blocks (CKM_AES_CBC)",
    "hmac_sign": ("SHA256-HMAC signing and verifying with a session generic secret key whose CKA_VALUE can be read "
                  "(CKM_GENERIC_SECRET_KEY_GEN, CKM_SHA256_HMAC)"),
    "sha256_digest": "SHA-256 digests (CKM_SHA256)",
    "public_data_objects": "public session data objects (C_CreateObject, CKO_DATA, CKA_PRIVATE=false)",
    "private_data_objects": "private session data objects (C_CreateObject, CKO_DATA, CKA_PRIVATE=true)",
    # Not a skip reason but a quirk the harness must clean up after: the probe object is still there after its
    # session closed (v3.0 §4.4: session objects are destroyed when their session closes).
    "session_objects_end": "session objects that end with their session",
}
PROBE_LABEL = label("probe")

# Scenario steps (op, or "use:WHAT") -> the capabilities they need: scenario menus are filtered with this.
STEP_NEEDS: dict[str, tuple[str, ...]] = {
    "encrypt_gen": ("aes_keygen", "aes_cbc_pad"),
    "encrypt": ("aes_keygen", "aes_cbc_pad"),
    "decrypt_gen": ("aes_keygen", "aes_cbc"),
    "decrypt": ("aes_keygen", "aes_cbc"),
    "sign": ("hmac_sign",),
    "verify": ("hmac_sign",),
    "digest": ("sha256_digest",),
    "use:digest": ("sha256_digest",),
    "use:encrypt": ("aes_keygen", "aes_cbc_pad"),
    "use:encrypt_gen": ("aes_keygen", "aes_cbc_pad"),
    "use:decrypt_gen": ("aes_keygen", "aes_cbc"),
    "use:sign": ("hmac_sign",),
    "use:attribute": ("aes_keygen",),
    "use_partial": ("aes_keygen", "aes_cbc_pad"),
    "search:batch": ("search_batch_size",),  # a search fetching other than one object per C_FindObjects
}
# A one-shot use that shows a session works, best first: a digest goes through python-pkcs11's operation lock
# (what sharing a session is about); C_GenerateRandom needs no mechanism, so every token has one of the two.
ONE_SHOT_USES = ("digest", "random")
# Stress calls -> the capabilities they need.
CALL_NEEDS: dict[str, tuple[str, ...]] = {"keygen": ("aes_keygen",), "attribute": ("aes_keygen",),
                                          "digest": ("sha256_digest",), "random": ()}


class _Probing:
    """One probe's session and the AES key the AES capabilities share (made once, by aes_keygen's try)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.key: Any = None

    def aes(self) -> Any:
        if self.key is None:
            self.key = self.session.generate_key(KeyType.AES, 128, store=False)
        return self.key

    def data_object(self, private: bool) -> Any:
        return self.session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False,
                                           Attribute.PRIVATE: private, Attribute.LABEL: PROBE_LABEL,
                                           Attribute.VALUE: b"probe"})


# capability -> (the mechanisms the token must list, the try on a probe's session); in this order.
TRIES: dict[str, tuple[tuple[Mechanism, ...], Callable[[_Probing], Any]]] = {
    "aes_keygen": ((Mechanism.AES_KEY_GEN,), lambda p: p.aes()),
    "aes_cbc_pad": ((Mechanism.AES_CBC_PAD,), lambda p: _roundtrip(p.aes(), Mechanism.AES_CBC_PAD)),
    "aes_cbc": ((Mechanism.AES_CBC,), lambda p: _roundtrip(p.aes(), Mechanism.AES_CBC)),
    "hmac_sign": ((Mechanism.GENERIC_SECRET_KEY_GEN, Mechanism.SHA256_HMAC), lambda p: _mac_roundtrip(p.session)),
    "sha256_digest": ((Mechanism.SHA256,), lambda p: p.session.digest(b"x", mechanism=Mechanism.SHA256)),
    "public_data_objects": ((), lambda p: p.data_object(False)),
    "private_data_objects": ((), lambda p: p.data_object(True)),
}
NEEDS_AES_KEY = ("aes_cbc_pad", "aes_cbc")
AFTER = ("session_objects_end", "search_batch_size")  # read after the probe's session closed
PROBED = (*TRIES, *AFTER)  # every capability probe() decides, in its order


def probe(token: Any, pin: str, only: Collection[str] = ()) -> dict[str, str]:
    """capability -> why it is missing, for every capability the token lacks (one try each, on a session of
    its own; everything made is a session object and goes with the session). `only`: just these (each probed
    alone when probing them together took the module's process down: executor/parent.py)."""
    wanted = [cap for cap in PROBED if not only or cap in only]
    missing: dict[str, str] = {}
    mechanisms = set(token.slot.get_mechanisms())
    for cap in wanted:
        unlisted = [m.name for m in TRIES.get(cap, ((),))[0] if m not in mechanisms]
        if unlisted:
            missing[cap] = f"the token does not list {', '.join(unlisted)}"
    session = open_for_setup(token, pin)
    try:
        probing = _Probing(session)
        for cap in (c for c in wanted if c in TRIES and c not in missing):
            if cap in NEEDS_AES_KEY and ("aes_keygen" in missing or not _try({}, "aes_keygen", probing.aes)):
                missing[cap] = "needs a session AES key, which the token cannot generate"
                continue
            _try(missing, cap, lambda: TRIES[cap][1](probing))
        if "session_objects_end" in wanted and "public_data_objects" not in wanted:
            # Probed alone: make the object whose survival after its session is looked for below.
            _try({}, "public_data_objects", lambda: probing.data_object(False)) or _try(
                {}, "private_data_objects", lambda: probing.data_object(True))
    finally:
        session.close()
    if "session_objects_end" in wanted and sweep_token(token, pin, labels={PROBE_LABEL}):
        missing["session_objects_end"] = "the token keeps session objects after their session is closed"
    if "search_batch_size" in wanted and not batched_search():
        # the binding's, not the token's: scenario searches then fetch one object per call
        missing["search_batch_size"] = (f"python-pkcs11 {binding_version()} has no get_objects(batch_size=) "
                                        "(since 0.9.0)")
    return missing


def _roundtrip(key: Any, mechanism: Mechanism) -> None:
    data, iv = b"conformance!" * 4, bytes(16)  # 48 bytes: whole blocks, for AES-CBC without padding too
    if key.decrypt(key.encrypt(data, mechanism=mechanism, mechanism_param=iv), mechanism=mechanism,
                   mechanism_param=iv) != data:
        raise ValueError("decryption gave other data")


def _mac_roundtrip(session: Any) -> None:
    """The scenario steps' own HMAC key and calls (live/stepkeys.py)."""
    key, value = mac_key(session)
    if not signed(key, value):
        raise ValueError("the SHA256-HMAC differs from Python's hmac under the key's CKA_VALUE")
    if not verified(key, value):
        raise ValueError("the token refuses Python's hmac of the data")


def _try(missing: dict[str, str], cap: str, call: Any) -> Any:
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - any refusal means the capability is missing; the reason says how
        missing[cap] = f"the token refuses it ({type(exc).__name__})"
        return None


def missing_of(vendor: Any) -> Mapping[str, str]:
    """The vendor's missing capabilities, in the executor child (LiveVendor) or in pytest (VendorRuntime)."""
    live = getattr(vendor, "missing_capabilities", None)
    if live is not None:
        return live() if callable(live) else live
    return vendor.facts.get("capabilities_missing", {})


def require(vendor: Any, *caps: str) -> None:
    """Skip the check, naming the capability and why, unless the token has every one of `caps`."""
    missing = missing_of(vendor)
    for cap in caps:
        if cap in missing:
            pytest.skip(f"token lacks {CAPABILITIES[cap]}: {missing[cap]}")


def require_mechanism(vendor: Any, *mechanisms: Mechanism) -> None:
    """Skip the check, naming the mechanism, unless the token lists every one of `mechanisms` (C_GetMechanismList;
    in the executor child, where the check body runs)."""
    listed = vendor.mechanisms()
    for mechanism in mechanisms:
        if mechanism not in listed:
            pytest.skip(f"the token does not list CKM_{mechanism.name}")


def one_shot_use(vendor: Any) -> str:
    """The first of ONE_SHOT_USES the token supports."""
    missing = missing_of(vendor)
    return next((use for use in ONE_SHOT_USES if not any(cap in missing for cap in STEP_NEEDS.get(f"use:{use}", ()))),
                ONE_SHOT_USES[-1])


def unsupported_steps(missing: Mapping[str, str]) -> frozenset[str]:
    """The scenario steps (op or use:WHAT) the token cannot run."""
    return frozenset(step for step, needs in STEP_NEEDS.items() if any(cap in missing for cap in needs))
