"""Replays a drawn schedule step by step: each actor an OS thread, forced into the schedule's order (the main
thread hands one step at a time to its actor and waits for it; a step expected to block on python-pkcs11's session
lock is watched for BLOCK_S, then the next step goes), every outcome compared with what PKCS#11, python-pkcs11's
documentation and this setup's measured behaviour allow (STEPS, written by pkcs11-conformance from its model).
The operations are the harness's scenario vocabulary, written out in python-pkcs11 calls."""

import ctypes
import gc
import hashlib
import hmac
import queue
import threading

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

FIXTURE_LABEL = "pkcs11-conformance reproducer fixture"
SEARCH = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: FIXTURE_LABEL}
FIXTURE_OBJECTS = 4
CHUNKS = (b"a" * 32, b"b" * 32, b"c" * 32)
CIPHER_CHUNKS = (bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 112)))
MAC_DATA = b"conformance"
IV = bytes(16)
BLOCK_S = 0.5  # a call expected to wait on the session lock is taken as waiting after this long
STEP_S = 30.0  # a call expected to return that has not after this long is hung


class RefGone(LookupError):
    """A step names a ref an earlier (failed) step never made."""


class _SessionInfo(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_ulong), ("state", ctypes.c_ulong), ("flags", ctypes.c_ulong),
                ("device_error", ctypes.c_ulong)]


def _get_session_info():
    """C_GetSessionInfo of the module python-pkcs11 loaded (same library, same instance): the 16th function of
    CK_FUNCTION_LIST, after its CK_VERSION (padded to a pointer)."""
    lib = ctypes.CDLL(MODULE)
    functions = ctypes.c_void_p()
    lib.C_GetFunctionList(ctypes.byref(functions))
    pointers = ctypes.cast(functions, ctypes.POINTER(ctypes.c_void_p))
    return ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong, ctypes.POINTER(_SessionInfo))(pointers[1 + 15])


def handle(session):
    return getattr(session, "handle", None) or getattr(session, "_handle")


class World:
    def __init__(self, token, pin):
        self.token, self.pin = token, pin
        self.refs, self.keys, self.macs = {}, {}, {}
        self.info = _get_session_info()
        self.provider, self.holds, self.seen, self.fail_next_open = None, {}, [], False
        self.owner = {}  # iterator ref -> the actor that started it (python-pkcs11's lock is that thread's)

    def cleanup(self, actor):
        """Drop the iterators this actor started, on its own thread (the lock's owner releases it)."""
        for ref in [r for r, a in self.owner.items() if a == actor]:
            self.refs.pop(ref, None)
            del self.owner[ref]
        gc.collect()

    def ref(self, name):
        if name not in self.refs:
            raise RefGone(name)
        return self.refs[name]

    def live(self, session):
        info = _SessionInfo()
        return None if self.info(handle(session), ctypes.byref(info)) != 0 else info

    def key(self, s):
        if s not in self.keys:
            self.keys[s] = self.ref(s).generate_key(KeyType.AES, 128, store=False)
        return self.keys[s]

    def mac(self, s):
        if s not in self.macs:
            key = self.ref(s).generate_key(
                KeyType.GENERIC_SECRET, 256, store=False, mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                template={Attribute.SIGN: True, Attribute.VERIFY: True, Attribute.SENSITIVE: False,
                          Attribute.EXTRACTABLE: True, Attribute.VALUE_LEN: 32})
            self.macs[s] = (key, key[Attribute.VALUE])
        return self.macs[s]

    def open_session(self):  # the session provider's opener: R/W, user logged in; fails once when told to
        if self.fail_next_open:
            self.fail_next_open = False
            raise ProviderOpenFailed("made to fail on purpose")
        return self.token.open(rw=True, user_pin=self.pin)


class ProviderOpenFailed(Exception):
    pass


class ReferenceSession:
    """The reenterant session of python-pkcs11's Concurrency page (its lock, refcount, open and close)."""

    def __init__(self, open_session):
        self.lock, self.open_session, self.session, self.refcount = threading.Lock(), open_session, None, 0

    def acquire(self):
        with self.lock:
            if self.refcount == 0:
                self.session = self.open_session()
            self.refcount += 1
            return self.session

    def release(self):
        with self.lock:
            self.refcount -= 1
            if self.refcount == 0:
                self.session.close()
                self.session = None


def _signed(key, value):
    return key.sign(MAC_DATA, mechanism=Mechanism.SHA256_HMAC) == hmac.new(value, MAC_DATA, hashlib.sha256).digest()


def _verified(key, value):
    return bool(key.verify(MAC_DATA, hmac.new(value, MAC_DATA, hashlib.sha256).digest(),
                           mechanism=Mechanism.SHA256_HMAC))


