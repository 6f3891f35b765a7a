"""What one python-pkcs11 release does, measured without the harness: plain python-pkcs11 and ctypes, nothing from
conformance/ (the proof that the binding matrix's gate lists exactly the real behaviour differences: test_matrix.py).

    python tests/binding_probe.py MODULE.so TOKEN_LABEL PIN     # prints one JSON object

Each key is one behaviour the shipped checks look at, measured the most direct way there is: ground truth through
ctypes on the same library (C_FindObjects, C_GetSessionInfo), the binding's own lock where it is a Python attribute.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.metadata
import json
import sys
import threading

import pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass

CK_ULONG = ctypes.c_ulong
TEMPLATE = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: "binding-probe"}
OBJECTS = 3


class Functions:
    """The module's own C_FindObjects / C_GetSessionInfo / C_CloseAllSessions, through ctypes on the same file."""

    def __init__(self, path: str) -> None:
        dll = ctypes.CDLL(path)
        table = ctypes.POINTER(ctypes.c_void_p)()
        dll.C_GetFunctionList(ctypes.byref(table))
        slot = {"C_CloseAllSessions": 15, "C_GetSessionInfo": 16, "C_FindObjects": 28}  # after CK_VERSION (1 slot)
        self.find = ctypes.CFUNCTYPE(CK_ULONG, CK_ULONG, ctypes.POINTER(CK_ULONG), CK_ULONG,
                                     ctypes.POINTER(CK_ULONG))(table[slot["C_FindObjects"]])
        self.info = ctypes.CFUNCTYPE(CK_ULONG, CK_ULONG, ctypes.c_void_p)(table[slot["C_GetSessionInfo"]])
        self.close_all = ctypes.CFUNCTYPE(CK_ULONG, CK_ULONG)(table[slot["C_CloseAllSessions"]])

    def pending(self, handle: int) -> int | None:
        """Objects the module still has for the session's search (None: no search active)."""
        found, count = (CK_ULONG * 16)(), CK_ULONG()
        rv = self.find(handle, found, 16, ctypes.byref(count))
        return None if rv == 0x91 else int(count.value)

    def is_session(self, handle: int) -> bool:
        return self.info(handle, ctypes.create_string_buffer(64)) == 0


def handle(session) -> int:
    for name in ("handle", "_handle"):
        if isinstance(getattr(session, name, None), int):
            return getattr(session, name)
    return session._identity()[-1]


def objects(session) -> None:
    for _ in range(OBJECTS):
        session.create_object({**TEMPLATE, Attribute.TOKEN: False, Attribute.VALUE: b"x"})


def main(path: str, label: str, pin: str) -> dict[str, object]:
    lib = pkcs11.lib(path)
    token = lib.get_token(token_label=label)
    fn = Functions(path)
    slot = token.slot.slot_id
    out: dict[str, object] = {"python_pkcs11": importlib.metadata.version("python-pkcs11")}

    def fresh():
        gc.collect()
        fn.close_all(slot)
        s = token.open(rw=True, user_pin=pin)
        objects(s)
        return s

    # When get_objects() starts the search, and how many objects each C_FindObjects fetches.
    s = fresh()
    control = fn.pending(handle(s)) is not None  # a module that answers "active" with no search tells nothing
    it = s.get_objects(TEMPLATE)
    out["search_starts_at_get_objects"] = None if control else fn.pending(handle(s)) is not None
    del it
    s = fresh()
    it = s.get_objects(TEMPLATE)
    next(it)
    out["objects_left_in_module_after_first_item"] = fn.pending(handle(s))
    del it

    # Whether get_objects() takes a batch size (C_FindObjects' ulMaxObjectCount) at all.
    s = fresh()
    try:
        out["get_objects_takes_batch_size"] = len(list(s.get_objects(TEMPLATE, batch_size=2))) > 0
    except TypeError:
        out["get_objects_takes_batch_size"] = False

    # A refused second search, and what it does to the first (and to the session's lock).
    s = fresh()
    first = s.get_objects(TEMPLATE)
    next(first)
    try:
        list(s.get_objects(TEMPLATE))
        out["second_search"] = "ok"
    except pkcs11.exceptions.PKCS11Error as exc:
        out["second_search"] = type(exc).__name__
    gc.collect()
    try:
        list(first)
        out["first_search_after_refusal"] = "ok"
    except pkcs11.exceptions.PKCS11Error as exc:
        out["first_search_after_refusal"] = type(exc).__name__
    done = threading.Event()
    threading.Thread(target=lambda: (list(s.get_objects(TEMPLATE)), done.set()), daemon=True).start()
    out["lock_free_after_failed_search"] = done.wait(10)

    # A refused login through Token.open: does the session it opened stay?
    fn.close_all(slot)
    token.open(rw=True, user_pin=pin)
    before = token.open(rw=True)
    try:
        token.open(rw=True, user_pin=pin)
    except pkcs11.exceptions.UserAlreadyLoggedIn:
        pass
    after = token.open(rw=True)
    out["refused_login_leaves_session"] = any(fn.is_session(h) for h in range(handle(before) + 1, handle(after)))

    # An encryption generator collected unfinished: does the next encryption work?
    s = fresh()
    key = s.generate_key(KeyType.AES, 128, store=False)
    chunks = key.encrypt([b"a" * 32, b"b" * 32], mechanism_param=b"\0" * 16)
    next(chunks)
    del chunks
    gc.collect()
    try:
        key.encrypt(b"x" * 16, mechanism_param=b"\0" * 16)
        key.encrypt(b"x" * 16, mechanism_param=b"\0" * 16)
        out["encrypt_after_collected_generator"] = "ok"
    except pkcs11.exceptions.PKCS11Error as exc:
        out["encrypt_after_collected_generator"] = type(exc).__name__

    # An iterator finished on another thread than the one that started it.
    s = fresh()
    started: list = []
    ready, leave = threading.Event(), threading.Event()

    def starter() -> None:  # stays alive: a new thread must not get its ident (RLock tells owners by ident)
        started.append(s.get_objects(TEMPLATE))
        next(started[0])
        ready.set()
        leave.wait()

    threading.Thread(target=starter, daemon=True).start()
    ready.wait(10)
    holder: list = []
    c = threading.Thread(target=lambda: holder.append(len(list(started[0]))))  # a RuntimeError stays in c
    c.start()
    c.join()
    leave.set()
    out["finish_on_other_thread"] = "ok" if holder else "raised"

    # The module: does a new session get a closed one's handle?
    fn.close_all(slot)
    a = token.open(rw=True)
    h = handle(a)
    a.close()
    out["module_reuses_handles"] = handle(token.open(rw=True)) == h
    fn.close_all(slot)
    return out


if __name__ == "__main__":
    json.dump(main(*sys.argv[1:4]), sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
    import os

    os._exit(0)  # threads may be parked on a lock held for good
