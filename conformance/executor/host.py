"""What the module's process holds: the loaded module, the token, ground truth, the live vendor check bodies get,
the --sut factory, the actor threads, and the fixture session schedules start from.

Everything that runs in this process (a schedule, a check body, stress, an application step) works on one
ModuleHost; it is made from the ChildInit the pytest process sends first.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from typing import Any

from ..binding import session_handle
from ..engine.families import Family
from ..engine.vocabulary import FIXTURE_OBJECTS
from ..engine.rawspec import RawCall, RawJudge
from ..live.calls import ModuleCalls
from ..live.groundtruth import GroundTruth
from ..live.integrity import sweep_token
from ..live.tokens import LOAD_ERRORS, find_token
from ..live.vendor import LiveVendor
from ..sut import ProviderFactory, SutError, check_provider, load_factory
from .actions import FIXTURE_LABEL, World
from .actors import Actor
from .protocol import ChildInit


class SetupFailed(RuntimeError):
    """The module or token cannot be used; the message names the fix."""


class ModuleHost:
    def __init__(self, init: ChildInit) -> None:
        import pkcs11

        os.environ.update(init.env)
        for path in reversed(init.sys_path):
            if path not in sys.path:
                sys.path.insert(0, path)
        try:
            self.lib = pkcs11.lib(init.module)
        except LOAD_ERRORS as exc:
            raise SetupFailed(f"{init.module_shown} could not be loaded as a PKCS#11 module "
                              f"({type(exc).__name__}: {exc or 'no C_GetFunctionList, or not a shared library'}); "
                              "point module.path at the vendor's PKCS#11 library") from None
        self.init = init
        self.token = find_token(self.lib, init.token_label, init.token_uri)
        self.ground_truth = GroundTruth(init.ground_truth or init.module)
        self.calls = ModuleCalls.attach(init.evidence)  # None: no tap, decisions by timing alone
        if self.calls is not None:
            self.ground_truth.note = self.calls.note
        # The module judged on its own answers, command by command, as this process makes them (rawjudge.py).
        self.raw_judge = RawJudge()
        self.raw_complete = True  # False once a command made more calls than the tap's log keeps
        self.live = LiveVendor(self.lib, self.token, self.ground_truth, init.pin, init.name, calls=self.calls,
                               disposable=init.disposable, module=init.module,
                               _missing=dict(init.capabilities) if init.capabilities is not None else None)
        self.pin = init.pin
        self.sut_spec = init.sut
        self.factory: ProviderFactory | None = load_factory(init.sut) if init.sut else None
        if self.factory is not None:
            self.live.new_provider = lambda: self.new_provider(self.new_world())
        self.done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.world_ref: list[World] = [self.new_world()]
        self.actors: list[Actor] = []
        self.fixture: Any = None
        self.app_session: Any = None  # this process's own logged-in session, for checks across applications
        self.ignored: list[tuple[str, str]] = []  # (thread name, exception class) from sys.unraisablehook
        sys.unraisablehook = self._unraisable

    def _unraisable(self, unraisable: Any) -> None:
        self.ignored.append((threading.current_thread().name, type(unraisable.exc_value).__name__))

    def new_world(self) -> World:
        return World(self.token, self.pin, self.ground_truth)

    def new_provider(self, world: World) -> Any:
        """A provider from the --sut factory, opening sessions through `world` (SutError if it is not one)."""
        if self.factory is None:
            raise SutError("the module's process was started without a --sut factory")
        return check_provider(self.factory(world.open_session), self.sut_spec)

    def sut_check(self) -> str | None:
        """Make one provider with the --sut factory, as every provider scenario will: a factory that raises or
        returns no provider is a usage error at start, not a failure in every provider check. The problem, or
        None."""
        if self.factory is None:
            return None
        try:
            self.new_provider(self.new_world())
        except SutError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - the factory is user code; its failure is reported as such
            return (f"--sut={self.sut_spec!r}: the factory raised {type(exc).__name__}: {exc}; it must return a "
                    "provider (acquire/release/with) without failing")
        finally:
            self.close_everything()  # whatever it opened
        return None

    def close_everything(self) -> None:
        """C_CloseAllSessions, fixture included (after free-running stress, where handles are not tracked)."""
        self.ground_truth.close_all_sessions(self.token.slot.slot_id)
        self.fixture = None
        self.app_session = None

    def prepare(self, family: Family) -> None:
        """The family's starting state: the fixture session there or not, the application logged in or not.
        Kept from example to example (re-creating it, with a C_Login, would cost more than the example)."""
        if not family.fixture:
            if self.fixture is not None:
                self.ground_truth.close_session(session_handle(self.fixture))
                self.fixture = None
            return
        if self.fixture is None or self.ground_truth.session_info(session_handle(self.fixture)) is None:
            self._open_fixture()
        self.ground_truth.set_login(session_handle(self.fixture), self.pin if family.logged_in else None)

    def _open_fixture(self) -> None:
        """The session holding the data objects every search finds (public session objects); it also carries the
        application's login for the families that start logged in."""
        from pkcs11 import ObjectClass
        from pkcs11.constants import Attribute

        # Public objects where the token allows them; else private ones (tpm2-pkcs11), which the application
        # sees while logged in — the families that search start logged in or search through logged-in sessions.
        # (Probed before the fixture opens: the probe logs in and out on a session of its own.)
        missing = self.live.missing_capabilities()
        self.fixture = self.token.open(rw=True)
        private = "public_data_objects" in missing
        if "session_objects_end" in missing:  # earlier fixtures' objects outlived their sessions
            sweep_token(self.token, self.pin, labels={FIXTURE_LABEL})
        if private:
            self.ground_truth.set_login(session_handle(self.fixture), self.pin)
        for i in range(FIXTURE_OBJECTS):
            self.fixture.create_object({
                Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False, Attribute.PRIVATE: private,
                Attribute.LABEL: FIXTURE_LABEL, Attribute.VALUE: b"%d" % i,
            })

    def watching(self) -> int | None:
        """A command (check, schedule, stress) begins: the tap's log position now (None: no tap)."""
        return self.calls.mark() if self.calls is not None else None

    def watched(self, start: int | None) -> None:
        """The command that began at log position `start` has ended: the module is judged on its calls."""
        if start is None or self.calls is None:
            return
        logged = self.calls.since(start)
        if logged and logged[0].seq != start + 1:
            self.raw_complete = False
        self.raw_judge.feed(RawCall(c.function, c.arg, c.rv, c.out, c.started, c.started + c.seconds) for c in logged)

    def ensure_actors(self, n: int) -> None:
        while len(self.actors) < n:
            self.actors.append(Actor(len(self.actors), self.world_ref, self.done))
