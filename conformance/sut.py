"""Loading the session provider under test from --sut=MODULE:FACTORY."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Protocol

import pkcs11


# The reference refcounted session (refsession.py): what --sut is when not given, and what run.sut then records.
DEFAULT_SUT = "conformance.refsession:reference_session"


class SessionProvider(Protocol):
    """The --sut contract: acquire() -> Session, release(), and `with provider as session:`."""

    def acquire(self) -> pkcs11.Session: ...

    def release(self) -> None: ...

    def __enter__(self) -> pkcs11.Session: ...

    def __exit__(self, *exc: object) -> Any: ...


ProviderFactory = Callable[[Callable[[], pkcs11.Session]], SessionProvider]


class SutError(ValueError):
    """--sut cannot be used; the message names the fix."""


def load_factory(spec: str) -> ProviderFactory:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SutError(f"--sut={spec!r}: expected MODULE:FACTORY, e.g. --sut=mypool:make_provider")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a user's module may fail at import in any way: one line, never a traceback
        why = " ".join(str(exc).split())  # an exception's text may span lines; the message is one line
        raise SutError(f"--sut={spec!r}: cannot import {module_name!r} ({type(exc).__name__}: {why}); "
                       "check the module is on sys.path and imports cleanly") from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise SutError(f"--sut={spec!r}: {module_name!r} has no attribute {attr!r}; name the provider factory")
    if not callable(factory):
        raise SutError(f"--sut={spec!r}: {attr!r} is not callable; it must be FACTORY(open_session) -> provider")
    return factory  # type: ignore[return-value]


def check_provider(provider: object, spec: str) -> SessionProvider:
    """Refuse a factory result that does not look like a provider, with the missing member named."""
    for member in ("acquire", "release", "__enter__", "__exit__"):
        if not callable(getattr(provider, member, None)):
            raise SutError(f"--sut={spec!r}: the factory returned {type(provider).__name__}, which has no {member}(); "
                           "see the session provider contract in the README")
    return provider  # type: ignore[return-value]
