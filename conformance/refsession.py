"""The reference session provider: a faithful port of the refcounted session on python-pkcs11's Concurrency page.

Documented pattern (docs "Reenterant Sessions"): a class with class-level `session` and `refcount`, a module-level
threading.Lock, acquire() opening the session on first use and release() closing it on the last. Only the
settings-driven `token.open(user_pin=...)` is replaced by the injected `open_session`, and state lives per
provider (one class per factory call) so each scenario example starts fresh. Nothing else is changed — in
particular nothing is fixed: if the documented pattern is wrong somewhere, the checks have to show it.
"""

from __future__ import annotations

import threading
from typing import Any, Callable


def reference_session(open_session: Callable[[], Any]) -> Any:
    """The --sut factory for the documented pattern: FACTORY(open_session) -> provider."""
    LOCK = threading.Lock()  # noqa: N806 - the docs' module-level LOCK, one per provider here

    class Session(object):
        """Reenterant session wrapper."""

        session = None
        refcount = 0

        @classmethod
        def acquire(cls):
            with LOCK:
                if cls.refcount == 0:
                    cls.session = open_session()

                cls.refcount += 1
                return cls.session

        @classmethod
        def release(cls):
            with LOCK:
                cls.refcount -= 1

                if cls.refcount == 0:
                    cls.session.close()
                    cls.session = None

        def __enter__(self):
            return self.acquire()

        def __exit__(self, type_, value, traceback):
            self.release()

    return Session()
