"""Active operations and unconsumed iterators (python-pkcs11 Concurrency page; PKCS#11 v3.0 §5.7.7, UG §4.1)."""

from __future__ import annotations

import pkcs11
import pytest
from pkcs11 import KeyType, Mechanism

from ..live.capabilities import missing_of, require
from ..live.stepkeys import mac_key, signed, verified
from ..live.probes import OK, ThreadCall, harness_objects, make_data_objects, outcome_of

DATA = harness_objects()  # only the objects the check made: a real token has data objects of its own
OBJECTS = 3


def open_search(session):
    """A search started (C_FindObjectsInit runs at the first next()) and left unconsumed."""
    it = session.get_objects(DATA)
    next(it)
    return it


def partly_encrypted(vendor):
    """(key, iv, generator): a chunked AES-CBC-PAD encryption on a new session, its first chunk taken."""
    require(vendor, "aes_keygen", "aes_cbc_pad")
    session = vendor.open_session()
    key = session.generate_key(KeyType.AES, 128, store=False)
    iv = session.generate_random(128)
    chunks = key.encrypt([b"a" * 32, b"b" * 32, b"c" * 32], mechanism_param=iv)
    next(chunks)
    return key, iv, chunks


@pytest.mark.check("operation.search_then_search_same_thread", layer="module", spec="PKCS#11 v3.0 §5.7.7")
def test_search_then_search_same_thread(vendor):
    """Docs: "if you do not consume the iterator ... further actions will raise pkcs11.exceptions.OperationActive";
    v3.0 §5.7.7: "At most one search operation may be active at a given time in a given session"."""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS)
    it = open_search(session)
    with pytest.raises(pkcs11.exceptions.OperationActive):
        list(session.get_objects(DATA))
    del it


@pytest.mark.check("operation.refused_search_keeps_active_search", layer="binding", spec="PKCS#11 v3.0 §5.1.6 CKR_OPERATION_ACTIVE, §5.7.7")
def test_refused_search_keeps_active_search(vendor):
    """CKR_OPERATION_ACTIVE means the *new* operation could not start (§5.1.6); the search already active must go
    on, so the first iterator still yields every object after a second search was refused."""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS)
    it = open_search(session)
    if outcome_of(lambda: list(session.get_objects(DATA))) != "OperationActive":
        pytest.skip("the module runs a second search instead of refusing it, so the refusal path is not reached")
    rest = list(it)
    assert len(rest) == OBJECTS - 1, f"first search yielded {len(rest)} more of {OBJECTS - 1} after the refused search"


@pytest.mark.check("operation.single_shot_during_search", layer="module", spec="PKCS#11 UG v2.40 §4.1, §2.6.7")
def test_single_shot_during_search(vendor, observe):
    """UG §2.6.7: "a single session can perform only one operation at a time" — whether a digest may run while a
    search is open is implementation-defined. Characterises it (ok or the exception)."""
    require(vendor, "sha256_digest")
    session = vendor.open_session()
    make_data_objects(session, OBJECTS)
    it = open_search(session)
    result = outcome_of(lambda: session.digest(b"conformance", mechanism=Mechanism.SHA256))
    observe(result)
    assert result in (OK, "OperationActive")
    del it


@pytest.mark.check("operation.other_session_unaffected", layer="module", spec="PKCS#11 UG v2.40 §2.6.7, §4.1")
def test_other_session_unaffected(vendor):
    """Operations belong to a session (UG §4.1 "A given session can have 0, 1, or 2 operations active"): an open
    search on one session does not stop a search on another session in the same thread."""
    first = vendor.open_session()
    make_data_objects(first, OBJECTS)
    second = vendor.open_session(login=False)
    it = open_search(first)
    assert len(list(second.get_objects(DATA))) == OBJECTS
    del it


