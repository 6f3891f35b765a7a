"""Judging the module alone: the PKCS#11 answers it gave to the calls it was made, as the tap logged them, against
what the spec requires in the state those calls left — no python-pkcs11, no provider in the judgement.

When a check or a scenario fails at the binding or the provider layer, this says whether the module itself broke
a rule on the way (then the finding is the module's, and the reason quotes its answers, e.g. "C_FindObjectsFinal
returned CKR_OK, then C_FindObjectsInit got CKR_OPERATION_ACTIVE"), or answered every call as the spec says (the
module is cleared, and the blame stays).

Only answers the module gave while it was called one call at a time count: python-pkcs11 initialises modules
with C_Initialize(NULL), which promises them no concurrent calls (v3.0 §5.4), so from the first two calls that
overlapped (free-running stress, a finaliser on another thread) on, the module is excused — and the order of the
effects of overlapping calls is unknown anyway. State is tracked per session handle, learnt from the log itself: a session first seen mid-log starts "unknown" and
is learnt from its answers, so a log that begins after sessions were opened gives no false findings. The rules are
tables: what a call must (or must not) return in each state, and what each answer does to the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .cryptoki import FUNCTION_INDEX, rv_name

OK = 0x0
GENERAL_ERROR, FUNCTION_FAILED, DEVICE_ERROR = 0x5, 0x6, 0x30
OPERATION_ACTIVE, OPERATION_NOT_INITIALIZED = 0x90, 0x91
SESSION_CLOSED, SESSION_HANDLE_INVALID = 0xB0, 0xB3
USER_ALREADY_LOGGED_IN, USER_NOT_LOGGED_IN = 0x100, 0x101
INVALID_SESSION = frozenset({SESSION_CLOSED, SESSION_HANDLE_INVALID})
# v3.0 §5.1.1: the module's own failure, whatever the call ("some horrible, unrecoverable error has occurred").
OWN_FAILURES = frozenset({GENERAL_ERROR, FUNCTION_FAILED, DEVICE_ERROR})
HISTORY = 6  # answers on a handle kept as a deviation's evidence
CRYPTO_INITS = frozenset({"C_EncryptInit", "C_DecryptInit", "C_DigestInit", "C_SignInit", "C_VerifyInit",
                          "C_SignRecoverInit", "C_VerifyRecoverInit"})
SESSION_FUNCTIONS_FROM = 13  # C_CloseSession and every function after it take a session handle first ...
NOT_SESSION = frozenset({"C_CloseAllSessions", "C_WaitForSlotEvent"})  # ... except these


@dataclass(frozen=True)
class RawCall:
    """One call as the tap logged it: function name, first argument (slot or session), `out` (C_OpenSession: the
    new handle; C_FindObjects: objects returned; C_Login: user type), CK_RV."""

    function: str
    arg: int
    rv: int
    out: int = 0  # C_GetSessionInfo (the harness's own): the CK_STATE it reported
    started: float = 0.0  # when it entered and returned (monotonic seconds; 0, 0: one after the other, in order)
    ended: float = 0.0


@dataclass(frozen=True)
class Rule:
    """In `state` (of the session's search, or of the application's login), `function` must return one of
    `allowed` — or anything but `refused`."""

    function: str
    state: str
    allowed: frozenset[int] | None = None
    refused: frozenset[int] = frozenset()
    spec: str = ""

    def breaks(self, call: RawCall) -> bool:
        if self.function == "C_GetSessionInfo":  # judged on the state it reports, when it answered
            return call.rv == OK and self.allowed is not None and call.out not in self.allowed
        return (self.allowed is not None and call.rv not in self.allowed) or call.rv in self.refused


_FIND = "PKCS#11 v3.0 §5.7.7 (C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal), §5.1.6"
_LOGIN = "PKCS#11 v3.0 §5.6.8 C_Login, §5.6.10 C_Logout"
_CLOSED = "PKCS#11 v3.0 §5.6.2 C_CloseSession, §5.1.2 CKR_SESSION_HANDLE_INVALID"
_STATE = "PKCS#11 UG v2.40 §2.6.5 (every session of an application shares its login), v3.0 §5.6.5 C_GetSessionInfo"
STATE_NAMES = {0: "RO_PUBLIC_SESSION", 1: "RO_USER_FUNCTIONS", 2: "RW_PUBLIC_SESSION", 3: "RW_USER_FUNCTIONS",
               4: "RW_SO_FUNCTIONS"}

# What each call must return, by state: "find:active|idle" (the session's search), "login:in|out" (the
# application's login on the token), "session:closed" (a handle this log saw closed and not opened again).
RULES: tuple[Rule, ...] = (
    Rule("C_FindObjectsInit", "find:active", allowed=frozenset({OPERATION_ACTIVE}), spec=_FIND),
    Rule("C_FindObjectsInit", "find:idle", refused=frozenset({OPERATION_ACTIVE, OPERATION_NOT_INITIALIZED}), spec=_FIND),
    Rule("C_FindObjects", "find:active", allowed=frozenset({OK}), spec=_FIND),
    Rule("C_FindObjects", "find:idle", allowed=frozenset({OPERATION_NOT_INITIALIZED}), spec=_FIND),
    Rule("C_FindObjectsFinal", "find:active", allowed=frozenset({OK}), spec=_FIND),
    Rule("C_FindObjectsFinal", "find:idle", allowed=frozenset({OPERATION_NOT_INITIALIZED}), spec=_FIND),
    Rule("C_Login", "login:in", allowed=frozenset({USER_ALREADY_LOGGED_IN}), spec=_LOGIN),
    Rule("C_Login", "login:out", refused=frozenset({USER_ALREADY_LOGGED_IN}), spec=_LOGIN),
    Rule("C_Logout", "login:in", allowed=frozenset({OK}), spec=_LOGIN),
    Rule("C_Logout", "login:out", allowed=frozenset({USER_NOT_LOGGED_IN}), spec=_LOGIN),
    Rule("C_CloseSession", "session:open", allowed=frozenset({OK}), spec=_CLOSED),
    # The state C_GetSessionInfo reports (`out`, CK_STATE) follows the application's login (UG v2.40 §2.6.5).
    Rule("C_GetSessionInfo", "login:in", allowed=frozenset({1, 3, 4}), spec=_STATE),
    Rule("C_GetSessionInfo", "login:out", allowed=frozenset({0, 2}), spec=_STATE),
    Rule("*", "session:closed", allowed=INVALID_SESSION, spec=_CLOSED),
)
_BY_KEY: Mapping[tuple[str, str], Rule] = {(r.function, r.state): r for r in RULES}
# Any call: CKR_GENERAL_ERROR & co. are the module's own failure (v3.0 §5.1.1).
OWN_RULE = Rule("*", "own", refused=OWN_FAILURES, spec="PKCS#11 v3.0 §5.1.1")

# What an answer does: (function, rv) -> new search state of the session ("active" / "idle"), None: unchanged.
FIND_AFTER: Mapping[tuple[str, int], str] = {
    ("C_FindObjectsInit", OK): "active", ("C_FindObjectsInit", OPERATION_ACTIVE): "active",
    ("C_FindObjects", OK): "active", ("C_FindObjects", OPERATION_NOT_INITIALIZED): "idle",
    ("C_FindObjectsFinal", OK): "idle", ("C_FindObjectsFinal", OPERATION_NOT_INITIALIZED): "idle",
}
LOGIN_AFTER: Mapping[tuple[str, int], str] = {
    ("C_Login", OK): "in", ("C_Login", USER_ALREADY_LOGGED_IN): "in",
    ("C_Logout", OK): "out", ("C_Logout", USER_NOT_LOGGED_IN): "out",
}


@dataclass(frozen=True)
class RawDeviation:
    """The first answer of the module that breaks a rule: which call (its place in the log), what it returned,
    what the rule allowed, and the answer before it on the same session that set the state."""

    index: int
    call: RawCall
    rule: Rule
    because: str  # the earlier answer that made the state, e.g. "C_FindObjectsFinal returned CKR_OK"
    history: tuple[str, ...] = ()  # the answers on that handle before it, oldest first (the evidence)

    def describe(self) -> str:
        got = f"{self.call.function} got {rv_name(self.call.rv)}"
        if self.rule.function == "C_GetSessionInfo":
            got += f" with state {STATE_NAMES.get(self.call.out, self.call.out)}"
        if self.rule.state == "own":
            return f"module: {got} (its own failure)"
        return f"module: {self.because}, then {got}" if self.because else f"module: {got}"


@dataclass
class _Session:
    history: list[str] = field(default_factory=list)  # the last answers on this handle, as text (evidence)
    find: str | None = None  # active | idle | None (unknown)
    closed: bool = False
    # A cryptographic operation may be active (an *Init returned CKR_OK; whether it ended is not always in the log:
    # a single-part call may be a length query). Modules may refuse a search meanwhile (implementation-defined).
    crypto: bool = False
    last: str = ""  # the answer that last set this session's state, as text


@dataclass
class RawState:
    sessions: dict[int, _Session] = field(default_factory=dict)
    login: str | None = None  # in | out | None (unknown)
    login_because: str = ""


class RawJudge:
    """The module judged command by command (a check, a schedule, a stress round), as its calls come: the first
    deviation is kept (a broken state rule for good; the module's own failure only for its command). In a command
    where two calls overlapped, nothing from the overlap on counts, and the state is learnt afresh from the next
    command on."""

    def __init__(self) -> None:
        self.state = RawState()
        self.deviation: RawDeviation | None = None
        self.calls = 0

    def feed(self, command: Iterable[RawCall]) -> RawDeviation | None:
        segment = list(command)
        if self.deviation is not None and self.deviation.rule is OWN_RULE:
            # The module's own failure (CKR_GENERAL_ERROR & co.) answers one call of one command and leaves no state
            # the rules follow wrong: it takes the blame for the command it came in, not for every later one (a
            # crypto check provokes it on purpose: SoftHSM answers a bad padding with CKR_GENERAL_ERROR, and a
            # binding finding much later must stay the binding's). What the module holds after it is learnt afresh.
            self.deviation, self.state = None, RawState()
        if self.deviation is None:
            serial = _serial_prefix(segment)
            self.deviation = _first_deviation(segment[:serial], self.state, self.calls)
            if serial < len(segment):
                self.state = RawState()  # the module was driven concurrently: what it holds now is unknown
        self.calls += len(segment)
        return self.deviation


def judge_calls(calls: Iterable[RawCall], starts: Iterable[int] = ()) -> RawDeviation | None:
    """The first answer in `calls` (oldest first, in the order they returned) that breaks a rule of RULES while the
    module was being called one call at a time, or None: the module answered every such call as the spec says, as
    far as the log shows. `starts`: where each command began in `calls` (see RawJudge)."""
    logged = list(calls)
    bounds = sorted({0, *(i for i in starts if 0 < i < len(logged)), len(logged)})
    judge = RawJudge()
    for begin, end in zip(bounds, bounds[1:]):
        if judge.feed(logged[begin:end]) is not None:
            break
    return judge.deviation


def _serial_prefix(calls: list[RawCall]) -> int:
    """How many calls, from the first, came one at a time: the log is cut before the first call that overlapped
    another (timestamps 0, 0: one after the other)."""
    for i in range(1, len(calls)):
        if calls[i].ended > 0.0 and calls[i].started < calls[i - 1].ended:
            # Returns are in order, so every earlier call still running when this one began overlapped it.
            j = i - 1
            while j > 0 and calls[j - 1].ended > calls[i].started:
                j -= 1
            return j
    return len(calls)


def _first_deviation(calls: list[RawCall], state: RawState, offset: int = 0) -> RawDeviation | None:
    for index, call in enumerate(calls, offset):
        said = f"{call.function} returned {rv_name(call.rv)}"
        if call.function == "C_OpenSession":
            if call.rv == OK:
                before = state.sessions.get(call.out)
                history = [*(before.history[-(HISTORY - 2):] if before else []), f"#{index} {said} (handle {call.out})"]
                state.sessions[call.out] = _Session(history, find="idle", last=said)
            continue
        if call.function == "C_CloseAllSessions":
            if call.rv == OK:
                for session in state.sessions.values():
                    session.closed, session.last = True, said
                state.login, state.login_because = "out", said
            continue
        if call.function in NOT_SESSION or _index(call.function) < SESSION_FUNCTIONS_FROM:
            if call.rv in OWN_FAILURES:
                return RawDeviation(index, call, OWN_RULE, "")
            continue
        session = state.sessions.setdefault(call.arg, _Session())
        rule, because = _rule_for(call, session, state)
        if rule is not None and rule.breaks(call):
            return RawDeviation(index, call, rule, because, tuple(session.history))
        if rule is None and call.rv in OWN_FAILURES:
            return RawDeviation(index, call, OWN_RULE, "")
        _apply(call, session, state, said)
        session.history = [*session.history[-(HISTORY - 1):], f"#{index} {said}"]
    return None


def _rule_for(call: RawCall, session: _Session, state: RawState) -> tuple[Rule | None, str]:
    """The rule for `call` in the current state, and the answer that set that state. (Only calls that came one at a
    time are judged, so that answer came before this call began.)"""
    if session.closed:
        return _BY_KEY[("*", "session:closed")], session.last
    if call.function in ("C_Login", "C_Logout", "C_GetSessionInfo") and state.login is not None:
        return _BY_KEY.get((call.function, f"login:{state.login}")), state.login_because
    if session.find is not None and (call.function, f"find:{session.find}") in _BY_KEY:
        if call.function == "C_FindObjectsInit" and session.crypto and call.rv == OPERATION_ACTIVE:
            return None, ""  # refused for the cryptographic operation that may be active: allowed
        return _BY_KEY[(call.function, f"find:{session.find}")], session.last
    if call.function == "C_CloseSession" and session.find is not None:  # a session this log saw opened
        return _BY_KEY[("C_CloseSession", "session:open")], session.last
    return None, ""


def _apply(call: RawCall, session: _Session, state: RawState, said: str) -> None:
    if call.rv in INVALID_SESSION:
        session.closed, session.last = True, said  # learnt: the module says this handle is not a session
        return
    if session.closed:
        return
    if call.function == "C_CloseSession" and call.rv == OK:
        session.closed, session.find, session.last = True, None, said
        if not any(not other.closed for other in state.sessions.values()):
            # Perhaps the application's last session: that logs it out (v3.0 §5.6.2); sessions opened before the
            # log began may remain, so the login is unknown from here.
            state.login = None
        return
    if call.function in CRYPTO_INITS and call.rv == OK:
        session.crypto = True
    after = FIND_AFTER.get((call.function, call.rv))
    if (call.function, call.rv) == ("C_FindObjectsInit", OPERATION_ACTIVE) and session.crypto:
        after = None  # refused for the search, or for the cryptographic operation: the search state is unknown
        session.find = None
    if after is not None:
        session.find, session.last = after, said
    login = LOGIN_AFTER.get((call.function, call.rv))
    if login is not None:
        state.login, state.login_because = login, said


def _index(function: str) -> int:
    return FUNCTION_INDEX.get(function, len(FUNCTION_INDEX))
