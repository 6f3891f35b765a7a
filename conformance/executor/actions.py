"""What each schedule operation does against the real binding, inside the executor child.

Each action takes the World (refs made so far, the live module) and the step's arguments, makes exactly the
python-pkcs11 call(s) the operation names, and returns a small JSON summary. Exceptions propagate to the actor,
which records their class name only (never their message: modules may echo arguments).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any, Callable

import pkcs11
from pkcs11 import KeyType, Mechanism, ObjectClass
from pkcs11.constants import Attribute

from ..binding import search_objects, session_handle
from ..engine.vocabulary import CHUNKS, CIPHER_CHUNKS, FIXTURE_OBJECTS
from ..labels import label
from ..live.stepkeys import mac_key, signed, verified
from ..outcomes import ReportsFinding

__all__ = ["ACTIONS", "CHUNKS", "FIXTURE_LABEL", "FIXTURE_OBJECTS", "World"]

FIXTURE_LABEL = label("fixture")  # the child starts with the run's tag in its environment
SEARCH = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: FIXTURE_LABEL}
IV = bytes(16)


class ProviderOpenFailed(pkcs11.exceptions.TokenNotPresent):
    """Raised by the harness's opener when a schedule told it to fail (stands for 'token gone')."""


class NotASession(ReportsFinding, TypeError):
    """The provider's acquire() gave something that is not a pkcs11.Session (the --sut contract): the provider's
    finding, although it surfaces in the harness's code that uses it."""


class RefGone(ReportsFinding, LookupError):
    """A step names a ref the real run does not have: the step that was to make it failed (a refused login, a
    provider that raised), or nothing is held to release. The model leaves such steps unjudged (vocabulary.ANY);
    the step's outcome says so instead of a KeyError that would read as the harness's own bug."""


class Refs(dict):
    """ref -> object; a missing ref raises RefGone."""

    def __missing__(self, ref: str) -> Any:
        raise RefGone(f"{ref} was never made in this run")

    def __delitem__(self, ref: str) -> None:
        if ref not in self:
            raise RefGone(f"{ref} was never made in this run")
        super().__delitem__(ref)


def _provided(session: Any) -> Any:
    if not isinstance(session, pkcs11.types.Session):
        raise NotASession(f"acquire() returned {type(session).__name__}, not a pkcs11.Session")
    return session


