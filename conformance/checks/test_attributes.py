"""Objects and their attributes as applications handle them: Session.create_object (C_CreateObject), Object.copy
(C_CopyObject), Object.destroy (C_DestroyObject), obj[Attribute.X] (C_GetAttributeValue) and obj[Attribute.X] = v
(C_SetAttributeValue); PKCS#11 v3.0 §4 (objects), §5.7 (object management functions). Data objects (CKO_DATA) and
AES keys; session objects unless the behaviour is about token objects."""

from __future__ import annotations

from typing import Any

import pytest
from pkcs11 import KeyType, ObjectClass
from pkcs11.constants import Attribute

from ..binding import session_handle
from ..labels import label
from ..live.keys import secret_key
from ..live.probes import OK, REFUSED, outcome_of, private_flag

VALUE = b"pkcs11-conformance data object"



def data_object(session: Any, name: str, *, private: bool, token: bool = False, value: bytes = VALUE) -> Any:
    return session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: token,
                                  Attribute.PRIVATE: private, Attribute.LABEL: name, Attribute.VALUE: value})


def found(session: Any, name: str) -> list[Any]:
    """The data objects labelled `name` the session can see."""
    return list(session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: name}))


def require_token_objects(vendor: Any) -> None:
    if not vendor.disposable:
        pytest.skip("this check makes a token object (CKA_TOKEN=true), and the token's profile is not disposable")


@pytest.mark.check("object.create_and_destroy", layer="module", spec="PKCS#11 v3.0 §5.7.1 C_CreateObject, §5.7.3 C_DestroyObject")
def test_create_and_destroy(vendor):
    """C_CreateObject "creates a new object" (v3.0 §5.7.1) and C_DestroyObject "destroys an object" (§5.7.3): a
    data object made is found by a search for its label, and after its destruction the same search finds nothing."""
    private = private_flag(vendor)
    session = vendor.open_session()
    name = label("attr-create-destroy")
    obj = data_object(session, name, private=private)
    before = len(found(session, name))
    assert before == 1, f"a search for the new object's label finds {before} objects, not 1"
    obj.destroy()
    after = len(found(session, name))
    assert after == 0, f"after C_DestroyObject a search for its label still finds {after} object(s)"


@pytest.mark.check("object.copy", layer="module", spec="PKCS#11 v3.0 §5.7.2 C_CopyObject")
def test_copy(vendor):
    """C_CopyObject "copies an object, creating a new object for the copy"; the template "may specify new values
    for any attributes of the object that can ordinarily be modified" (v3.0 §5.7.2): a data object copied with a new
    CKA_LABEL leaves two objects, the original under its label and the copy under the new one, with equal values."""
    private = private_flag(vendor)
    session = vendor.open_session()
    original_name, copy_name = label("attr-copy-original"), label("attr-copy-copy")
    original = data_object(session, original_name, private=private)
    copies: list[Any] = []
    result = outcome_of(lambda: copies.append(original.copy({Attribute.LABEL: copy_name})))
    if result == "FunctionNotSupported":
        pytest.skip("the token does not support C_CopyObject (CKR_FUNCTION_NOT_SUPPORTED)")
    assert result == OK, f"C_CopyObject with a new CKA_LABEL of a data object was refused: {result}"
    copy = copies[0]
    assert [len(found(session, original_name)), len(found(session, copy_name))] == [1, 1], (
        "after the copy, searches for the original's and the copy's labels find "
        f"{len(found(session, original_name))} and {len(found(session, copy_name))} objects, not 1 and 1")
    assert copy[Attribute.LABEL] == copy_name, f"the copy's label is {copy[Attribute.LABEL]!r}"
    assert original[Attribute.LABEL] == original_name, f"the original's label became {original[Attribute.LABEL]!r}"
    assert copy[Attribute.VALUE] == original[Attribute.VALUE] == VALUE, "the copy's CKA_VALUE differs from the original's"


