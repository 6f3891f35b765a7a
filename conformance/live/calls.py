"""What the tap saw (conformance/vendor/provisioning/native/tap.c): which thread is inside which PKCS#11 call right
now, and what the module returned to each call — evidence, read in the module's process, that decides "blocked" or
"slow" before any timeout does, and says what the module did when a step goes wrong.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from .groundtruth import FUNCTION_NAMES

NOT_SEEN = -2  # the tap has never seen the thread (it made no PKCS#11 call yet)


class _Record(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_ulong), ("tid", ctypes.c_long), ("fn", ctypes.c_long), ("arg", ctypes.c_ulong),
                ("rv", ctypes.c_ulong), ("seconds", ctypes.c_double)]


@dataclass(frozen=True)
class InCall:
    """A thread's position: inside `function` for `seconds`, or outside the module (function None); `calls` it
    has started so far (progress, when compared between two looks)."""

    function: str | None
    seconds: float
    calls: int

    @property
    def in_module(self) -> bool:
        return self.function is not None


@dataclass(frozen=True)
class Call:
    """One return the tap logged: the function, its first argument (a slot id or a session handle; for
    C_OpenSession the new session's handle), the CK_RV, how long the module took, and the OS thread."""

    seq: int
    thread: int
    function: str
    arg: int
    rv: int
    seconds: float

    def describe(self) -> str:
        return f"{self.function} returned {rv_name(self.rv)}"


class ModuleCalls:
    """The tap's evidence in this process (the tap is the library the binding loaded, or one below it)."""

    def __init__(self, dll: ctypes.CDLL) -> None:
        self._inside = dll.conformance_tap_inside
        self._inside.restype = ctypes.c_int
        self._inside.argtypes = [ctypes.c_long, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_ulong)]
        self._log = dll.conformance_tap_log
        self._log.restype = ctypes.c_ulong
        self._log.argtypes = [ctypes.c_ulong, ctypes.POINTER(_Record), ctypes.c_ulong]
        self._sequence = dll.conformance_tap_sequence
        self._sequence.restype = ctypes.c_ulong

    @classmethod
    def attach(cls, path: str | None) -> ModuleCalls | None:
        """The tap at `path` (already loaded by the binding: the same instance), or None if it is not one."""
        if not path:
            return None
        try:
            dll = ctypes.CDLL(path)
        except OSError:
            return None
        return cls(dll) if hasattr(dll, "conformance_tap_inside") else None

    def where(self, thread: int) -> InCall:
        """Where the OS thread `thread` (threading.get_native_id()) is: inside which call, for how long."""
        seconds, calls = ctypes.c_double(), ctypes.c_ulong()
        fn = self._inside(thread, ctypes.byref(seconds), ctypes.byref(calls))
        name = FUNCTION_NAMES[fn] if 0 <= fn < len(FUNCTION_NAMES) else None
        return InCall(name, seconds.value, calls.value)

    def mark(self) -> int:
        """The sequence number of the last logged return: pass it to since() for the calls after this point."""
        return int(self._sequence())

    def since(self, mark: int, limit: int = 4096) -> list[Call]:
        """The returns logged after `mark`, oldest first (the tap keeps the last 8192)."""
        buf = (_Record * limit)()
        n = self._log(mark, buf, limit)
        return [Call(r.seq, r.tid, FUNCTION_NAMES[r.fn] if 0 <= r.fn < len(FUNCTION_NAMES) else f"#{r.fn}",
                     r.arg, r.rv, r.seconds) for r in buf[:n]]


# The CK_RV names a finding's reason may quote (PKCS#11 v3.0 §5.1; pkcs11t.h).
RV_NAMES = {
    0x0: "CKR_OK", 0x1: "CKR_CANCEL", 0x2: "CKR_HOST_MEMORY", 0x3: "CKR_SLOT_ID_INVALID", 0x5: "CKR_GENERAL_ERROR",
    0x6: "CKR_FUNCTION_FAILED", 0x7: "CKR_ARGUMENTS_BAD", 0x1B: "CKR_ACTION_PROHIBITED",
    0x30: "CKR_DEVICE_ERROR", 0x31: "CKR_DEVICE_MEMORY", 0x32: "CKR_DEVICE_REMOVED", 0x54: "CKR_FUNCTION_NOT_SUPPORTED",
    0x60: "CKR_KEY_HANDLE_INVALID", 0x70: "CKR_MECHANISM_INVALID", 0x82: "CKR_OBJECT_HANDLE_INVALID",
    0x90: "CKR_OPERATION_ACTIVE", 0x91: "CKR_OPERATION_NOT_INITIALIZED", 0xA0: "CKR_PIN_INCORRECT",
    0xA4: "CKR_PIN_LOCKED", 0xB0: "CKR_SESSION_CLOSED", 0xB1: "CKR_SESSION_COUNT",
    0xB3: "CKR_SESSION_HANDLE_INVALID", 0xB4: "CKR_SESSION_PARALLEL_NOT_SUPPORTED", 0xB5: "CKR_SESSION_READ_ONLY",
    0xB6: "CKR_SESSION_EXISTS", 0xB7: "CKR_SESSION_READ_ONLY_EXISTS", 0xB8: "CKR_SESSION_READ_WRITE_SO_EXISTS",
    0xD0: "CKR_TEMPLATE_INCOMPLETE", 0xD1: "CKR_TEMPLATE_INCONSISTENT", 0xE0: "CKR_TOKEN_NOT_PRESENT",
    0x100: "CKR_USER_ALREADY_LOGGED_IN", 0x101: "CKR_USER_NOT_LOGGED_IN", 0x102: "CKR_USER_PIN_NOT_INITIALIZED",
    0x103: "CKR_USER_TYPE_INVALID", 0x104: "CKR_USER_ANOTHER_ALREADY_LOGGED_IN", 0x105: "CKR_USER_TOO_MANY_TYPES",
    0x150: "CKR_BUFFER_TOO_SMALL", 0x190: "CKR_CRYPTOKI_NOT_INITIALIZED", 0x191: "CKR_CRYPTOKI_ALREADY_INITIALIZED",
}


def rv_name(rv: int) -> str:
    return RV_NAMES.get(rv, f"CKR {rv:#x}")
