"""The module judged alone (engine/rawspec.py): its answers to the calls the tap logged, against PKCS#11's session,
search and login rules — a deviation is named with the answer that set the state; allowed variations pass."""

from __future__ import annotations

from conformance.engine.rawspec import (
    GENERAL_ERROR, OK, OPERATION_ACTIVE, SESSION_HANDLE_INVALID, USER_ALREADY_LOGGED_IN, RawCall, RawJudge,
    judge_calls,
)

H, SLOT = 7, 1


def opened(handle: int = H) -> RawCall:
    return RawCall("C_OpenSession", SLOT, OK, out=handle)


def search(handle: int = H, found: int = 2) -> list[RawCall]:
    return [RawCall("C_FindObjectsInit", handle, OK), RawCall("C_FindObjects", handle, OK, out=found),
            RawCall("C_FindObjectsFinal", handle, OK)]


def test_a_module_that_follows_the_rules_is_cleared():
    """v3.0 §5.7.7: init, fetch, final, and again; a login, a logout; the session closed: no deviation."""
    calls = [opened(), *search(), *search(), RawCall("C_Login", H, OK, out=1), RawCall("C_Logout", H, OK),
             RawCall("C_CloseSession", H, OK)]
    assert judge_calls(calls) is None


def test_a_search_that_does_not_end_is_the_modules():
    """§5.7.7: after C_FindObjectsFinal returned CKR_OK the search is over, so a new C_FindObjectsInit must not get
    CKR_OPERATION_ACTIVE; the reason quotes the answer that ended it."""
    deviation = judge_calls([opened(), *search(), RawCall("C_FindObjectsInit", H, OPERATION_ACTIVE)])
    assert deviation is not None and deviation.index == 4
    assert deviation.describe() == ("module: C_FindObjectsFinal returned CKR_OK, then C_FindObjectsInit got "
                                    "CKR_OPERATION_ACTIVE")


def test_a_second_search_on_an_active_session_must_be_refused():
    """§5.1.6 / §5.7.7: C_FindObjectsInit while a search is active on the session returns CKR_OPERATION_ACTIVE."""
    calls = [opened(), RawCall("C_FindObjectsInit", H, OK), RawCall("C_FindObjectsInit", H, OK)]
    assert judge_calls(calls).describe() == "module: C_FindObjectsInit returned CKR_OK, then C_FindObjectsInit got CKR_OK"


def test_a_closed_session_must_be_gone():
    """§5.6.2: after C_CloseSession returned CKR_OK the handle is no session: calls on it get
    CKR_SESSION_HANDLE_INVALID (or CKR_SESSION_CLOSED)."""
    deviation = judge_calls([opened(), RawCall("C_CloseSession", H, OK), RawCall("C_GenerateRandom", H, OK)])
    assert deviation is not None and deviation.rule.state == "session:closed"


def test_a_second_login_must_say_already_logged_in():
    """§5.6.8: C_Login when the application is logged in returns CKR_USER_ALREADY_LOGGED_IN."""
    calls = [opened(), opened(8), RawCall("C_Login", H, OK, out=1), RawCall("C_Login", 8, OK, out=1)]
    assert judge_calls(calls).describe() == "module: C_Login returned CKR_OK, then C_Login got CKR_OK"
    assert judge_calls([opened(), opened(8), RawCall("C_Login", H, OK, out=1),
                        RawCall("C_Login", 8, USER_ALREADY_LOGGED_IN, out=1)]) is None


def test_a_log_that_starts_mid_search_gives_no_false_finding():
    """A session the log never saw opened starts unknown and is learnt from its answers: a refused init there is
    taken as an active search, not as a deviation."""
    calls = [RawCall("C_FindObjectsInit", 3, OPERATION_ACTIVE), RawCall("C_FindObjects", 3, OK, out=0),
             RawCall("C_FindObjectsFinal", 3, OK), *search(3)]
    assert judge_calls(calls) is None


def test_a_general_error_is_the_modules_own_failure():
    """§5.1.1: CKR_GENERAL_ERROR is the module's own unrecoverable failure, whatever it was asked."""
    deviation = judge_calls([opened(), RawCall("C_GenerateRandom", H, GENERAL_ERROR)])
    assert deviation.describe() == "module: C_GenerateRandom got CKR_GENERAL_ERROR (its own failure)"


