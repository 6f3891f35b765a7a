"""The binding accessors (conformance/binding.py) and the ours-or-finding rule (conformance/ours.py), on small fakes
shaped like the python-pkcs11 releases the harness supports (0.7.0 to 0.10.x)."""

from __future__ import annotations

import pkcs11
import pytest

from conformance.binding import BindingLacks, object_handle, search_objects, session_handle
from conformance.live.groundtruth import GroundTruthError
from conformance.outcomes import PACKAGE, HarnessFault, describe, ours


class Session010:  # 0.9.1 and later: a readable `handle`
    handle = 7


class Session08:  # 0.7 and 0.8: a plain Python attribute
    def __init__(self) -> None:
        self._handle = 8


class Session090:  # 0.9.0: a cdef attribute only _identity() shows
    def _identity(self) -> tuple[str, object, int]:
        return ("Session", object(), 9)


@pytest.mark.parametrize("session, handle", [(Session010(), 7), (Session08(), 8), (Session090(), 9)],
                         ids=["0.9.1+", "0.7-0.8", "0.9.0"])
def test_session_handle_on_every_release(session: object, handle: int) -> None:
    """`Session.handle` exists only since 0.9.1 (DESIGN, facts): the accessor finds the handle on each release's
    spelling."""
    assert session_handle(session) == handle


def test_session_handle_missing_says_what_and_since_when() -> None:
    """Where no spelling is there, BindingLacks names what is missing and the releases that have it."""
    with pytest.raises(BindingLacks, match=r"exposes no session handle.*since 0\.9\.1"):
        session_handle(object())


class Object09:  # 0.9 and later: a `handle` property
    handle = 21


class Object07:  # 0.7 and 0.8: a plain Python attribute
    def __init__(self) -> None:
        self._handle = 22


@pytest.mark.parametrize("obj, handle", [(Object09(), 21), (Object07(), 22)], ids=["0.9+", "0.7-0.8"])
def test_object_handle_on_every_release(obj: object, handle: int) -> None:
    """The object handle ground truth reads attributes with (CKA_ALLOWED_MECHANISMS, which python-pkcs11 does not
    decode): `Object.handle` since 0.9, `Object._handle` before; neither is BindingLacks naming both."""
    assert object_handle(obj) == handle
    with pytest.raises(BindingLacks, match=r"exposes no object handle.*Object\.handle since 0\.9"):
        object_handle(object())


class Search09:  # 0.9.0 and later
    def get_objects(self, attrs=None, batch_size=10):
        return ("batched", attrs, batch_size)


class Search08:  # 0.7 and 0.8: one object per C_FindObjects
    def get_objects(self, attrs=None):
        return ("single", attrs)


def test_search_batch_where_the_binding_has_it() -> None:
    """get_objects(batch_size=) since 0.9.0: the batch is passed through."""
    assert search_objects(Search09(), {"a": 1}, 3) == ("batched", {"a": 1}, 3)


def test_search_before_batch_size() -> None:
    """Before 0.9.0 every C_FindObjects asks for one object: batch 1 is that exactly; another batch cannot be made."""
    assert search_objects(Search08(), {"a": 1}, 1) == ("single", {"a": 1})
    with pytest.raises(BindingLacks, match="batch 2"):
        search_objects(Search08(), {"a": 1}, 2)


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        return exc
    raise AssertionError("did not raise")


def test_an_exception_from_harness_code_is_ours() -> None:
    """Raised in the package's own code (here: a KeyError in the schedule parser) is ours, with the place."""
    from conformance.engine.schedule import Step

    exc = _raised(lambda: Step.from_dict({}))
    assert ours(exc)
    assert "conformance/engine/schedule.py" in describe(exc)


def _raised_in_package(exc: BaseException) -> BaseException:
    """`exc` raised from a frame whose file is in the package (as harness code raising it would be)."""
    code = compile("raise exc", str(PACKAGE / "live" / "helper.py"), "exec")
    return _raised(lambda: exec(code, {"exc": exc}))


def test_findings_are_never_ours() -> None:
    """Assertions, pkcs11 errors and the module refusing a ground-truth call report the system under test, even
    when raised in harness code; another exception raised there is ours."""
    for exc in (AssertionError("x"), pkcs11.exceptions.DeviceError(), GroundTruthError("C_GetSessionInfo: 0x5")):
        assert not ours(_raised_in_package(exc)), exc
    assert ours(_raised_in_package(KeyError("x")))


def test_an_exception_from_outside_the_package_is_not_ours() -> None:
    """Raised outside the package (this file; the binding; a user's provider) is not ours."""
    assert not ours(_raised(lambda: {}["x"]))


def test_the_reference_provider_is_under_test_not_ours() -> None:
    """The reference session provider lives in the package but is the system under test: its own mistakes (here,
    the last release closing a session that open_session never made) are provider findings."""
    from conformance.refsession import reference_session

    provider = reference_session(lambda: None)
    provider.acquire()
    exc = _raised(provider.release)
    assert isinstance(exc, AttributeError)
    assert not ours(exc), describe(exc)


def test_harness_fault_and_binding_lacks_are_ours() -> None:
    assert ours(HarnessFault("x")) and ours(BindingLacks("x"))
