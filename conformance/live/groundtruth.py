"""Ground truth python-pkcs11 cannot give: session state, session counts, close-all — via ctypes on the loaded module.

dlopen() of a path that is already loaded returns the same library, so these calls see exactly the state
python-pkcs11 created (same C_Initialize, same sessions). Nothing here initialises or finalises the module.
"""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass
from typing import Any, Callable

from ..engine.cryptoki import FUNCTION_NAMES
from ..outcomes import ReportsFinding

CK_ULONG = ctypes.c_ulong
CK_RV = CK_ULONG
CKR_OK = 0
CKR_SESSION_HANDLE_INVALID = 0xB3
CKR_SESSION_CLOSED = 0xB0
CKR_OPERATION_NOT_INITIALIZED = 0x91
CK_UNAVAILABLE_INFORMATION = ctypes.c_ulong(-1).value


class SessionState(enum.IntEnum):
    """CK_STATE values (PKCS#11 v3.0 §3.3)."""

    RO_PUBLIC_SESSION = 0
    RO_USER_FUNCTIONS = 1
    RW_PUBLIC_SESSION = 2
    RW_USER_FUNCTIONS = 3
    RW_SO_FUNCTIONS = 4

    @property
    def logged_in(self) -> bool:
        return self in (SessionState.RO_USER_FUNCTIONS, SessionState.RW_USER_FUNCTIONS, SessionState.RW_SO_FUNCTIONS)


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class _SessionInfo(ctypes.Structure):
    _fields_ = [("slotID", CK_ULONG), ("state", CK_ULONG), ("flags", CK_ULONG), ("ulDeviceError", CK_ULONG)]


class _TokenInfo(ctypes.Structure):
    _fields_ = [
        ("label", ctypes.c_char * 32),
        ("manufacturerID", ctypes.c_char * 32),
        ("model", ctypes.c_char * 16),
        ("serialNumber", ctypes.c_char * 16),
        ("flags", CK_ULONG),
        ("ulMaxSessionCount", CK_ULONG),
        ("ulSessionCount", CK_ULONG),
        ("ulMaxRwSessionCount", CK_ULONG),
        ("ulRwSessionCount", CK_ULONG),
        ("ulMaxPinLen", CK_ULONG),
        ("ulMinPinLen", CK_ULONG),
        ("ulTotalPublicMemory", CK_ULONG),
        ("ulFreePublicMemory", CK_ULONG),
        ("ulTotalPrivateMemory", CK_ULONG),
        ("ulFreePrivateMemory", CK_ULONG),
        ("hardwareVersion", _Version),
        ("firmwareVersion", _Version),
        ("utcTime", ctypes.c_char * 16),
    ]


class _MechanismInfo(ctypes.Structure):
    _fields_ = [("ulMinKeySize", CK_ULONG), ("ulMaxKeySize", CK_ULONG), ("flags", CK_ULONG)]


class _Info(ctypes.Structure):
    _fields_ = [
        ("cryptokiVersion", _Version),
        ("manufacturerID", ctypes.c_char * 32),
        ("flags", CK_ULONG),
        ("libraryDescription", ctypes.c_char * 32),
        ("libraryVersion", _Version),
    ]


class _Attribute(ctypes.Structure):
    _fields_ = [("type", CK_ULONG), ("pValue", ctypes.c_void_p), ("ulValueLen", CK_ULONG)]


_FN = ctypes.CFUNCTYPE
# CK_FUNCTION_LIST: a CK_VERSION, then function pointers in the order of PKCS#11 v2.40 §5 (pkcs11f.h).
_ORDER = FUNCTION_NAMES[:FUNCTION_NAMES.index("C_FindObjects") + 1]  # up to the last one ground truth calls
_SIGNATURES = {
    "C_GetInfo": _FN(CK_RV, ctypes.POINTER(_Info)),
    "C_GetTokenInfo": _FN(CK_RV, CK_ULONG, ctypes.POINTER(_TokenInfo)),
    "C_GetMechanismInfo": _FN(CK_RV, CK_ULONG, CK_ULONG, ctypes.POINTER(_MechanismInfo)),
    "C_CloseSession": _FN(CK_RV, CK_ULONG),
    "C_CloseAllSessions": _FN(CK_RV, CK_ULONG),
    "C_GetSessionInfo": _FN(CK_RV, CK_ULONG, ctypes.POINTER(_SessionInfo)),
    "C_Login": _FN(CK_RV, CK_ULONG, CK_ULONG, ctypes.c_char_p, CK_ULONG),
    "C_Logout": _FN(CK_RV, CK_ULONG),
    "C_GetAttributeValue": _FN(CK_RV, CK_ULONG, CK_ULONG, ctypes.POINTER(_Attribute), CK_ULONG),
    "C_FindObjects": _FN(CK_RV, CK_ULONG, ctypes.POINTER(CK_ULONG), CK_ULONG, ctypes.POINTER(CK_ULONG)),
}
CKU_USER = 1