def test_allowed_variations_pass():
    """What the spec allows is not a deviation: a handle handed out again after its session closed, and
    C_FindObjects returning fewer objects than asked (one at a time)."""
    calls = [opened(), RawCall("C_CloseSession", H, OK), RawCall("C_GetSessionInfo", H, SESSION_HANDLE_INVALID),
             opened(), RawCall("C_FindObjectsInit", H, OK), *(RawCall("C_FindObjects", H, OK, out=1) for _ in range(3)),
             RawCall("C_FindObjects", H, OK, out=0), RawCall("C_FindObjectsFinal", H, OK)]
    assert judge_calls(calls) is None


def test_answers_of_overlapping_calls_conclude_nothing():
    """Two calls on one session at once (another thread, a finaliser): the order of their effects is unknown, so
    an init that ran while the final was still inside the module is no finding; one that came after it is."""
    final = RawCall("C_FindObjectsFinal", H, OK, started=1.0, ended=2.0)
    overlapping = RawCall("C_FindObjectsInit", H, OPERATION_ACTIVE, started=1.5, ended=2.1)  # returned after it
    later = RawCall("C_FindObjectsInit", H, OPERATION_ACTIVE, started=2.5, ended=2.6)
    start = [RawCall("C_OpenSession", SLOT, OK, out=H, started=0.1, ended=0.2),
             RawCall("C_FindObjectsInit", H, OK, started=0.3, ended=0.4)]
    assert judge_calls([*start, final, overlapping]) is None
    assert judge_calls([*start, final, later]) is not None


def test_an_answer_given_to_two_threads_at_once_is_excused():
    """v3.0 §5.4: python-pkcs11's C_Initialize(NULL) promises the module no concurrent calls, so a failure while
    another call was inside the module is not the module's; the same failure alone is."""
    alone = RawCall("C_GenerateRandom", H, GENERAL_ERROR, started=1.0, ended=1.1)
    other = RawCall("C_GenerateRandom", 8, OK, started=1.05, ended=1.2)
    assert judge_calls([opened(), opened(8), alone, other]) is None
    assert judge_calls([opened(), opened(8), alone]) is not None


def test_a_session_state_must_follow_the_login():
    """UG v2.40 §2.6.5: every session of an application shares its login, so C_GetSessionInfo of a session opened
    after C_Login must report a user state; closing what may be the last session makes the login unknown."""
    lying = [opened(), RawCall("C_Login", H, OK, out=1), opened(8), RawCall("C_GetSessionInfo", 8, OK, out=2)]
    assert judge_calls(lying).describe() == ("module: C_Login returned CKR_OK, then C_GetSessionInfo got CKR_OK with "
                                             "state RW_PUBLIC_SESSION")
    last_closed = [opened(), RawCall("C_Login", H, OK, out=1), RawCall("C_CloseSession", H, OK), opened(8),
                   RawCall("C_Login", 8, OK, out=1)]
    assert judge_calls(last_closed) is None


def test_a_search_refused_during_a_crypto_operation_is_allowed():
    """A module may refuse C_FindObjectsInit while a cryptographic operation is active on the session (SoftHSM does;
    implementation-defined): after a C_EncryptInit the refusal is no deviation, on a fresh session it is."""
    during = [opened(), RawCall("C_EncryptInit", H, OK), RawCall("C_EncryptUpdate", H, OK),
              RawCall("C_FindObjectsInit", H, OPERATION_ACTIVE), RawCall("C_FindObjectsFinal", H, 0x91)]
    assert judge_calls(during) is None
    assert judge_calls([opened(), RawCall("C_FindObjectsInit", H, OPERATION_ACTIVE)]) is not None


def test_the_modules_own_failure_is_blamed_only_for_its_command():
    """§5.1.1: CKR_GENERAL_ERROR is the module's own failure, for the command it answered in; a later command the
    module answers by the rules is judged clean (an earlier check provoked the error on purpose: SoftHSM answers a
    bad padding so); a broken state rule stays the module's for every later command."""
    judge = RawJudge()
    assert judge.feed([opened(), RawCall("C_Decrypt", H, GENERAL_ERROR)]) is not None
    assert judge.feed([opened(8), *search(8)]) is None
    judge.feed([opened(9), *search(9), RawCall("C_FindObjectsInit", 9, OPERATION_ACTIVE)])
    assert judge.feed([opened(10), *search(10)]) is not None
