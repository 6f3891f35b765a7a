"""Random numbers as applications ask for them: Session.generate_random (C_GenerateRandom) and seed_random
(C_SeedRandom); PKCS#11 v3.0 §5.19."""

from __future__ import annotations

import pytest

from ..live.probes import OK, outcome_of

LENGTHS = (1, 2, 15, 16, 17, 32, 1024, 65536)  # bytes: one, around an AES block, a key's worth, large


@pytest.mark.check("random.lengths", layer="module", spec="PKCS#11 v3.0 §5.19 C_GenerateRandom")
def test_lengths(vendor):
    """C_GenerateRandom "generates random or pseudo-random data" of the length asked for (v3.0 §5.19): every
    length from one byte to 64 KiB comes back that long, and two 32-byte draws differ."""
    session = vendor.open_session(login=False)
    short = {n: len(session.generate_random(8 * n)) for n in LENGTHS}
    assert all(got == n for n, got in short.items()), f"asked for n bytes, got: {short}"
    assert session.generate_random(256) != session.generate_random(256), "two 32-byte draws were equal"


@pytest.mark.check("random.seed", layer="module", spec="PKCS#11 v3.0 §5.19 C_SeedRandom, CKR_RANDOM_SEED_NOT_SUPPORTED")
def test_seed(vendor, observe):
    """C_SeedRandom "mixes additional seed material into the token's random number generator"; a token may
    answer CKR_RANDOM_SEED_NOT_SUPPORTED or CKR_RANDOM_NO_RNG. Characterises which; random data is still given
    after it."""
    session = vendor.open_session(login=False)
    result = outcome_of(lambda: session.seed_random(b"pkcs11-conformance seed material"))
    observe(result)
    assert result in (OK, "RandomSeedNotSupported", "RandomNoRNG", "FunctionNotSupported"), result
    assert len(session.generate_random(128)) == 16
