"""Object searches as applications make them: Session.get_objects(template) (C_FindObjectsInit, C_FindObjects,
C_FindObjectsFinal; PKCS#11 v3.0 §5.7.7-§5.7.9) by label, by id, by class and by key type, fetched in batches of
several sizes, and over many objects. Each search must find exactly the matching objects the check made (a real
token has objects of its own: a search that is not narrowed by a run label is judged on the check's objects only)."""

from __future__ import annotations

from typing import Any

import pytest
from pkcs11 import KeyType, Mechanism, ObjectClass
from pkcs11.constants import Attribute
from pkcs11.exceptions import PKCS11Error

from ..binding import batched_search, binding_version, search_objects
from ..labels import label
from ..live.capabilities import require_mechanism
from ..live.keys import secret_key
from ..live.probes import private_flag

VALUE = b"pkcs11-conformance search"



def data_objects(session: Any, name: str, count: int, *, private: bool) -> set[Any]:
    return {session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False,
                                   Attribute.PRIVATE: private, Attribute.LABEL: name, Attribute.VALUE: VALUE})
            for _ in range(count)}


def by_label(name: str) -> dict[Any, Any]:
    return {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: name}


@pytest.mark.check("search.by_label", layer="module", spec="PKCS#11 v3.0 §5.7.7 C_FindObjectsInit, §4.4 CKA_LABEL")
def test_by_label(vendor):
    """C_FindObjectsInit: the search "finds objects that match all the attributes in the template" (v3.0 §5.7.7),
    matching a label exactly: two objects under one label and one under that label with a suffix are found apart
    (a search for the shorter label is no prefix match)."""
    private = private_flag(vendor)
    session = vendor.open_session()
    short, longer = label("search-label"), label("search-label-longer")
    made_short, made_longer = data_objects(session, short, 2, private=private), data_objects(session, longer, 1, private=private)
    got_short, got_longer = list(session.get_objects(by_label(short))), list(session.get_objects(by_label(longer)))
    assert set(got_short) == made_short and len(got_short) == 2, (
        f"a search for a label finds {len(got_short)} objects, {len(set(got_short) & made_short)} of the 2 made with it "
        f"({len(set(got_short) & made_longer)} of those with the label and a suffix)")
    assert set(got_longer) == made_longer and len(got_longer) == 1, (
        f"a search for the longer label finds {len(got_longer)} objects, not its 1")


# id length (bytes) -> the id searched for; the check also makes keys with that id one byte longer, one byte
# shorter (its prefix) and with its last byte changed, none of which the search may find
ID_LENGTHS = (1, 2, 32)


def target_id(length: int) -> bytes:
    return bytes((0xA1 + i) % 256 for i in range(length))


@pytest.mark.check("search.by_id_{length}", layer="module", spec="PKCS#11 v3.0 §5.7.7 C_FindObjectsInit, §4.7 CKA_ID")
@pytest.mark.parametrize("length", ID_LENGTHS)
def test_by_id(vendor, length):
    """A search by CKA_ID (a byte array, v3.0 §4.7) "finds objects that match all the attributes in the template"
    (§5.7.7) byte for byte: of AES keys whose ids are the id searched for, the id one byte longer, its prefix one
    byte shorter and the id with its last byte changed, only the first is found, and every object found has that id.
    Ids of 1, 2 and 32 bytes (short ids are where a length-blind comparison shows)."""
    wanted = target_id(length)
    others = [wanted + b"\x00", wanted[:-1] + bytes([wanted[-1] ^ 0xFF])] + ([wanted[:-1]] if length > 1 else [])
    session = vendor.open_session()
    keys = {key_id: secret_key(vendor, session, KeyType.AES, 128, what=f"search-id{length}-{i}",
                               template={Attribute.ID: key_id})
            for i, key_id in enumerate([wanted] + others)}
    got = list(session.get_objects({Attribute.ID: wanted}))
    wrong_ids = sorted({obj[Attribute.ID].hex() for obj in got} - {wanted.hex()})
    distractors = [key_id.hex() for key_id in others if keys[key_id] in got]
    assert keys[wanted] in got, f"a search for the {length}-byte CKA_ID {wanted.hex()} misses the key made with it"
    assert not distractors, f"a search for CKA_ID {wanted.hex()} also finds the keys with ids {distractors}"
    assert not wrong_ids, f"a search for CKA_ID {wanted.hex()} finds objects with ids {wrong_ids}"


@pytest.mark.check("search.by_class", layer="module", spec="PKCS#11 v3.0 §5.7.7 C_FindObjectsInit, §4.2 CKA_CLASS")
def test_by_class(vendor):
    """A search by CKA_CLASS finds objects of that class only (v3.0 §5.7.7): of a data object and an AES key made by
    the check, {CKA_CLASS: CKO_SECRET_KEY} finds the key and not the data object, {CKA_CLASS: CKO_DATA} the data
    object and not the key, and every object found has the class searched for."""
    private = private_flag(vendor)
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="search-class")
    (data,) = data_objects(session, label("search-class"), 1, private=private)
    problems = []
    for cls, mine, other in ((ObjectClass.SECRET_KEY, key, data), (ObjectClass.DATA, data, key)):
        got = list(session.get_objects({Attribute.CLASS: cls}))
        classes = sorted({obj[Attribute.CLASS].name for obj in got} - {cls.name})
        if mine not in got:
            problems.append(f"CKO_{cls.name} misses the check's object of that class")
        if other in got:
            problems.append(f"CKO_{cls.name} finds the check's object of the other class")
        if classes:
            problems.append(f"CKO_{cls.name} finds objects of classes {classes}")
    assert not problems, "searches by class: " + "; ".join(problems)


