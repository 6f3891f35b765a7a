"""The model's crypto vocabulary (issue 13): decryption generators, sign and verify, and what the module may do when
two kinds of operation meet on one session (UG v2.40 §4.1's dual-function pairs, v3.0 §5.1.6) — hand-written
sequences, no module."""

from __future__ import annotations

from conformance.engine.params import ACTIVE, ModelParams
from conformance.engine.vocabulary import COMBINATION_RULE, CONCURRENT, DUAL_RULE, OTHER_RULE, SAME_RULE
from conformance.engine.predicting import INVALID_RULE

from test_engine_model import Play, _one

EITHER = frozenset({"ok", ACTIVE})


def _with(gen: str, params: ModelParams = ModelParams(), actor: int = 0) -> Play:
    """s0 open, actor `actor`'s generator it0 (encrypt_gen or decrypt_gen) on it started: one item taken."""
    play = Play("operations", params)
    play.do(actor, "open", ref="s0", login=False)
    play.do(actor, gen, ref="it0", session="s0")
    assert play.do(actor, "next", iterator="it0").allowed == _one("ok:item")
    return play


def test_digest_during_decryption_is_a_dual_function_pair() -> None:
    """UG §4.1: "decryption and digesting" is one of the four pairs a token may run at once: either answer passes,
    recorded as digest_during_decrypt."""
    exp = _with("decrypt_gen").expect(0, "digest", session="s0")
    assert (exp.allowed, exp.point, exp.rule) == (EITHER, "digest_during_decrypt", DUAL_RULE)


def test_decryption_during_encryption_is_the_modules_choice() -> None:
    """Not one of UG §4.1's pairs, but v3.0 §5.1.6 leaves the combination to the module (OpenCryptoki runs both):
    characterised as decrypt_during_encrypt, both starting by one-shot call and by a generator's first next."""
    play = _with("encrypt_gen")
    exp = play.expect(0, "decrypt", session="s0")
    assert (exp.allowed, exp.point, exp.rule) == (EITHER, "decrypt_during_encrypt", OTHER_RULE)
    play.do(0, "decrypt_gen", ref="it1", session="s0")
    assert play.expect(0, "next", iterator="it1").point == "decrypt_during_encrypt"


def test_a_second_decryption_is_refused() -> None:
    """UG §4.1: one operation of each kind per session — a one-shot decrypt during a decryption generator raises
    OperationActive, whatever the dual-function parameters say."""
    exp = _with("decrypt_gen", ModelParams(other_crypto_pair=frozenset({"ok"}))).expect(0, "decrypt", session="s0")
    assert (exp.allowed, exp.point, exp.rule) == (_one(ACTIVE), None, SAME_RULE)


def test_an_allowed_pair_then_a_third_operation_is_a_combination() -> None:
    """With encryption and decryption both running (a module that allows it), a digest meets a combination of
    active operations (v3.0 §5.1.6): either answer, recorded under no single pair."""
    play = _with("encrypt_gen", ModelParams(other_crypto_pair=frozenset({"ok"})))
    play.do(0, "decrypt_gen", ref="it1", session="s0")
    play.do(0, "next", iterator="it1")
    exp = play.expect(0, "digest", session="s0")
    assert (exp.allowed, exp.point, exp.rule) == (EITHER, None, COMBINATION_RULE)


def test_sign_and_verify_return_true_and_take_the_lock() -> None:
    """sign and verify are operations under python-pkcs11's session lock: another actor's sign waits for the
    holder's generator; on a free session they return True (the HMAC equals Python's; the token accepts it)."""
    play = _with("decrypt_gen")
    assert play.expect(1, "sign", session="s0").blocks
    play = Play()
    play.do(0, "open", ref="s0", login=False)
    assert play.expect(1, "sign", session="s0").allowed == _one("ok:True")
    assert play.expect(1, "verify", session="s0").allowed == _one("ok:True")


def test_sign_during_decryption_and_verify_during_encryption_are_not_pairs() -> None:
    """UG §4.1 pairs signing with encryption and verification with decryption; the crossed combinations are the
    module's choice (NSS and OpenCryptoki run them)."""
    assert _with("encrypt_gen").expect(0, "sign", session="s0").point == "sign_during_encrypt"
    assert _with("encrypt_gen").expect(0, "sign", session="s0").rule == DUAL_RULE
    assert _with("decrypt_gen").expect(0, "sign", session="s0").rule == OTHER_RULE
    assert _with("encrypt_gen").expect(0, "verify", session="s0").rule == OTHER_RULE
    assert _with("decrypt_gen").expect(0, "verify", session="s0").rule == DUAL_RULE


def test_each_key_has_its_type_read_once() -> None:
    """python-pkcs11 reads a key's type before taking the lock, once per key (Key.key_type is cached): after the
    AES key was used, a sign on the closed session still fails at once — its HMAC key was never read — while a
    decrypt (the AES key's type is cached) waits for the lock first."""
    play = _with("encrypt_gen")
    play.do(0, "close", session="s0")
    sign = play.expect(1, "sign", session="s0")
    assert sign.rule == INVALID_RULE and not sign.blocks
    assert play.expect(1, "decrypt", session="s0").blocks


def test_decryption_generators_have_their_own_measured_parameters() -> None:
    """The decryption generator's lock release and collected operation follow its own measured parameters
    (decrypt_generator_releases_at_last_item, collected_decrypt_generator_keeps_operation), not the encryption's."""
    params = ModelParams(generator_releases_at_last_item=False, collected_generator_keeps_operation=True)
    play = _with("decrypt_gen", params)
    for _ in range(2):
        play.do(0, "next", iterator="it0")
    play.do(0, "next", iterator="it0")  # the 4th and last item ends it (decrypt_generator_releases_at_last_item)
    assert play.model.sessions["s0"].lock_owner is None
    play = _with("decrypt_gen", params)
    play.do(0, "drop", iterator="it0")
    assert play.expect(0, "decrypt", session="s0").allowed == _one("ok")
    play = _with("decrypt_gen", ModelParams(collected_decrypt_generator_keeps_operation=True))
    play.do(0, "drop", iterator="it0")
    assert play.expect(0, "decrypt", session="s0").allowed == _one(ACTIVE)


def test_the_pairs_table_names_every_point_the_scripted_check_records() -> None:
    """operation.second_operation_during_generator records "START during ACTIVE" for the same pairs the scenarios
    judge: every crypto pair has a CONCURRENT row, recorded as START_during_ACTIVE."""
    from conformance.checks.test_operations import GENERATORS, STARTS

    for active in GENERATORS:
        for start in STARTS:
            overlap = CONCURRENT[(start, active)]
            assert overlap.point in (None, f"{start}_during_{active}"), (start, active)
