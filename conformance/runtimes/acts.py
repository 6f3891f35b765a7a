"""The acts a runtime program runs, on the fixture a job gets: each one python-pkcs11 call (or a few), its outcome
as `ok`, `ok:N` or `raises:Name` — only what python-pkcs11, the module or the libraries under them raise; an
exception of the harness's own code propagates (the program reports it as the harness's)."""

from __future__ import annotations

import _thread
import gc
import os
from typing import Any, Callable

from .plan import Act, Job

NATIVE_IDENT = _thread.get_ident  # taken before any patching: the OS thread, never a greenlet's id


class Fixture:
    """A job's sessions (the first logged in; the others share its login, UG §2.6.5) and its data objects."""

    def __init__(self, token: Any, pin: str, job: Job) -> None:
        from pkcs11 import Attribute, ObjectClass

        self.template = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: job.label}
        self.sessions = [token.open(rw=True, user_pin=pin)]
        self.sessions += [token.open(rw=True) for _ in range(job.sessions - 1)]
        # Destroyed at the end (a token may keep session objects past their session: tpm2).
        self.objects = [self.sessions[0].create_object({**self.template, Attribute.TOKEN: False,
                                                        Attribute.PRIVATE: job.private, Attribute.VALUE: bytes([i])})
                        for i in range(job.objects)]
        self.iterators: dict[str, Any] = {}
        self.offload_threads: set[int] = set()
        self.token_keys, self.label = job.token_keys, job.label

    def close(self) -> None:
        self.iterators.clear()
        gc.collect()
        for obj in self.objects:
            try:
                obj.destroy()
            except Exception:  # noqa: BLE001 - a session the schedule broke; the harness sweeps its labels
                pass
        self.objects.clear()
        for session in reversed(self.sessions):
            try:
                session.close()
            except Exception:  # noqa: BLE001 - a session the schedule broke; the token is reset by the harness
                pass


def perform(fixture: Fixture, act: Act, offload: Callable[[Callable[[], Any]], Any] | None,
            burst: Callable[[Callable[[], str]], list[str]]) -> str:
    """Run one act; its outcome as `ok`, `ok:N` or `raises:Name` (never the exception's text)."""
    session = fixture.sessions[act.session] if act.session < len(fixture.sessions) else None
    if act.op in ("rest", "drop") and act.it not in fixture.iterators:
        return "not_run"  # its start did not make it (that act's outcome says why)
    try:
        if act.op == "start":
            iterator = iter(session.get_objects(fixture.template))
            next(iterator)
            fixture.iterators[act.it] = iterator
        elif act.op == "rest":
            iterator = fixture.iterators.pop(act.it)
            n = sum(1 for _ in iterator)
            del iterator
            return f"ok:{n}"
        elif act.op == "drop":
            del fixture.iterators[act.it]
            gc.collect()
        elif act.op == "all":
            return f"ok:{len(list(session.get_objects(fixture.template)))}"
        elif act.op == "random":
            session.generate_random(128)
        elif act.op == "keygen":
            import pkcs11
            from pkcs11 import KeyType

            def keygen() -> None:
                try:
                    session.generate_keypair(KeyType.RSA, 2048, store=False)
                except pkcs11.exceptions.PKCS11Error:
                    if not fixture.token_keys:
                        raise
                    # A token that makes no session key pairs (tpm2): a token pair, destroyed at once.
                    for key in session.generate_keypair(KeyType.RSA, 2048, store=True, label=fixture.label):
                        key.destroy()

            def offloaded() -> None:
                fixture.offload_threads.add(NATIVE_IDENT())
                keygen()

            offload(offloaded) if act.offload and offload is not None else keygen()
        elif act.op == "burst":
            outcomes = burst(lambda: f"ok:{len(list(session.get_objects(fixture.template)))}")
            wrong = [o for o in outcomes if not o.startswith("ok:") or o != outcomes[0]]
            return wrong[0] if wrong else outcomes[0]  # every search alike, or the first that was not
    except Exception as exc:  # noqa: BLE001 - what python-pkcs11 or the module raised is the act's outcome
        if not _from_binding(exc):
            raise  # the program's own bug: the driver reports it as such (Broken), never as an outcome
        name = type(exc).__name__
        exc.__traceback__ = None  # frames must not keep iterators alive
        del exc
        return f"raises:{name}"
    return "ok"


PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # conformance/


def _from_binding(exc: BaseException) -> bool:
    """Raised by python-pkcs11, the module or the libraries under them (a PKCS#11 refusal, the RLock's RuntimeError,
    a green lock's): its innermost frame is not the harness's own code (as outcomes.ours decides it)."""
    import pkcs11

    if isinstance(exc, pkcs11.exceptions.PKCS11Error):
        return True
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = os.path.abspath(tb.tb_frame.f_code.co_filename) if tb is not None else ""
    return not where.startswith(PACKAGE + os.sep)


def where_of(exc: BaseException) -> str:
    """One line: the exception and the innermost place it came from."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    return f"{type(exc).__name__}: {exc}" + (f" at {os.path.basename(last.filename)}:{last.lineno}" if last else "")


def attempt_burst(run: Callable[[], str]) -> str:
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - as in perform: the binding's and the module's are outcomes
        if not _from_binding(exc):
            raise
        return f"raises:{type(exc).__name__}"
