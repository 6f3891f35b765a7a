"""Message digests as applications call them: Session.digest of bytes (C_Digest), of an iterable of chunks
(C_DigestUpdate ... C_DigestFinal) and of a key (C_DigestKey); PKCS#11 v3.0 §5.12, results against FIPS 180-4
(hashlib)."""

from __future__ import annotations

import hashlib

import pytest
from pkcs11 import Attribute, KeyType, Mechanism

from ..live.capabilities import require, require_mechanism
from ..live.probes import OK, message, outcome_of

# name -> (mechanism, hashlib name, block size in bytes)
DIGESTS = {"sha1": ("SHA_1", "sha1", 64), "sha224": ("SHA224", "sha224", 64), "sha256": ("SHA256", "sha256", 64),
           "sha384": ("SHA384", "sha384", 128), "sha512": ("SHA512", "sha512", 128)}


def boundary_lengths(block: int) -> tuple[int, ...]:
    """The lengths where a digest implementation changes path: empty, one byte, a block and its neighbours, the
    padding boundary (block - 9 bytes is the last length that pads within one block for SHA-1/2), and large."""
    return (0, 1, block - 9, block - 8, block - 1, block, block + 1, 2 * block, 65537)



@pytest.mark.check("digest.one_shot_{name}", layer="module", spec="PKCS#11 v3.0 §5.12 C_Digest; FIPS 180-4")
@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_one_shot(vendor, name):
    """C_Digest of a message of each boundary length (empty, one byte, around one block and the padding
    boundary, large) gives the FIPS 180-4 digest."""
    mech_name, algorithm, block = DIGESTS[name]
    mechanism = Mechanism[mech_name]
    require_mechanism(vendor, mechanism)
    session = vendor.open_session()
    wrong = [n for n in boundary_lengths(block)
             if session.digest(message(n), mechanism=mechanism) != hashlib.new(algorithm, message(n)).digest()]
    assert not wrong, f"CKM_{mech_name} digests of {wrong}-byte messages differ from FIPS 180-4's"


@pytest.mark.check("digest.multi_part_{name}", layer="module", spec="PKCS#11 v3.0 §5.12 C_DigestUpdate, C_DigestFinal")
@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_multi_part(vendor, name):
    """C_DigestUpdate over chunks that straddle block boundaries (one byte, a block less one, a block and one, a
    large chunk), then C_DigestFinal, gives the digest of the whole message (v3.0 §5.12: "continues a
    multiple-part message-digesting operation")."""
    mech_name, algorithm, block = DIGESTS[name]
    mechanism = Mechanism[mech_name]
    require_mechanism(vendor, mechanism)
    whole = message(1 + (block - 1) + (block + 1) + 4096)
    cuts = (1, block, 2 * block + 1, len(whole))
    chunks = [whole[a:b] for a, b in zip((0,) + cuts, cuts)]
    session = vendor.open_session()
    got = session.digest(iter(chunks), mechanism=mechanism)
    assert got == hashlib.new(algorithm, whole).digest(), (
        f"CKM_{mech_name} over chunks of {[len(c) for c in chunks]} bytes differs from the one-shot FIPS 180-4 digest")


@pytest.mark.check("digest.public_session", layer="module", spec="PKCS#11 v3.0 §5.2 session states (R/O Public), §5.12")
def test_public_session(vendor):
    """Digesting touches no object: a read-only session nobody logged in to may digest (v3.0 §5.2: a public
    session has access to public objects, and C_Digest uses none)."""
    require(vendor, "sha256_digest")
    session = vendor.open_session(login=False, rw=False)
    assert session.digest(b"abc", mechanism=Mechanism.SHA256) == hashlib.sha256(b"abc").digest()


@pytest.mark.check("digest.key", layer="module", spec="PKCS#11 v3.0 §5.12 C_DigestKey, CKR_KEY_INDIGESTIBLE")
def test_digest_of_a_key(vendor, observe):
    """C_DigestKey continues a digest with a secret key's value (v3.0 §5.12); a module may refuse a key it
    cannot digest (CKR_KEY_INDIGESTIBLE) or the function. Characterises which; a digest it gives must be that of
    the key's value (read from a non-sensitive, extractable key)."""
    require(vendor, "aes_keygen")
    require_mechanism(vendor, Mechanism.SHA256)
    session = vendor.open_session()
    key = session.generate_key(KeyType.AES, 128, store=False,
                               template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
    got: list[bytes] = []
    result = outcome_of(lambda: got.append(session.digest(key, mechanism=Mechanism.SHA256)))
    observe(result)
    if result == OK:
        value = key[Attribute.VALUE]
        assert got[0] == hashlib.sha256(value).digest(), "C_DigestKey gave another digest than that of the key's value"


@pytest.mark.check("digest.drawn_chunks", layer="module", spec="PKCS#11 v3.0 §5.12 C_DigestUpdate, C_DigestFinal")
def test_drawn_chunks(vendor):
    """Hypothesis draws messages (the boundary lengths around a SHA-256 block, or any up to four blocks) cut into
    chunks anywhere, empty chunks included: C_DigestUpdate over the chunks then C_DigestFinal gives the digest of
    the whole message. Derandomised, so every run draws the same examples (a failure names the smallest one)."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    require_mechanism(vendor, Mechanism.SHA256)
    session = vendor.open_session()
    lengths = st.sampled_from(boundary_lengths(64)[:-1]) | st.integers(0, 4 * 64)

    @settings(max_examples=30, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(lengths.flatmap(lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n), max_size=6))))
    def chunked(drawn: tuple[int, list[int]]) -> None:
        n, cuts = drawn
        whole = message(n)
        bounds = [0, *sorted(cuts), n]
        chunks = [whole[a:b] for a, b in zip(bounds, bounds[1:])]
        got = session.digest(iter(chunks), mechanism=Mechanism.SHA256)
        assert got == hashlib.sha256(whole).digest(), (
            f"CKM_SHA256 over chunks of {[len(c) for c in chunks]} bytes differs from FIPS 180-4's digest")

    chunked()