def _search(w, session, batch):
    try:
        return w.ref(session).get_objects(SEARCH, batch_size=batch)
    except TypeError:  # python-pkcs11 before 0.9.0 has no batch_size
        return w.ref(session).get_objects(SEARCH)


def _state(w, session):
    info = w.live(w.ref(session))
    return "closed" if info is None else ("user" if info.state in (1, 3) else "public")


def _next(w, iterator):
    try:
        next(w.ref(iterator))
    except StopIteration:
        return "stop"
    return "item"


def _drop(w, iterator):
    w.ref(iterator)
    del w.refs[iterator]
    gc.collect()


def _held(w, actor):
    if not w.holds.get(actor):
        raise RefGone(f"actor{actor} holds nothing")
    return w.holds[actor][-1]


def _acquire(w, actor):
    session = w.provider.acquire()
    w.holds.setdefault(actor, []).append(session)
    if session is None or w.live(session) is None:
        return "not-open"
    for i, seen in enumerate(w.seen):
        if seen is session:
            return f"p{i}"
    w.seen.append(session)
    return f"p{len(w.seen) - 1}"


def _release(w, actor):
    session = _held(w, actor)
    w.holds[actor].pop()
    w.provider.release()
    return "open" if session is not None and w.live(session) is not None else "closed"


def _use(w, actor, what):
    session = _held(w, actor)
    if what in ("encrypt", "encrypt_gen", "decrypt_gen", "attribute"):
        key = session.generate_key(KeyType.AES, 128, store=False, label="reproducer-attr")
        if what == "encrypt":
            assert key.decrypt(key.encrypt(b"x" * 16, mechanism_param=IV), mechanism_param=IV) == b"x" * 16
        elif what == "encrypt_gen":
            b"".join(key.encrypt(CHUNKS, mechanism_param=IV))
        elif what == "decrypt_gen":
            b"".join(key.decrypt(CIPHER_CHUNKS, mechanism=Mechanism.AES_CBC, mechanism_param=IV))
        else:
            return key[Attribute.LABEL] == "reproducer-attr"
        return None
    if what == "sign":
        key = session.generate_key(KeyType.GENERIC_SECRET, 256, store=False, mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                                   template={Attribute.SIGN: True, Attribute.VERIFY: True, Attribute.SENSITIVE: False,
                                             Attribute.EXTRACTABLE: True, Attribute.VALUE_LEN: 32})
        return _signed(key, key[Attribute.VALUE])
    if what == "search":
        return len(list(session.get_objects(SEARCH)))
    if what == "digest":
        session.digest(b"conformance", mechanism=Mechanism.SHA256)
    elif what == "random":
        session.generate_random(128)
    return None


def _use_partial(w, actor, ref):
    it = _held(w, actor).get_objects(SEARCH)
    next(it)
    w.refs[ref] = it


def _fail_next_open(w, actor):
    w.fail_next_open = True


def _set(w, ref, value):
    w.refs[ref] = value


OPS = {
    "open": lambda w, a, ref, login: _set(w, ref, w.token.open(rw=True, user_pin=w.pin if login else None)),
    "close": lambda w, a, session: w.ref(session).close(),
    "state": lambda w, a, session: _state(w, session),
    "search": lambda w, a, ref, session, batch=10: _set(w, ref, _search(w, session, batch)),
    "encrypt_gen": lambda w, a, ref, session: _set(w, ref, w.key(session).encrypt(CHUNKS, mechanism_param=IV)),
    "decrypt_gen": lambda w, a, ref, session: _set(w, ref, w.key(session).decrypt(
        CIPHER_CHUNKS, mechanism=Mechanism.AES_CBC, mechanism_param=IV)),
    "next": lambda w, a, iterator: _next(w, iterator),
    "consume": lambda w, a, iterator: sum(1 for _ in w.ref(iterator)),
    "drop": lambda w, a, iterator: _drop(w, iterator),
    "digest": lambda w, a, session: w.ref(session).digest(b"conformance", mechanism=Mechanism.SHA256) and None,
    "random": lambda w, a, session: w.ref(session).generate_random(128) and None,
    "encrypt": lambda w, a, session: w.key(session).encrypt(b"x" * 16, mechanism_param=IV) and None,
    "decrypt": lambda w, a, session: w.key(session).decrypt(CIPHER_CHUNKS[0], mechanism=Mechanism.AES_CBC,
                                                              mechanism_param=IV) and None,
    "sign": lambda w, a, session: _signed(*w.mac(session)),
    "verify": lambda w, a, session: _verified(*w.mac(session)),
    "find_all": lambda w, a, session: len(list(w.ref(session).get_objects(SEARCH))),
    "acquire": lambda w, a: _acquire(w, a),
    "release": lambda w, a: _release(w, a),
    "stray_release": lambda w, a: w.provider.release(),
    "use": lambda w, a, what: _use(w, a, what),
    "use_partial": lambda w, a, ref: _use_partial(w, a, ref),
    "fail_next_open": lambda w, a: _fail_next_open(w, a),
    "cleanup": lambda w, a: w.cleanup(a),
}


