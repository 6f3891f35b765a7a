"""The installed python-pkcs11, as the harness sees it: its version (recorded with every run), and the few things the
harness needs from it that its releases spell differently.

Supported: 0.7.0 to 0.10.x. The harness adapts by feature detection, never by version number: each accessor tries
the spellings the releases have used and, where none is there, raises BindingLacks — a skip with its reason in a check,
an `error` (ours) anywhere else, never a module, binding or provider finding.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any


def binding_version() -> str:
    return version("python-pkcs11")


class BindingLacks(Exception):
    """The installed python-pkcs11 does not offer something a check needs; the message says what and since when."""


def session_handle(session: Any) -> int:
    """The CK_SESSION_HANDLE behind a pkcs11.Session: `Session.handle` (0.9.1 and later), `Session._handle`
    (0.7 and 0.8: a plain Python attribute), or the handle in `Session._identity()` (0.9.0, where it is a cdef
    attribute that only the identity exposes)."""
    for name in ("handle", "_handle"):
        value = getattr(session, name, None)
        if isinstance(value, int):
            return value
    identity = getattr(session, "_identity", None)
    if callable(identity):
        value = identity()
        if isinstance(value, tuple) and value and isinstance(value[-1], int):
            return value[-1]
    raise BindingLacks(f"python-pkcs11 {binding_version()} exposes no session handle on {type(session).__name__} "
                       "(Session.handle since 0.9.1, Session._handle in 0.7 and 0.8, Session._identity() in 0.9.0)")


def object_handle(obj: Any) -> int:
    """The CK_OBJECT_HANDLE behind a pkcs11 Object: `Object.handle` (0.9 and later), `Object._handle` (0.7, 0.8)."""
    for name in ("handle", "_handle"):
        value = getattr(obj, name, None)
        if isinstance(value, int):
            return value
    raise BindingLacks(f"python-pkcs11 {binding_version()} exposes no object handle on {type(obj).__name__} "
                       "(Object.handle since 0.9, Object._handle in 0.7 and 0.8)")


def batched_search(session_type: Any = None) -> bool:
    """get_objects(batch_size=) exists (0.9.0 and later) on the binding's Session (or on `session_type`)."""
    import inspect

    if session_type is None:
        from pkcs11 import _pkcs11

        session_type = _pkcs11.Session
    try:
        return "batch_size" in inspect.signature(session_type.get_objects).parameters
    except (TypeError, ValueError, AttributeError):
        return True  # no signature to read: ask, and let the binding answer


def search_objects(session: Any, attrs: Any, batch: int) -> Any:
    """session.get_objects(attrs) fetching `batch` handles per C_FindObjects. `batch_size` exists since 0.9.0; before,
    every C_FindObjects asks for one object, which is batch 1 exactly; any other batch cannot be asked for."""
    if batched_search(type(session)):
        return session.get_objects(attrs, batch_size=batch)
    if batch == 1:
        return session.get_objects(attrs)
    raise BindingLacks(f"python-pkcs11 {binding_version()} has no get_objects(batch_size=) (since 0.9.0): it fetches "
                       f"one object per C_FindObjects, so a search with batch {batch} cannot be made")
