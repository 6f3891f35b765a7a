"""Sessions as applications open them: Token.open(rw=...) (C_OpenSession), read-only sessions, how many sessions a
token allows, and what C_GetSessionInfo says of them (PKCS#11 v3.0 §5.6; session states §5.2 / UG v2.40 §2.6)."""

from __future__ import annotations

from typing import Any

import pkcs11
import pytest
from pkcs11 import ObjectClass
from pkcs11.constants import Attribute

from ..binding import session_handle
from ..labels import label
from ..live.groundtruth import SessionState
from ..live.probes import OK, outcome_of


@pytest.mark.check("session.read_only_supported", layer="module", spec="PKCS#11 v3.0 §5.6.1 C_OpenSession, CKF_RW_SESSION")
def test_read_only_supported(vendor, observe):
    """C_OpenSession opens a read-only session when CKF_RW_SESSION is not set (v3.0 §5.6.1: "CKF_RW_SESSION
    ... set if the session is read/write; clear if read-only"): Token.open(rw=False) without a PIN. Records its
    outcome; a refusal fails."""
    result = outcome_of(lambda: vendor.open_session(login=False, rw=False))
    observe(result)
    assert result == OK, f"opening a read-only session was refused: {result}"


@pytest.mark.check("session.read_only_refuses_token_write", layer="module", spec="PKCS#11 v3.0 §5.6 (read-only sessions), §5.7.1 C_CreateObject, CKR_SESSION_READ_ONLY")
def test_read_only_refuses_token_write(vendor, observe):
    """"Read-only sessions ... cannot create, modify, or delete token objects" (v3.0 §5.6 / UG §2.6); C_CreateObject
    of a token object in one "fails with CKR_SESSION_READ_ONLY" (§5.7.1: "Only session objects can be created during
    a read-only session"). Records the exception class of a logged-in R/O session's create_object with CKA_TOKEN=true;
    no object may be left on the token (one the module made anyway is destroyed, and the check fails)."""
    if not vendor.disposable:
        pytest.skip("this check may make a token object (a module that ignores the session's read-only state), and "
                    "the token's profile is not disposable")
    missing = vendor.missing_capabilities()
    private = "public_data_objects" in missing and "private_data_objects" not in missing  # tpm2 refuses public ones
    name = label("session-read-only-token")
    vendor.token_objects.add(name)  # swept at the check's end (LiveVendor.reset) whatever happens
    read_only = vendor.open_session(login=True, rw=False)
    result = outcome_of(lambda: read_only.create_object({
        Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.PRIVATE: private,
        Attribute.LABEL: name, Attribute.VALUE: b"must not be stored"}))
    observe(result)
    writer = vendor.open_session(login=False)  # logged in already (the application is): sees private objects too
    left = list(writer.get_objects({Attribute.LABEL: name}))
    for obj in left:
        obj.destroy()
    assert not left, (f"a read-only session's C_CreateObject of a token object gave {result} and left "
                      f"{len(left)} token object(s) (destroyed now)")
    assert result == "SessionReadOnly", f"a read-only session's C_CreateObject of a token object gave {result}"


MAX_SESSIONS = 64


@pytest.mark.check("session.count", layer="module", spec="PKCS#11 v3.0 §5.6.1 C_OpenSession, CKR_SESSION_COUNT; §5.5 C_GetTokenInfo ulMaxSessionCount")
def test_count(vendor, observe):
    """How many R/W sessions one application may hold on the token, up to 64: records the number opened before the
    first refusal (and its class), or "64+". A token "can have a limit on the number of sessions"; C_OpenSession then
    fails with CKR_SESSION_COUNT (v3.0 §5.6.1) — another refusal fails, as does one before the first session. All
    are closed again."""
    sessions: list[Any] = []
    refused = None
    try:
        while len(sessions) < MAX_SESSIONS:
            sessions.append(vendor.open_session(login=False))
    except pkcs11.exceptions.PKCS11Error as exc:
        refused = type(exc).__name__
    opened = len(sessions)
    closing = [outcome_of(session.close) for session in sessions]
    observe({"opened": opened, "refused": refused} if refused else {"opened": f"{MAX_SESSIONS}+", "refused": None})
    assert opened > 0, f"not even one session opened: {refused}"
    assert refused in (None, "SessionCount"), f"session {opened + 1} was refused with {refused}, not SessionCount"
    assert set(closing) == {OK}, f"closing the {opened} sessions gave {sorted(set(closing))}"


def described(vendor: Any, session: Any) -> dict[str, Any]:
    info = vendor.ground_truth.session_info(session_handle(session))
    assert info is not None, "C_GetSessionInfo says an open session's handle is no session"
    assert info.slot_id == vendor.slot_id, f"C_GetSessionInfo gives slot {info.slot_id}, the session is on {vendor.slot_id}"
    return {"state": info.state.name, "rw": info.rw, "device_error": info.device_error}


@pytest.mark.check("session.info", layer="module", spec="PKCS#11 v3.0 §5.6.4 C_GetSessionInfo, §5.2 session states; UG v2.40 §2.6")
def test_info(vendor, observe):
    """C_GetSessionInfo "obtains information about a session" (v3.0 §5.6.4): its slot, its state and CKF_RW_SESSION.
    A read-only session opened while nobody is logged in is in "R/O Public Session" state; a R/W session logged in
    through is in "R/W User Functions"; and once the user is logged in the R/O session is in "R/O User Functions"
    (UG §2.6.5: every session of the application is logged in). Records the three."""
    read_only = vendor.open_session(login=False, rw=False)
    got = {"ro_public": described(vendor, read_only)}
    user = vendor.open_session(login=True, rw=True)
    got["rw_user"] = described(vendor, user)
    got["ro_after_login"] = described(vendor, read_only)
    observe(got)
    expected = {"ro_public": (SessionState.RO_PUBLIC_SESSION, False), "rw_user": (SessionState.RW_USER_FUNCTIONS, True),
                "ro_after_login": (SessionState.RO_USER_FUNCTIONS, False)}
    wrong = {what: got[what] for what, (state, rw) in expected.items()
             if (got[what]["state"], got[what]["rw"]) != (state.name, rw)}
    assert not wrong, f"C_GetSessionInfo gives {wrong}; expected {({k: (s.name, rw) for k, (s, rw) in expected.items()})}"