class Actor:
    """One pinned OS thread running the steps handed to it, one at a time."""

    def __init__(self, world, number):
        self.world, self.number, self.inbox, self.done = world, number, queue.SimpleQueue(), {}
        self.thread = threading.Thread(target=self._loop, name=f"actor{number}", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            item = self.inbox.get()
            if item is None:
                return
            index, step, finished = item
            try:
                value = OPS[step["op"]](self.world, self.number, **step["args"])
                self.done[index] = "ok" if value is None else f"ok:{value}"
                if step["op"] in ("next", "consume", "use_partial"):
                    ref = step["args"].get("iterator", step["args"].get("ref"))
                    self.world.owner.setdefault(ref, self.number)
            except BaseException as exc:  # noqa: BLE001 - the outcome is the exception's class, as the harness's
                self.done[index] = f"raises:{type(exc).__name__}"
                exc.__traceback__ = None
                del exc
            finished.set()


def _fixture(world):
    """The session holding the data objects every search finds (and the login, where the family starts logged in)."""
    session = world.token.open(rw=True, user_pin=world.pin if LOGGED_IN else None)
    try:
        for i in range(FIXTURE_OBJECTS):
            session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False, Attribute.PRIVATE: False,
                                   Attribute.LABEL: FIXTURE_LABEL, Attribute.VALUE: bytes([i])})
    except Exception:  # noqa: BLE001 - a token without public data objects: private ones, seen logged in
        session.close()
        session = world.token.open(rw=True, user_pin=world.pin)
        for i in range(FIXTURE_OBJECTS):
            session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False, Attribute.PRIVATE: True,
                                   Attribute.LABEL: FIXTURE_LABEL, Attribute.VALUE: bytes([i])})
    return session


def _differs(index, got, allowed, rule):
    if allowed is None or got in allowed:
        return None
    step = STEPS[index]
    return (f"step {index} (actor{step['actor']}: {step['line']}) gave {got}; expected "
            f"{' or '.join(allowed)} — {rule}")


def reproduce(token, pin):
    world = World(token, pin)
    fixture = _fixture(world) if FIXTURE else None
    world.provider = ReferenceSession(world.open_session)
    actors = [Actor(world, n) for n in range(ACTORS)]
    events, seen = {}, []
    try:
        for index, step in enumerate(STEPS):
            actor = actors[step["actor"]]
            events[index] = threading.Event()
            actor.inbox.put((index, step, events[index]))
            if step["blocks"]:
                if events[index].wait(BLOCK_S):
                    got = actor.done[index]
                    seen.append(f"{index:>3} {step['line']}: returned {got}")
                    return True, "\n".join(seen + [f"step {index} returned ({got}) where it should wait on the "
                                                   f"session lock — {step['rule']}"])
                seen.append(f"{index:>3} {step['line']}: waits (as expected)")
            else:
                if not events[index].wait(STEP_S):
                    return True, "\n".join(seen + [f"step {index} ({step['line']}) did not return in {STEP_S:.0f} s"])
                got = actor.done[index]
                seen.append(f"{index:>3} {step['line']}: {got}")
                problem = _differs(index, got, step["allowed"], step["rule"])
                if problem:
                    return True, "\n".join(seen + [problem])
            for waiter in step["resumes"]:
                j = waiter["step"]
                if not events[j].wait(STEP_S):
                    return True, "\n".join(seen + [f"step {j} still waits after step {index} freed the lock — "
                                                   f"{waiter['rule']}"])
                got = actors[STEPS[j]["actor"]].done[j]
                seen.append(f"    {j} {STEPS[j]['line']}: resumed, {got}")
                problem = _differs(j, got, waiter["allowed"], waiter["rule"])
                if problem:
                    return True, "\n".join(seen + [problem])
        return False, "\n".join(seen)
    finally:
        for n, actor in enumerate(actors):
            done = threading.Event()
            actor.inbox.put((f"cleanup{n}", {"op": "cleanup", "args": {}}, done))
            done.wait(BLOCK_S)  # an actor still inside a call (a waiter never freed) is left as it is
            actor.inbox.put(None)
        world.refs.clear()
        gc.collect()
        if fixture is not None:
            try:
                fixture.close()
            except Exception:  # noqa: BLE001 - already closed by a step
                pass