@pytest.mark.check("object.set_attribute", layer="module", spec="PKCS#11 v3.0 §5.7.6 C_SetAttributeValue, §4.4 CKA_LABEL")
def test_set_attribute(vendor):
    """C_SetAttributeValue "modifies the value of one or more attributes of an object" (v3.0 §5.7.6), and CKA_LABEL
    of a storage object is modifiable (§4.4): the new label reads back, and a search finds the object under it and
    no longer under the old one."""
    private = private_flag(vendor)
    session = vendor.open_session()
    old, new = label("attr-set-old"), label("attr-set-new")
    obj = data_object(session, old, private=private)
    obj[Attribute.LABEL] = new
    assert obj[Attribute.LABEL] == new, f"CKA_LABEL reads back as {obj[Attribute.LABEL]!r} after it was set"
    counts = [len(found(session, old)), len(found(session, new))]
    assert counts == [0, 1], f"searches for the old and the new label find {counts[0]} and {counts[1]} objects, not 0 and 1"


# check id suffix -> (attribute, the value tried); the object is a data object for CKA_CLASS, an AES key for the other
READ_ONLY = {"class": (Attribute.CLASS, ObjectClass.SECRET_KEY), "key_type": (Attribute.KEY_TYPE, KeyType.GENERIC_SECRET)}


@pytest.mark.check("object.read_only_attribute_{attribute}", layer="module", spec="PKCS#11 v3.0 §4.2 Table 10 footnote 8, §5.7.6 C_SetAttributeValue, CKR_ATTRIBUTE_READ_ONLY")
@pytest.mark.parametrize("attribute", sorted(READ_ONLY))
def test_read_only_attribute(vendor, observe, attribute):
    """Only attributes marked "may be modified after object is created" (v3.0 §4.2, footnote 8) can be set;
    CKA_CLASS and CKA_KEY_TYPE are not, and C_SetAttributeValue of one is refused (§5.7.6: CKR_ATTRIBUTE_READ_ONLY
    is the code for an attribute that cannot be modified). Records the exception class; the value is unchanged."""
    attr, other = READ_ONLY[attribute]
    session = vendor.open_session()
    if attr == Attribute.CLASS:
        obj = data_object(session, label("attr-read-only-class"), private=private_flag(vendor))
    else:
        obj = secret_key(vendor, session, KeyType.AES, 128, what="read-only-key-type")
    before = obj[attr]

    def set_it() -> None:
        obj[attr] = other

    result = outcome_of(set_it)
    observe(result)
    after = obj[attr]
    assert result != OK, (f"C_SetAttributeValue of CKA_{attr.name} from {before.name} to {other.name} was accepted "
                          f"(it now reads {after.name})")
    assert after == before, f"the refused C_SetAttributeValue ({result}) still changed CKA_{attr.name} to {after.name}"


@pytest.mark.check("object.sensitive_latches", layer="module", spec="PKCS#11 v3.0 §4.2 Table 10 footnote 11, §4.10 secret key objects")
def test_sensitive_latches(vendor, observe):
    """CKA_SENSITIVE of a secret key "cannot be changed once set to CK_TRUE. It becomes a read only attribute"
    (v3.0 §4.2 footnote 11); "after an object is created, the CKA_SENSITIVE attribute may be changed, but only to the
    value CK_TRUE. ... Attempts to make other changes ... should return the error code CKR_ATTRIBUTE_READ_ONLY"
    (§4.10). Setting it back to false is refused (records the exception class) and it stays true."""
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="sensitive-latch",
                     template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True})

    def unset() -> None:
        key[Attribute.SENSITIVE] = False

    result = outcome_of(unset)
    observe(result)
    assert result != OK, "C_SetAttributeValue set CKA_SENSITIVE of a sensitive key back to false"
    assert key[Attribute.SENSITIVE] is True, "CKA_SENSITIVE reads false after the refused C_SetAttributeValue"


@pytest.mark.check("object.extractable_latches", layer="module", spec="PKCS#11 v3.0 §4.2 Table 10 footnote 12, §4.10 secret key objects")
def test_extractable_latches(vendor, observe):
    """CKA_EXTRACTABLE of a secret key "cannot be changed once set to CK_FALSE. It becomes a read only attribute"
    (v3.0 §4.2 footnote 12); "the CKA_EXTRACTABLE attribute may be changed, but only to the value CK_FALSE" (§4.10).
    Setting it to true is refused (records the exception class) and it stays false."""
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="extractable-latch",
                     template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})

    def set_extractable() -> None:
        key[Attribute.EXTRACTABLE] = True

    result = outcome_of(set_extractable)
    observe(result)
    assert result != OK, "C_SetAttributeValue set CKA_EXTRACTABLE of an unextractable key to true"
    assert key[Attribute.EXTRACTABLE] is False, "CKA_EXTRACTABLE reads true after the refused C_SetAttributeValue"