@dataclass
class World:
    """Everything a schedule's steps refer to, by ref name. Touched only by actor threads, one step at a time."""

    token: Any
    pin: str
    ground_truth: Any
    sessions: Refs = field(default_factory=Refs)
    keys: Refs = field(default_factory=Refs)
    macs: dict[str, tuple[Any, bytes]] = field(default_factory=dict)  # session ref -> (HMAC key, its CKA_VALUE)
    iterators: Refs = field(default_factory=Refs)
    provider: Any = None
    provider_holds: dict[int, list[Any]] = field(default_factory=dict)  # actor -> sessions it acquired
    provider_seen: list[Any] = field(default_factory=list)  # sessions the provider handed out, in order (p0, p1, ...)
    iterator_owner: dict[str, int] = field(default_factory=dict)  # iterator -> actor that started it (holds the lock)
    opened_handles: list[int] = field(default_factory=list)  # every session handle the steps opened
    provider_handles: list[int] = field(default_factory=list)  # the ones the provider's opener opened
    open_calls: int = 0
    fail_next_open: bool = False
    opened_at: dict[str, int] = field(default_factory=dict)  # ref -> its index in opened_handles
    unaccounted: list[int] = field(default_factory=list)  # indexes in opened_handles: sessions a refused login left

    def is_open(self, ref: str) -> bool:
        """Ground truth for one ref: its handle is a live session *and* no session opened after it was given the
        same handle (modules may reuse a closed session's handle: OpenCryptoki and tpm2-pkcs11 do)."""
        handle = session_handle(self.sessions[ref])
        if handle in self.opened_handles[self.opened_at.get(ref, -1) + 1:]:
            return False
        return self.ground_truth.session_info(handle) is not None

    def open(self, login: bool) -> Any:
        """Token.open as a service calls it. When the login is refused, python-pkcs11 0.10.1 has already opened a
        session it never closes (binding.failed_login_leaks_session), and a module that reuses handles may give it
        the handle of a ref closed earlier: find it among the handles that went live, so that ref is not taken
        for open again and the end of the example counts it as the leak it is."""
        window = self._window() if login else range(0)
        before = self._live_handles(window)
        try:
            return self.token.open(rw=True, user_pin=self.pin if login else None)
        except Exception:
            if window:
                for handle in sorted(self._live_handles(window) - before):
                    self.unaccounted.append(len(self.opened_handles))
                    self.opened_handles.append(handle)
            raise

    def unaccounted_open(self) -> int:
        """Sessions left by refused logins that are still open (and whose handle no later session took)."""
        return sum(1 for i in self.unaccounted
                   if self.opened_handles[i] not in self.opened_handles[i + 1:]
                   and self.ground_truth.session_info(self.opened_handles[i]) is not None)

    def _window(self) -> range:
        # Only a handle some ref had can be mistaken for that ref; a leak elsewhere is found by the end-of-example
        # probe around the known handles (child._final).
        if not self.opened_handles:
            return range(0)
        lo, hi = min(self.opened_handles), max(self.opened_handles)
        return range(lo, hi + 1) if hi - lo <= 4096 else range(0)

    def _live_handles(self, window: range) -> set[int]:
        return {h for h in window if self.ground_truth.session_info(h) is not None}

    def open_session(self) -> Any:
        """The --sut contract's open_session: R/W, user logged in; fails once when told to."""
        self.open_calls += 1
        if self.fail_next_open:
            self.fail_next_open = False
            raise ProviderOpenFailed("made to fail on purpose by the harness")
        session = self.open(login=True)
        self.opened_handles.append(session_handle(session))
        self.provider_handles.append(session_handle(session))
        return session

    def label_of(self, session: Any) -> str:
        """p0, p1, ... by identity; the list keeps each object alive, so an id() is never reused for another."""
        for i, seen in enumerate(self.provider_seen):
            if seen is session:
                return f"p{i}"
        self.provider_seen.append(session)
        return f"p{len(self.provider_seen) - 1}"


def _open(w: World, actor: int, ref: str, login: bool) -> Any:
    session = w.open(login)
    w.sessions[ref] = session
    w.opened_at[ref] = len(w.opened_handles)
    w.opened_handles.append(session_handle(session))
    return None


def _close(w: World, actor: int, session: str) -> Any:
    w.sessions[session].close()
    return None


def _state(w: World, actor: int, session: str) -> Any:
    info = w.ground_truth.session_info(session_handle(w.sessions[session])) if w.is_open(session) else None
    if info is None:
        return "closed"
    return "user" if info.state.logged_in else "public"


def _search(w: World, actor: int, ref: str, session: str, batch: int) -> Any:
    w.iterators[ref] = search_objects(w.sessions[session], SEARCH, batch)
    return None


def _key(w: World, session: str) -> Any:
    if session not in w.keys:
        w.keys[session] = w.sessions[session].generate_key(KeyType.AES, 128, store=False)
    return w.keys[session]


def _mac(w: World, session: str) -> tuple[Any, bytes]:
    if session not in w.macs:
        w.macs[session] = mac_key(w.sessions[session])
    return w.macs[session]


def _encrypt_gen(w: World, actor: int, ref: str, session: str) -> Any:
    w.iterators[ref] = _key(w, session).encrypt(CHUNKS, mechanism_param=IV)
    return None


def _decrypt_gen(w: World, actor: int, ref: str, session: str) -> Any:
    w.iterators[ref] = _key(w, session).decrypt(CIPHER_CHUNKS, mechanism=Mechanism.AES_CBC, mechanism_param=IV)
    return None


def _next(w: World, actor: int, iterator: str) -> Any:
    try:
        next(w.iterators[iterator])
    except StopIteration:
        return "stop"
    return "item"


def _consume(w: World, actor: int, iterator: str) -> Any:
    return sum(1 for _ in w.iterators[iterator])


def _drop(w: World, actor: int, iterator: str) -> Any:
    # The last reference goes here, in this actor's thread: the generator is finalised by this thread.
    del w.iterators[iterator]
    gc.collect()
    return None


def _discard(w: World, actor: int, iterator: str) -> Any:
    """Reset only (not in the model's vocabulary): drop without a collection pass; refcounting finalises it here."""
    w.iterators.pop(iterator, None)
    return None


