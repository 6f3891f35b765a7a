"""--sut=MODULE:FACTORY loading, and refusing factory results that are not session providers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conformance.refsession import reference_session
from conformance.sut import SutError, check_provider, load_factory


class FakeProvider:
    """Has every member of the provider contract; does nothing."""

    def acquire(self):
        return None

    def release(self):
        return None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


@pytest.fixture
def fake_sut_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a module on a temporary sys.path entry; it is forgotten again after the test."""

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return write


def test_default_spec_loads_the_reference_session():
    """The default --sut names the documented refcounted session factory."""
    assert load_factory("conformance.refsession:reference_session") is reference_session


def test_dotted_attribute_is_followed(fake_sut_module):
    """MODULE:Class.attr resolves attribute by attribute."""
    module = fake_sut_module("fake_pool_dotted", "class Pools:\n    @staticmethod\n    def make(open_session):\n        return None\n")
    factory = load_factory(f"{module}:Pools.make")
    assert factory.__qualname__ == "Pools.make"


@pytest.mark.parametrize(
    ("spec", "fix"),
    [
        ("conformance.refsession.reference_session", "expected MODULE:FACTORY"),
        (":reference_session", "expected MODULE:FACTORY"),
        ("conformance.refsession:", "expected MODULE:FACTORY"),
        ("", "expected MODULE:FACTORY"),
        ("no_such_module_xyz:factory", "check the module is on sys.path"),
        ("conformance.refsession:no_such_factory", "name the provider factory"),
        ("conformance.refsession:reference_session.no_such_attr", "name the provider factory"),
        ("conformance:RESULTS_SCHEMA", "it must be FACTORY(open_session) -> provider"),
    ],
    ids=["no-colon", "no-module", "no-factory", "empty", "unknown-module", "missing-attribute", "missing-nested",
         "not-callable"],
)
def test_bad_spec_names_the_fix(spec, fix):
    """A --sut that does not lead to a callable raises SutError quoting the spec and naming the fix."""
    with pytest.raises(SutError) as excinfo:
        load_factory(spec)
    assert f"--sut={spec!r}" in str(excinfo.value)
    assert fix in str(excinfo.value)


def test_module_failing_at_import_is_a_sut_error(fake_sut_module):
    """A --sut module that raises while it is imported gives SutError naming the module, not a traceback."""
    module = fake_sut_module("fake_pool_broken", "raise RuntimeError('broken at import')\n")
    with pytest.raises(SutError, match="fake_pool_broken"):
        load_factory(f"{module}:make")


def test_check_provider_accepts_a_provider():
    """An object with acquire, release, __enter__ and __exit__ is returned unchanged."""
    provider = FakeProvider()
    assert check_provider(provider, "x:y") is provider


def test_check_provider_accepts_the_reference_session():
    """The reference session's provider satisfies the contract."""
    provider = reference_session(lambda: None)
    assert check_provider(provider, "conformance.refsession:reference_session") is provider


@pytest.mark.parametrize("member", ["acquire", "release", "__enter__", "__exit__"])
def test_check_provider_refuses_missing_member(member):
    """A factory result lacking one member of the contract is refused, naming that member and the spec."""
    namespace = {name: getattr(FakeProvider, name) for name in ("acquire", "release", "__enter__", "__exit__") if name != member}
    incomplete = type("FakeIncompleteProvider", (), namespace)()
    with pytest.raises(SutError) as excinfo:
        check_provider(incomplete, "pool:make")
    assert f"no {member}()" in str(excinfo.value)
    assert "--sut='pool:make'" in str(excinfo.value)
    assert "FakeIncompleteProvider" in str(excinfo.value)


def test_check_provider_refuses_non_callable_member():
    """A member that is there but not callable (acquire = None) is refused like a missing one."""
    provider = FakeProvider()
    provider.acquire = None  # type: ignore[method-assign]
    with pytest.raises(SutError, match=r"no acquire\(\)"):
        check_provider(provider, "pool:make")
