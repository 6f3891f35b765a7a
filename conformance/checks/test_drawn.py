"""Hypothesis-drawn payloads for encryption and MACs: the boundary lengths the spec and the algorithms name (0,
block - 1, block, block + 1, large) or any length, cut into chunks anywhere; every result cross-checked with
`cryptography` or Python's hmac. Derandomised, like digest.drawn_chunks: every run draws the same examples, so the
verdict is the same run to run, and a failure names the smallest payload that shows it."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pkcs11 import Attribute, KeyType, Mechanism

from ..live.capabilities import require_mechanism
from ..live.keys import readable_secret_key
from ..live.probes import message
from .test_crypt import IV, cbc_pad_decrypt
from .test_digest import boundary_lengths

EXAMPLES = 25
AES_BLOCK, HMAC_BLOCK = 16, 64


def _settings():
    from hypothesis import HealthCheck, settings

    return settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))


def _payloads(block: int, largest: int):
    """(length, cut points): a boundary length or any up to `largest`, and up to five cuts anywhere in it."""
    from hypothesis import strategies as st

    lengths = st.sampled_from((0, 1, block - 1, block, block + 1, 2 * block, 4096)) | st.integers(0, largest)
    return lengths.flatmap(lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n), max_size=5)))


def _chunks(whole: bytes, cuts: list[int], align: int = 1) -> list[bytes]:
    bounds = [0, *sorted(c - c % align for c in cuts), len(whole)]
    return [whole[a:b] for a, b in zip(bounds, bounds[1:])]


@pytest.mark.check("encrypt.drawn_payloads", layer="module",
                   spec="PKCS#11 v3.0 §5.8 C_Encrypt, C_EncryptUpdate, §5.10 C_DecryptUpdate; CKM_AES_CBC_PAD; PKCS #7")
def test_encrypt_drawn_payloads(vendor):
    """For drawn messages (around the AES block, 4 KiB, or any up to 4 blocks) cut into drawn chunks, empty ones
    included: the one-shot CKM_AES_CBC_PAD ciphertext decrypts with `cryptography` to the message, C_EncryptUpdate
    over the chunks gives the same ciphertext, and C_DecryptUpdate over block-aligned pieces of it gives the message
    back (unaligned decryption parts are encrypt.aes_cbc_pad_multi_part's)."""
    from hypothesis import given

    require_mechanism(vendor, Mechanism.AES_CBC_PAD)
    session = vendor.open_session()
    key, value = readable_secret_key(vendor, session, KeyType.AES, 128, what="drawn-cbc-pad")

    @_settings()
    @given(_payloads(AES_BLOCK, 4 * AES_BLOCK))
    def payload(drawn: tuple[int, list[int]]) -> None:
        n, cuts = drawn
        whole = message(n)
        one_shot = key.encrypt(whole, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV)
        assert cbc_pad_decrypt(value, one_shot) == whole, f"C_Encrypt of {n} bytes is not AES-CBC with PKCS #7 padding"
        chunks = _chunks(whole, cuts)
        parts = b"".join(key.encrypt(iter(chunks), mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV))
        assert parts == one_shot, f"C_EncryptUpdate over chunks of {[len(c) for c in chunks]} bytes differs"
        pieces = _chunks(one_shot, [c * len(one_shot) // max(n, 1) for c in cuts], AES_BLOCK)
        back = b"".join(key.decrypt(iter(pieces), mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV))
        assert back == whole, f"C_DecryptUpdate over pieces of {[len(p) for p in pieces]} bytes gave another message"

    payload()


@pytest.mark.check("sign.drawn_payloads", layer="module",
                   spec="PKCS#11 v3.0 §5.13 C_Sign, §5.15 C_VerifyUpdate, C_VerifyFinal; CKM_SHA256_HMAC; RFC 2104")
def test_sign_drawn_payloads(vendor):
    """For drawn messages (the SHA-256 block's boundary lengths, or any up to four blocks) cut into drawn chunks:
    the one-shot CKM_SHA256_HMAC equals Python's hmac under the key's value, and C_VerifyUpdate over the chunks then
    C_VerifyFinal accepts it. (Multi-part signing is sign.hmac_sha256_multi_part's: OpenCryptoki 3.8 dies in it.)"""
    from hypothesis import given

    require_mechanism(vendor, Mechanism.SHA256_HMAC)
    session = vendor.open_session()
    key, value = readable_secret_key(vendor, session, KeyType.GENERIC_SECRET, 256, what="drawn-hmac",
                                     template={Attribute.SIGN: True, Attribute.VERIFY: True})
    lengths = sorted(set(boundary_lengths(HMAC_BLOCK)) - {65537})

    @_settings()
    @given(_payloads(HMAC_BLOCK, 4 * HMAC_BLOCK))
    def payload(drawn: tuple[int, list[int]]) -> None:
        n, cuts = drawn
        whole = message(n)
        expected = hmac.new(value, whole, hashlib.sha256).digest()
        assert key.sign(whole, mechanism=Mechanism.SHA256_HMAC) == expected, (
            f"CKM_SHA256_HMAC of {n} bytes differs from RFC 2104 HMAC-SHA-256")
        chunks = _chunks(whole, cuts)
        assert key.verify(iter(chunks), expected, mechanism=Mechanism.SHA256_HMAC), (
            f"C_VerifyUpdate over chunks of {[len(c) for c in chunks]} bytes refuses the right MAC")

    for n in lengths:  # the digest's own boundary lengths (the padding boundary too), always, before the drawn ones
        whole = message(n)
        assert key.sign(whole, mechanism=Mechanism.SHA256_HMAC) == hmac.new(value, whole, hashlib.sha256).digest(), (
            f"CKM_SHA256_HMAC of {n} bytes differs from RFC 2104 HMAC-SHA-256")
    payload()
