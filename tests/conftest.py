"""Shared fixtures for the harness's own tests: profiles in pytester's directory, inner pytest runs, SoftHSM set-ups."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import settings

from conformance.vendor.profile import load_profile

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
SOFTHSM_PROFILE = REPO / "conformance" / "profiles" / "softhsm.toml"
TEMPLATE_PROFILE = REPO / "conformance" / "profiles" / "TEMPLATE.toml"

# No example database: nothing may be written outside pytest's tmp dirs (the default is ./.hypothesis).
settings.register_profile("conformance-tests", database=None, deadline=None)
settings.load_profile("conformance-tests")


@pytest.fixture
def softhsm_profile() -> Path:
    """Absolute path of the repository's vendors/softhsm.toml (an inner run's rootdir has no vendors/)."""
    return SOFTHSM_PROFILE


@pytest.fixture
def softhsm_module(softhsm_profile: Path) -> str:
    """The SoftHSM library the repository's softhsm profile names (its first path that exists)."""
    module = load_profile(softhsm_profile).module
    if module is None:
        pytest.skip("SoftHSM is not installed")
    return module


@pytest.fixture
def write_profile(pytester: pytest.Pytester) -> Callable[..., Path]:
    """Write a vendor profile TOML into pytester's directory and return its absolute path."""

    def write(text: str, name: str = "profile.toml") -> Path:
        path = pytester.path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def vendors_dir(pytester: pytest.Pytester) -> Path:
    """A vendors/ directory in the inner rootdir holding copies of softhsm.toml and TEMPLATE.toml."""
    directory = pytester.path / "vendors"
    directory.mkdir()
    shutil.copy(SOFTHSM_PROFILE, directory / "softhsm.toml")
    shutil.copy(TEMPLATE_PROFILE, directory / "TEMPLATE.toml")
    return directory


# pytest options whose value is the next argument (so it is not a test path).
_VALUED = {"-p", "-k", "-m", "-n", "-o", "-c", "--deselect", "--rootdir", "--basetemp"}


def with_paths(args: tuple[str, ...], here: Path) -> tuple[str, ...]:
    """The arguments with pytester's directory as the test path when they name none: with a vendor and no test
    paths the plugin runs the shipped checks, while these inner runs mean the fake checks written here."""
    positional = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] not in _VALUED)]
    return args if positional else (*args, str(here))


# An inner pytest run that has not finished after this long is stuck: a guard, not a speed target (a whole run of the
# shipped checks takes about a minute here idle, several on a loaded CI machine; speed is measured in benchmarks/).
INNER_RUN_TIMEOUT_S = 600


@pytest.fixture
def run_inner(pytester: pytest.Pytester) -> Callable[..., pytest.RunResult]:
    """Run pytest in a subprocess in pytester's directory (PKCS#11 module state is per process)."""

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *with_paths(args, pytester.path),
                                             timeout=INNER_RUN_TIMEOUT_S)

    return run


@pytest.fixture
def run_inner_inprocess(pytester: pytest.Pytester) -> Callable[..., pytest.RunResult]:
    """Run pytest in this process, in pytester's directory: for runs that stop before any PKCS#11 module is loaded
    here (usage errors; the preflight loads modules in a child process of its own)."""

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_inprocess("-p", "no:cacheprovider", *with_paths(args, pytester.path))

    return run


@pytest.fixture
def assert_usage_error() -> Callable[..., str]:
    """Assert an inner run ended as a usage error with one ERROR: line naming the fix; returns that line."""

    def check(result: pytest.RunResult, *fix: str) -> str:
        lines = result.outlines + result.errlines
        text = "\n".join(lines)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, text
        assert "Traceback" not in text, text
        errors = [line for line in lines if line.startswith("ERROR:")]
        assert len(errors) == 1, text
        for phrase in fix:
            assert phrase in errors[0], errors[0]
        return errors[0]

    return check


@pytest.fixture
def load_json() -> Callable[[Path], Any]:
    """Read a JSON file (the results document) as plain data."""

    def load(path: Path) -> Any:
        return json.loads(Path(path).read_text(encoding="utf-8"))

    return load


@pytest.fixture
def other_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SoftHSM set-up in tmp with one initialised token labelled 'other' (user PIN 1234); SOFTHSM2_CONF points at it."""
    if shutil.which("softhsm2-util") is None:
        pytest.skip("softhsm2-util is not installed")
    tokens = tmp_path / "softhsm-tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "other", "--pin", "1234", "--so-pin", "12345678"],
        env=env, check=True, capture_output=True, timeout=60,
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    return conf