class _FunctionList(ctypes.Structure):
    _fields_ = [("version", _Version)] + [(name, ctypes.c_void_p) for name in _ORDER]


class GroundTruthError(ReportsFinding, RuntimeError):
    pass


@dataclass(frozen=True)
class SessionInfo:
    slot_id: int
    state: SessionState
    rw: bool
    device_error: int


@dataclass(frozen=True)
class MechanismInfo:
    """CK_MECHANISM_INFO as the module wrote it."""

    min_key_size: int
    max_key_size: int
    flags: int


@dataclass(frozen=True)
class SessionCounts:
    """This application's open sessions on the token (None where the module says CK_UNAVAILABLE_INFORMATION)."""

    sessions: int | None
    rw_sessions: int | None


class GroundTruth:
    """Direct PKCS#11 calls on a module python-pkcs11 has already loaded and initialised."""

    def __init__(self, module_path: str) -> None:
        self._dll = ctypes.CDLL(module_path)
        tapped = getattr(self._dll, "conformance_tap_functions", None)
        ptr = ctypes.POINTER(_FunctionList)()
        if tapped is not None:
            # The tap (conformance/vendor/provisioning/native/tap.c): the very function list python-pkcs11 was given.
            tapped.restype = ctypes.POINTER(_FunctionList)
            ptr = tapped()
            if not ptr:
                raise GroundTruthError("the tap has not loaded its module yet (load it with python-pkcs11 first)")
        else:
            get_list = self._dll.C_GetFunctionList
            get_list.restype = CK_RV
            get_list.argtypes = [ctypes.POINTER(ctypes.POINTER(_FunctionList))]
            rv = get_list(ctypes.byref(ptr))
            if rv != CKR_OK:
                raise GroundTruthError(f"C_GetFunctionList returned {rv:#x}")
        self._functions = {name: sig(getattr(ptr.contents, name)) for name, sig in _SIGNATURES.items()}
        # Where the tap keeps its log (live/calls.py), the calls below are noted in it: the log then holds every
        # call the module answered, the harness's too (engine/rawspec.py judges the module on all of them).
        self.note: Callable[[str, int, int, int], None] | None = None

    def _session_call(self, name: str, handle: int, *args: Any, out: Callable[[], int] | None = None) -> int:
        rv = int(self._functions[name](handle, *args))
        if self.note is not None:
            self.note(name, handle, rv, out() if out is not None and rv == CKR_OK else 0)
        return rv

    def library_info(self) -> dict[str, str]:
        """C_GetInfo of this very library (under a wrapper: the module under test, not the wrapper)."""
        info = _Info()
        rv = self._functions["C_GetInfo"](ctypes.byref(info))
        if rv != CKR_OK:
            raise GroundTruthError(f"C_GetInfo returned {rv:#x}")

        def text(raw: bytes) -> str:
            return raw.decode("utf-8", "replace").rstrip()

        return {"manufacturer": text(info.manufacturerID), "description": text(info.libraryDescription),
                "version": f"{info.libraryVersion.major}.{info.libraryVersion.minor}",
                "cryptoki_version": f"{info.cryptokiVersion.major}.{info.cryptokiVersion.minor}"}

    def mechanism_info(self, slot_id: int, mechanism: int, fill: int = 0) -> MechanismInfo:
        """C_GetMechanismInfo into a CK_MECHANISM_INFO whose every byte is `fill` before the call: a module that
        sets every field answers the same whatever the fill (one that only ORs bits into flags does not)."""
        info = _MechanismInfo()
        ctypes.memset(ctypes.byref(info), fill, ctypes.sizeof(info))
        rv = self._functions["C_GetMechanismInfo"](slot_id, mechanism, ctypes.byref(info))
        if rv != CKR_OK:
            raise GroundTruthError(f"C_GetMechanismInfo returned {rv:#x}")
        return MechanismInfo(info.ulMinKeySize, info.ulMaxKeySize, info.flags)

    def attribute(self, session: int, obj: int, attribute: int) -> bytes | int:
        """C_GetAttributeValue of one attribute as the module gives it (its bytes), or the CK_RV that refused it:
        for the attributes python-pkcs11 cannot decode (CKA_ALLOWED_MECHANISMS, in every release)."""
        template = _Attribute(attribute, None, 0)
        rv = self._session_call("C_GetAttributeValue", session, obj, ctypes.byref(template), 1)
        if rv != CKR_OK:
            return rv
        if template.ulValueLen == CK_UNAVAILABLE_INFORMATION:  # CKR_OK with no value: the spec says it cannot be
            raise GroundTruthError(f"C_GetAttributeValue({attribute:#x}) returned CKR_OK and no length")
        value = (ctypes.c_ubyte * template.ulValueLen)()
        template.pValue = ctypes.cast(value, ctypes.c_void_p)
        rv = self._session_call("C_GetAttributeValue", session, obj, ctypes.byref(template), 1)
        return rv if rv != CKR_OK else bytes(value[:template.ulValueLen])

    def session_info(self, handle: int) -> SessionInfo | None:
        """C_GetSessionInfo; None when the handle is no longer a session (closed or invalid)."""
        info = _SessionInfo()
        rv = self._session_call("C_GetSessionInfo", handle, ctypes.byref(info), out=lambda: int(info.state))
        if rv in (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED):
            return None
        if rv != CKR_OK:
            raise GroundTruthError(f"C_GetSessionInfo returned {rv:#x}")
        return SessionInfo(info.slotID, SessionState(info.state), bool(info.flags & 0x2), info.ulDeviceError)

    def session_counts(self, slot_id: int) -> SessionCounts:
        """C_GetTokenInfo's ulSessionCount / ulRwSessionCount."""
        info = _TokenInfo()
        rv = self._functions["C_GetTokenInfo"](slot_id, ctypes.byref(info))
        if rv != CKR_OK:
            raise GroundTruthError(f"C_GetTokenInfo returned {rv:#x}")

        def known(value: int) -> int | None:
            return None if value == CK_UNAVAILABLE_INFORMATION else value

        return SessionCounts(known(info.ulSessionCount), known(info.ulRwSessionCount))

    def close_session(self, handle: int) -> bool:
        """C_CloseSession; False if the handle was no longer a session."""
        rv = self._session_call("C_CloseSession", handle)
        if rv in (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED):
            return False
        if rv != CKR_OK:
            raise GroundTruthError(f"C_CloseSession returned {rv:#x}")
        return True

    def set_login(self, handle: int, pin: str | None) -> None:
        """Log the application's user in (pin given) or out, through one of its sessions; no-op if already so."""
        info = self.session_info(handle)
        if info is None or info.state.logged_in == (pin is not None):
            return
        if pin is None:
            rv = self._session_call("C_Logout", handle)
        else:
            data = pin.encode("utf-8")
            rv = self._session_call("C_Login", handle, CKU_USER, data, len(data))
        if rv != CKR_OK:
            raise GroundTruthError(f"{'C_Login' if pin else 'C_Logout'} returned {rv:#x}")

    def search_active(self, handle: int) -> bool:
        """Whether a search is active on the session (C_FindObjects answers it, v3.0 §5.7.7; it may hand over one
        object of that search: for probes only)."""
        found, count = CK_ULONG(), CK_ULONG()
        rv = self._session_call("C_FindObjects", handle, ctypes.byref(found), 1, ctypes.byref(count))
        if rv == CKR_OPERATION_NOT_INITIALIZED:
            return False
        if rv != CKR_OK:
            raise GroundTruthError(f"C_FindObjects returned {rv:#x}")
        return True

    def close_all_sessions(self, slot_id: int) -> None:
        """C_CloseAllSessions: the cheap per-test reset (also returns the token to public state, §5.6.3)."""
        rv = self._functions["C_CloseAllSessions"](slot_id)
        if self.note is not None:
            self.note("C_CloseAllSessions", slot_id, rv, 0)
        if rv != CKR_OK:
            raise GroundTruthError(f"C_CloseAllSessions returned {rv:#x}")