def generic_secret(vendor: Any, session: Any) -> Any:
    """A session generic secret key of 256 bits, its mechanism and length named (python-pkcs11 0.7.0 has no default
    mechanism for the type)."""
    require_mechanism(vendor, Mechanism.GENERIC_SECRET_KEY_GEN)
    try:
        return session.generate_key(KeyType.GENERIC_SECRET, 256, store=False, mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                                    template={Attribute.VALUE_LEN: 32})  # 0.7.0 sets CKA_VALUE_LEN for AES only
    except PKCS11Error as exc:
        pytest.skip(f"the token makes no session generic secret key ({type(exc).__name__})")


@pytest.mark.check("search.by_key_type", layer="module", spec="PKCS#11 v3.0 §5.7.7 C_FindObjectsInit, §4.7 CKA_KEY_TYPE")
def test_by_key_type(vendor):
    """A search by CKA_KEY_TYPE finds keys of that type only (v3.0 §5.7.7): of an AES key and a generic secret key
    made by the check, {CKA_KEY_TYPE: CKK_AES} finds the AES key and not the other, and every object found is an
    AES key."""
    session = vendor.open_session()
    aes = secret_key(vendor, session, KeyType.AES, 128, what="search-key-type-aes")
    generic = generic_secret(vendor, session)
    got = list(session.get_objects({Attribute.KEY_TYPE: KeyType.AES}))
    types = sorted({obj[Attribute.KEY_TYPE].name for obj in got} - {KeyType.AES.name})
    assert aes in got, "a search for CKK_AES misses the AES key made"
    assert generic not in got, "a search for CKK_AES finds the generic secret key made"
    assert not types, f"a search for CKK_AES finds keys of types {types}"


BATCH_OBJECTS = 12
BATCHES = (1, 5, 12, 13, 64)  # one per call; a last partial batch; exactly all, then an empty call; one more; far more


@pytest.mark.check("search.default_batch", layer="module", spec="PKCS#11 v3.0 §5.7.8 C_FindObjects")
def test_default_batch(vendor):
    """C_FindObjects "continues a search for token and session objects that match a template, obtaining additional
    object handles" (v3.0 §5.7.8) until it returns none: get_objects() with the binding's default batch (one handle
    per call before 0.9, ten since) finds each of 12 matching objects exactly once."""
    private = private_flag(vendor)
    session = vendor.open_session()
    name = label("search-default-batch")
    made = data_objects(session, name, BATCH_OBJECTS, private=private)
    got = list(session.get_objects(by_label(name)))
    assert len(got) == BATCH_OBJECTS and set(got) == made, (
        f"the search gives {len(got)} objects, {len(set(got) & made)} distinct of the {BATCH_OBJECTS} made")


@pytest.mark.check("search.batch_sizes", layer="module", spec="PKCS#11 v3.0 §5.7.8 C_FindObjects ulMaxObjectCount")
def test_batch_sizes(vendor):
    """C_FindObjects returns "at most ulMaxObjectCount object handles" per call and zero once the search is done
    (v3.0 §5.7.8): get_objects(batch_size=N) finds each of 12 matching objects exactly once, whether N is 1, does not
    divide 12, is 12 (the next call returns none), 13 or far more. get_objects(batch_size=) exists since
    python-pkcs11 0.9.0: an older binding fetches one handle per call (search.default_batch covers that), and this
    check skips there, naming the binding."""
    if not batched_search():
        pytest.skip(f"python-pkcs11 {binding_version()} has no get_objects(batch_size=) (since 0.9.0)")
    private = private_flag(vendor)
    session = vendor.open_session()
    name = label("search-batch-sizes")
    made = data_objects(session, name, BATCH_OBJECTS, private=private)
    wrong = {}
    for batch in BATCHES:
        got = list(search_objects(session, by_label(name), batch))
        if len(got) != BATCH_OBJECTS or set(got) != made:
            wrong[batch] = f"{len(got)} objects, {len(set(got) & made)} distinct of those made"
    assert not wrong, f"searches for {BATCH_OBJECTS} objects with these batch sizes give: {wrong}"


MANY = 1000


@pytest.mark.check("search.many_objects", layer="module", spec="PKCS#11 v3.0 §5.7.7, §5.7.8 C_FindObjects")
def test_many_objects(vendor):
    """A search over many objects finds them all (v3.0 §5.7.8: C_FindObjects goes on until no more match): one
    get_objects() with the binding's default batch finds each of 1000 session data objects under one label exactly
    once."""
    private = private_flag(vendor)
    session = vendor.open_session()
    name = label("search-many")
    made = data_objects(session, name, MANY, private=private)
    got = list(session.get_objects(by_label(name)))
    assert len(got) == MANY and set(got) == made, (
        f"one search gives {len(got)} objects, {len(set(got) & made)} distinct of the {MANY} made")