def _digest(w: World, actor: int, session: str) -> Any:
    w.sessions[session].digest(b"conformance", mechanism=Mechanism.SHA256)
    return None


def _random(w: World, actor: int, session: str) -> Any:
    w.sessions[session].generate_random(128)
    return None


def _encrypt(w: World, actor: int, session: str) -> Any:
    _key(w, session).encrypt(b"x" * 16, mechanism_param=IV)
    return None


def _decrypt(w: World, actor: int, session: str) -> Any:
    _key(w, session).decrypt(CIPHER_CHUNKS[0], mechanism=Mechanism.AES_CBC, mechanism_param=IV)
    return None


def _sign(w: World, actor: int, session: str) -> Any:
    return signed(*_mac(w, session))


def _verify(w: World, actor: int, session: str) -> Any:
    return verified(*_mac(w, session))


def _find_all(w: World, actor: int, session: str) -> Any:
    return len(list(w.sessions[session].get_objects(SEARCH)))


# --- the session provider under test -------------------------------------------------------------------------

def _acquire(w: World, actor: int) -> Any:
    session = w.provider.acquire()
    w.provider_holds.setdefault(actor, []).append(session)
    if session is None or w.ground_truth.session_info(session_handle(_provided(session))) is None:
        return "not-open"
    return w.label_of(session)


def _release(w: World, actor: int) -> Any:
    session = _holds(w, actor).pop()
    w.provider.release()
    if session is None:
        return "closed"
    return "open" if w.ground_truth.session_info(session_handle(_provided(session))) is not None else "closed"


def _stray_release(w: World, actor: int) -> Any:
    """A release with no acquire of this actor's behind it (a service's error path): the provider's own answer."""
    w.provider.release()


def _held(w: World, actor: int) -> Any:
    return _provided(_holds(w, actor)[-1])


def _holds(w: World, actor: int) -> list[Any]:
    held = w.provider_holds.get(actor)
    if not held:
        raise RefGone(f"actor{actor} holds nothing from the provider")
    return held


def use(w: World, actor: int, what: str) -> Any:
    session = _held(w, actor)
    if what == "digest":
        session.digest(b"conformance", mechanism=Mechanism.SHA256)
    elif what == "random":
        session.generate_random(128)
    elif what == "encrypt":
        key = session.generate_key(KeyType.AES, 128, store=False)
        assert key.decrypt(key.encrypt(b"x" * 16, mechanism_param=IV), mechanism_param=IV) == b"x" * 16
    elif what == "encrypt_gen":
        key = session.generate_key(KeyType.AES, 128, store=False)
        b"".join(key.encrypt(CHUNKS, mechanism_param=IV))
    elif what == "decrypt_gen":
        key = session.generate_key(KeyType.AES, 128, store=False)
        b"".join(key.decrypt(CIPHER_CHUNKS, mechanism=Mechanism.AES_CBC, mechanism_param=IV))
    elif what == "sign":
        return signed(*mac_key(session))
    elif what == "search":
        return len(list(session.get_objects(SEARCH)))
    elif what == "attribute":
        key = session.generate_key(KeyType.AES, 128, store=False, label=label("attr"))
        return key[Attribute.LABEL] == label("attr")
    else:
        raise ValueError(f"unknown use {what!r}")
    return None


def _use_partial(w: World, actor: int, ref: str) -> Any:
    it = _held(w, actor).get_objects(SEARCH)
    next(it)
    w.iterators[ref] = it
    return None


def _fail_next_open(w: World, actor: int) -> Any:
    w.fail_next_open = True
    return None


ACTIONS: dict[str, Callable[..., Any]] = {
    "open": _open,
    "close": _close,
    "state": _state,
    "search": _search,
    "encrypt_gen": _encrypt_gen,
    "decrypt_gen": _decrypt_gen,
    "next": _next,
    "consume": _consume,
    "drop": _drop,
    "discard": _discard,
    "digest": _digest,
    "random": _random,
    "encrypt": _encrypt,
    "decrypt": _decrypt,
    "sign": _sign,
    "verify": _verify,
    "find_all": _find_all,
    "acquire": _acquire,
    "release": _release,
    "stray_release": _stray_release,
    "use": use,
    "use_partial": _use_partial,
    "fail_next_open": _fail_next_open,
}