@pytest.mark.check("operation.other_thread_waits_for_iterator", layer="binding", spec="python-pkcs11 docs, Concurrency")
@pytest.mark.concurrency
def test_other_thread_waits_for_iterator(vendor, limits):
    """Docs: "The lock is not released until the iterator is consumed" — another thread's search on the same session
    waits while the iterator is open, then completes once it is consumed."""
    session = vendor.open_session()
    make_data_objects(session, OBJECTS)
    it = open_search(session)
    other = ThreadCall(lambda: len(list(session.get_objects(DATA))), "other-search")
    assert not other.finished_within(limits.block_window), "the other thread's search did not wait for the iterator"
    list(it)
    assert other.result(timeout=10) == OBJECTS


@pytest.mark.check("operation.encrypt_generator_then_encrypt", layer="module", spec="python-pkcs11 docs, Concurrency; PKCS#11 v3.0 §5.1.6")
def test_encrypt_generator_then_encrypt(vendor):
    """Docs: multi-step calls "such as ... encryption" hold the operation; a one-shot encrypt on the same session while
    a chunked encrypt is partly consumed raises OperationActive."""
    key, iv, chunks = partly_encrypted(vendor)
    with pytest.raises(pkcs11.exceptions.OperationActive):
        key.encrypt(b"x" * 16, mechanism_param=iv)
    del chunks


# --- two operations on one session: UG §4.1's dual-function pairs -------------------------------------------------

BLOCKS = bytes(range(32))  # AES-CBC decrypts any whole blocks: no ciphertext needs making first
IV = bytes(16)
# What an application starts while a generator is partly consumed, as the one call it makes: (capabilities it
# needs beyond the generator's, the call on (session, AES key, (HMAC key, its value))).
STARTS = {
    "digest": (("sha256_digest",), lambda s, key, mac: s.digest(b"conformance", mechanism=Mechanism.SHA256)),
    "encrypt": ((), lambda s, key, mac: key.encrypt(b"x" * 16, mechanism_param=IV)),
    "decrypt": ((), lambda s, key, mac: key.decrypt(BLOCKS, mechanism=Mechanism.AES_CBC, mechanism_param=IV)),
    "sign": (("hmac_sign",), lambda s, key, mac: signed(*mac)),
    "verify": (("hmac_sign",), lambda s, key, mac: verified(*mac)),
}
GENERATORS = {
    "encrypt": lambda key: key.encrypt([BLOCKS] * 3, mechanism_param=IV),
    "decrypt": lambda key: key.decrypt([BLOCKS] * 3, mechanism=Mechanism.AES_CBC, mechanism_param=IV),
}


@pytest.mark.check("operation.second_operation_during_generator", layer="module",
                   spec="PKCS#11 UG v2.40 §4.1, §2.6.7; v3.0 §5.1.6")
def test_second_operation_during_generator(vendor, observe):
    """UG §4.1: "A given session can have 0, 1, or 2 operations active at a time ... those two operations must be one
    of the four following pairs of operations: digesting and encryption; decryption and digesting; signing and
    encryption; decryption and verification"; v3.0 §5.1.6 leaves to the module which combinations prevent a new
    operation. With a chunked encryption or decryption partly consumed, characterises what each kind of operation
    started on the same session gives ("START during ACTIVE": ok or the exception) — the concurrency scenarios judge
    the same points — and checks that a refused one leaves the generator running to its end (§5.1.6: the *new*
    operation could not start). Same-kind pairs must be refused (UG §4.1)."""
    require(vendor, "aes_keygen", "aes_cbc_pad", "aes_cbc")
    missing = missing_of(vendor)
    found, broken = {}, {}
    for active, make in GENERATORS.items():
        for start, (needs, call) in STARTS.items():
            if any(cap in missing for cap in needs):
                continue
            session = vendor.open_session()
            key = session.generate_key(KeyType.AES, 128, store=False)
            mac = mac_key(session) if "hmac_sign" in needs else None
            chunks = make(key)
            next(chunks)
            pair = f"{start} during {active}"
            found[pair] = outcome_of(lambda: call(session, key, mac))
            if (rest := outcome_of(lambda: len(list(chunks)))) != OK:
                broken[pair] = rest
            del chunks
            session.close()
    observe(found)
    assert not broken, f"the generator failed after the second operation: {broken}"
    assert all(found[f"{kind} during {kind}"] == "OperationActive" for kind in GENERATORS), found
    assert set(found.values()) <= {OK, "OperationActive"}, found
