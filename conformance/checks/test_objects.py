"""Object lifetime (PKCS#11 v3.0 §4.4 Object types; §5.6.2 C_CloseSession)."""

from __future__ import annotations

import uuid

import pytest
from pkcs11 import ObjectClass
from pkcs11.constants import Attribute

from ..live.probes import make_data_objects


@pytest.mark.check("object.session_objects_end_with_session", layer="module", spec="PKCS#11 v3.0 §4.4, §5.6.2")
def test_session_objects_end_with_session(vendor):
    """v3.0 §4.4: "session objects are destroyed when the session that created them is closed" (§5.6.2: closing
    a session destroys the session objects it created). An application relying on that leaks objects otherwise."""
    session = vendor.open_session()
    created = make_data_objects(session, 1, tag=f"lifetime-{uuid.uuid4().hex[:8]}")  # unique: nothing else matches
    label = created[0][Attribute.LABEL]
    del created
    session.close()
    fresh = vendor.open_session()
    found = list(fresh.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label}))
    assert not found, f"the session object {label!r} is still on the token after its session closed"
