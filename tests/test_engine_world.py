"""The scenario World's ground truth for session refs, against a fake module that reuses closed sessions' handles
(as OpenCryptoki and tpm2-pkcs11 do) and a fake binding that leaks the session of a refused login (as
python-pkcs11 0.10.1 does). The real modules run the same schedule in scenario.sessions_login (families.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pkcs11
import pytest

from conformance.executor.actions import World


@dataclass
class FakeReusingModule:
    """Lowest free handle first; a second login refused while the application is logged in."""

    live: set[int] = field(default_factory=set)
    logged_in: bool = False

    def session_info(self, handle: int) -> object | None:
        return object() if handle in self.live else None

    def open_session(self) -> int:
        handle = next(h for h in range(1, 100) if h not in self.live)
        self.live.add(handle)
        return handle


@dataclass
class FakeSession:
    module: FakeReusingModule
    handle: int

    def close(self) -> None:
        self.module.live.discard(self.handle)


@dataclass
class FakeLeakyToken:
    """Token.open as python-pkcs11 0.10.1 does it: C_OpenSession, then C_Login; a refused login leaks the session."""

    module: FakeReusingModule

    def open(self, rw: bool = False, user_pin: str | None = None) -> FakeSession:
        handle = self.module.open_session()
        if user_pin is not None:
            if self.module.logged_in:
                raise pkcs11.exceptions.UserAlreadyLoggedIn()
            self.module.logged_in = True
        return FakeSession(self.module, handle)


def _world() -> tuple[World, FakeReusingModule]:
    module = FakeReusingModule()
    return World(FakeLeakyToken(module), "fake-pin", module), module


def _open(world: World, ref: str, login: bool) -> None:
    world.sessions[ref] = world.open(login)
    world.opened_at[ref] = len(world.opened_handles)
    world.opened_handles.append(world.sessions[ref].handle)


def test_leaked_session_on_a_closed_refs_handle_is_not_that_ref() -> None:
    """v3.0 §5.6.2: a closed session stays closed. The leaked session that got s0's handle is counted as a leak,
    not as s0 open again (regression: CI run of 2026-11-25 on OpenCryptoki and tpm2)."""
    world, module = _world()
    _open(world, "s0", login=False)
    _open(world, "s1", login=True)
    world.sessions["s0"].close()
    with pytest.raises(pkcs11.exceptions.UserAlreadyLoggedIn):
        world.open(login=True)
    assert module.live == {1, 2}  # the leak took handle 1, s0's
    assert not world.is_open("s0")
    assert world.is_open("s1")
    assert world.unaccounted_open() == 1


def test_module_that_keeps_a_closed_session_is_still_caught() -> None:
    """If C_CloseSession left s0 open, the leak gets another handle and s0 still shows as open: the check can fail."""
    world, module = _world()
    _open(world, "s0", login=False)
    _open(world, "s1", login=True)
    # s0.close() "succeeds" without closing anything.
    with pytest.raises(pkcs11.exceptions.UserAlreadyLoggedIn):
        world.open(login=True)
    assert world.is_open("s0")
    assert module.live == {1, 2, 3}  # the leak (3) lies above every ref's handle: the end-of-example probe's
    assert world.unaccounted_open() == 0  # to count (child._final), as on modules that never reuse handles


def test_leak_closed_and_handle_reused_is_not_counted() -> None:
    """A leaked session closed later (its handle then taken by a known session) is no longer a leak."""
    world, module = _world()
    _open(world, "s0", login=True)
    world.sessions["s0"].close()
    module.logged_in = True  # the login state outlives s0 here, so the next open's login is refused
    with pytest.raises(pkcs11.exceptions.UserAlreadyLoggedIn):
        world.open(login=True)
    assert world.unaccounted_open() == 1
    module.live.clear()  # e.g. C_CloseAllSessions
    module.logged_in = False
    _open(world, "s1", login=False)
    assert world.unaccounted_open() == 0
    assert world.is_open("s1")