@pytest.mark.check("object.sensitive_value_unreadable", layer="module", spec="PKCS#11 v3.0 §5.7.5 C_GetAttributeValue, CKR_ATTRIBUTE_SENSITIVE; §4.2 footnote 7")
def test_sensitive_value_unreadable(vendor, observe):
    """CKA_VALUE of a secret key "cannot be revealed if object has its CKA_SENSITIVE attribute set to CK_TRUE"
    (v3.0 §4.2 footnote 7); C_GetAttributeValue then answers CKR_ATTRIBUTE_SENSITIVE (§5.7.5) — python-pkcs11's
    AttributeSensitive."""
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="sensitive-value",
                     template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True})
    result = outcome_of(lambda: key[Attribute.VALUE])
    observe(result)
    assert result == "AttributeSensitive", f"reading CKA_VALUE of a sensitive key gave {result}"


def private_object(vendor: Any, session: Any, name: str, *, token: bool) -> Any:
    """A private object labelled `name`: a data object, else (a token that refuses private data objects) an AES key."""
    if "private_data_objects" not in vendor.missing_capabilities():
        return data_object(session, name, private=True, token=token)
    missing = vendor.missing_capabilities()
    if "aes_keygen" in missing:
        pytest.skip(f"token makes no private data objects ({missing['private_data_objects']}) and no AES keys "
                    f"({missing['aes_keygen']})")
    return session.generate_key(KeyType.AES, 128, store=token, label=name, template={Attribute.PRIVATE: True})


def labelled(session: Any, name: str) -> list[Any]:
    return list(session.get_objects({Attribute.LABEL: name}))


@pytest.mark.check("object.private_invisible_to_public_session", layer="module", spec="PKCS#11 v3.0 §4.4 CKA_PRIVATE; UG v2.40 §2.6.5")
def test_private_invisible_to_public_session(vendor):
    """"When the CKA_PRIVATE attribute is CK_TRUE, a user may not access the object until the user has been
    authenticated to the token" (v3.0 §4.4). Login is per application (UG §2.6.5: all of its sessions are logged in
    or out together), so in one process a public session is one opened while the application is logged out: a
    private token object made by a logged-in session is found by another session while logged in, not found by it
    once the application logged out (python-pkcs11's Session.close: C_Logout), and found again after a new login
    (so it was hidden, not gone). A token object: a private session object is destroyed by C_Logout (§5.6.10),
    which would hide nothing."""
    require_token_objects(vendor)
    name = label("attr-private-hidden")
    vendor.token_objects.add(name)  # swept at the check's end (LiveVendor.reset) whatever happens
    other = vendor.open_session(login=False)
    user = vendor.open_session(login=True)
    private_object(vendor, user, name, token=True)
    seen = len(labelled(other, name))
    assert seen == 1, f"while logged in, another session of the application finds {seen} objects, not the 1 made"
    user.close()  # C_Logout, then C_CloseSession: the application is public
    state = vendor.ground_truth.session_info(session_handle(other)).state
    if state.logged_in:
        pytest.skip(f"after C_Logout the other session is still in state {state.name}: no public session to search "
                    "from (login.logout_applies_to_all_sessions)")
    hidden = len(labelled(other, name))
    again = vendor.open_session(login=True)
    back = labelled(again, name)
    for obj in back:
        obj.destroy()
    assert hidden == 0, f"a public session ({state.name}) finds {hidden} private object(s)"
    assert len(back) == 1, f"after logging in again the private token object is found {len(back)} times, not once"


@pytest.mark.check("object.logout_destroys_private_session_objects", layer="module", spec="PKCS#11 v3.0 §5.6.10 C_Logout")
def test_logout_destroys_private_session_objects(vendor):
    """C_Logout: "all private session objects from sessions belonging to the application are destroyed" (v3.0
    §5.6.10). A private session object made on a session that stays open is gone after the application logged out
    (python-pkcs11's Session.close of the logged-in session: C_Logout) and logged in again."""
    keeper = vendor.open_session(login=False)  # stays open: the object does not end with its session
    user = vendor.open_session(login=True)
    name = label("attr-logout-private")
    made = private_object(vendor, keeper, name, token=False)
    assert made[Attribute.PRIVATE] is True, "an object made with CKA_PRIVATE=true reads CKA_PRIVATE false"
    assert len(labelled(keeper, name)) == 1, "the private session object is not found while logged in"
    user.close()
    state = vendor.ground_truth.session_info(session_handle(keeper)).state
    if state.logged_in:
        pytest.skip(f"after C_Logout the other session is still in state {state.name}: the application did not log "
                    "out (login.logout_applies_to_all_sessions)")
    again = vendor.open_session(login=True)
    left = len(labelled(again, name))
    assert left == 0, f"after C_Logout and a new login, the private session object is still there ({left} found)"


