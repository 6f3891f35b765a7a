"""What the tap saw (conformance/vendor/provisioning/native/tap.c): which thread is inside which PKCS#11 call right
now, and what the module returned to each call — evidence, read in the module's process, that decides "blocked" or
"slow" before any timeout does, and says what the module did when a step goes wrong.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from ..engine.cryptoki import FUNCTION_INDEX, FUNCTION_NAMES, rv_name

RING = 65536  # the returns the tap keeps (native/tap.c RING): more than one command makes


class _Record(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_ulong), ("tid", ctypes.c_long), ("fn", ctypes.c_long), ("arg", ctypes.c_ulong),
                ("out", ctypes.c_ulong), ("rv", ctypes.c_ulong), ("started", ctypes.c_double),
                ("seconds", ctypes.c_double)]


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
    """One return the tap logged: the function, its first argument (a slot id or a session handle), `out` (for
    C_OpenSession the new session's handle, for C_FindObjects how many objects came back, for C_Login the user
    type; else 0), the CK_RV, how long the module took, and the OS thread."""

    seq: int
    thread: int
    function: str
    arg: int
    out: int
    rv: int
    seconds: float
    started: float = 0.0  # CLOCK_MONOTONIC seconds when the call entered the tap

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
        self._note = dll.conformance_tap_note
        self._note.restype = None
        self._note.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

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

    def note(self, function: str, arg: int, rv: int, out: int = 0) -> None:
        """Log a call the harness made itself below the tap (ground truth), so the log has every call the module
        answered."""
        self._note(FUNCTION_INDEX[function], arg, out, rv)

    def mark(self) -> int:
        """The sequence number of the last logged return: pass it to since() for the calls after this point."""
        return int(self._sequence())

    def since(self, mark: int, limit: int = RING) -> list[Call]:
        """The returns logged after `mark`, oldest first (the tap keeps the last RING)."""
        size = max(1, min(limit, self.mark() - mark))  # what was logged since: no larger buffer than that
        buf = (_Record * size)()
        n = self._log(mark, buf, size)
        return [Call(r.seq, r.tid, FUNCTION_NAMES[r.fn] if 0 <= r.fn < len(FUNCTION_NAMES) else f"#{r.fn}",
                     r.arg, r.out, r.rv, r.seconds, r.started) for r in buf[:n]]
