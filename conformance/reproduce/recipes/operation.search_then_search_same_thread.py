"""PKCS#11 v3.0 §5.7.7: "At most one search operation may be active at a given time in a given session" — a second
C_FindObjectsInit while a search is active must be refused (CKR_OPERATION_ACTIVE: python-pkcs11's OperationActive,
which its Concurrency page tells applications to expect from an unconsumed iterator)."""

import pkcs11
from pkcs11 import Attribute, ObjectClass

LABEL = "pkcs11-conformance reproducer"


def reproduce(token, pin):
    with token.open(rw=True, user_pin=pin) as session:
        for _ in range(3):  # session objects: they go with the session
            session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False,
                                   Attribute.LABEL: LABEL, Attribute.VALUE: b"x"})
        first = session.get_objects({Attribute.LABEL: LABEL})
        next(first)  # the search starts at the first next()
        try:
            found = len(list(session.get_objects({Attribute.LABEL: LABEL})))
        except pkcs11.exceptions.OperationActive:
            return False, "a second search on the session was refused: OperationActive"
        finally:
            del first
        return True, f"a second search ran while the first was active (it found {found} objects)"