@pytest.mark.check("object.token_object_persists", layer="module", spec="PKCS#11 v3.0 §4.4 CKA_TOKEN, §5.6.2 C_CloseSession")
def test_token_object_persists(vendor):
    """"Token objects are visible by any application which is connected to the token ... and remain on the token
    even after the sessions are closed" (v3.0 §4.4): a data object made with CKA_TOKEN=true is found, with its value,
    from a new session after the session that made it closed."""
    require_token_objects(vendor)
    private = private_flag(vendor)
    name = label("attr-token-persists")
    vendor.token_objects.add(name)  # swept at the check's end (LiveVendor.reset) whatever happens
    maker = vendor.open_session()
    try:
        data_object(maker, name, private=private, token=True)
        kind, value = ObjectClass.DATA, VALUE
    except REFUSED as exc:  # NSS softokn stores no data objects in its database: a token AES key instead
        if "aes_keygen" in vendor.missing_capabilities():
            pytest.skip(f"token makes no token data objects ({type(exc).__name__}) and no AES keys")
        maker.generate_key(KeyType.AES, 128, store=True, label=name)
        kind, value = ObjectClass.SECRET_KEY, None
    maker.close()
    fresh = vendor.open_session()
    objs = labelled(fresh, name)
    seen = [(obj[Attribute.CLASS], obj[Attribute.VALUE] if value is not None else None) for obj in objs]
    for obj in objs:
        obj.destroy()
    assert seen == [(kind, value)], (f"after its session closed, the token object (CKO_{kind.name}) is found "
                                     f"{len(seen)} times ({seen})")


@pytest.mark.check("object.empty_template_search", layer="module", spec="PKCS#11 v3.0 §5.7.7 C_FindObjectsInit")
def test_empty_template_search(vendor):
    """"To find all objects (excluding hidden objects), set ulCount to 0" (v3.0 §5.7.7): get_objects({}) (an empty
    template) finds at least every object the check made on that session — three data objects."""
    private = private_flag(vendor)
    session = vendor.open_session()
    made = {data_object(session, label(f"attr-empty-template-{i}"), private=private) for i in range(3)}
    every = set(session.get_objects({}))
    assert made <= every, f"an empty-template search misses {len(made - every)} of the {len(made)} objects made"


@pytest.mark.check("object.attribute_types", layer="binding", spec="python-pkcs11 attribute handlers; PKCS#11 v3.0 §4.2 CK_OBJECT_CLASS, §4.4 CKA_LABEL, §4.7 CKA_ID, §4.10 CKA_VALUE")
def test_attribute_types(vendor, observe):
    """How python-pkcs11 hands back the attributes applications read most (records the Python type of each, on a
    non-sensitive AES key): CKA_LABEL (an RFC 2279 string, v3.0 §4.4), CKA_ID and CKA_VALUE (byte arrays), CKA_CLASS
    (a CK_OBJECT_CLASS). CKA_ID, CKA_VALUE and CKA_CLASS read back as made (the label is left as the key helper set
    it: a token key's label is what the per-check sweep finds it by)."""
    session = vendor.open_session()
    key_id = b"\x01\x02\x03"
    key = secret_key(vendor, session, KeyType.AES, 128, what="attribute-types",
                     template={Attribute.ID: key_id, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
    read = {attr.name: key[attr] for attr in (Attribute.LABEL, Attribute.ID, Attribute.VALUE, Attribute.CLASS)}
    observe({attr: type(value).__name__ for attr, value in read.items()})
    assert read["ID"] == key_id, f"CKA_ID reads back as {read['ID']!r}"
    assert len(read["VALUE"]) == 16, f"CKA_VALUE of an AES-128 key is {len(read['VALUE'])} bytes"
    assert read["CLASS"] == ObjectClass.SECRET_KEY, f"CKA_CLASS reads back as {read['CLASS']!r}"

