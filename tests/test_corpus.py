"""The bad-input corpus (tests/corpus/, see its README.md): every broken profile, --sut string and results file stops
the harness with one line naming the fix and a usage exit code — never a traceback, never a PIN."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main

from gate_records import doc, rec

CORPUS = Path(__file__).resolve().parent / "corpus"
EXPECTED: dict[str, dict[str, Any]] = tomllib.loads((CORPUS / "expected.toml").read_text(encoding="utf-8"))
PROFILES = sorted(p.name for p in (CORPUS / "profiles").iterdir())
RESULTS = sorted(p.name for p in (CORPUS / "results").iterdir())
# Variables a profile of the corpus may read; unset unless the corpus entry sets them.
PIN_VARIABLES = ("PKCS11_TOKEN_PIN", "PKCS11_TOKEN_SO_PIN", "CONFORMANCE_CORPUS_PIN")
EXIT_USAGE = 2


def suts() -> list[tuple[str, list[str]]]:
    """(SPEC, phrases) for every line of suts.txt."""
    entries = []
    for line in (CORPUS / "suts.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            spec, _, phrases = line.partition(" => ")
            entries.append((spec.strip(), [p.strip() for p in phrases.split(" | ") if p.strip()]))
    return entries


def expected(kind: str, name: str) -> dict[str, Any]:
    return EXPECTED[f"{kind}/{name}"]


def test_every_corpus_file_has_an_expectation():
    """Each file of profiles/ and results/ has its entry in expected.toml, each entry its file, each suts.txt line its
    phrases: a corpus file cannot sit there untested, nor an expectation outlive its file."""
    files = {f"profiles/{n}" for n in PROFILES} | {f"results/{n}" for n in RESULTS}
    assert files == set(EXPECTED)
    assert all(entry.get("fix") for entry in EXPECTED.values())
    assert suts() and all(phrases for _, phrases in suts())


# ------------------------------------------------------------------------------------------------- profiles


@pytest.fixture(scope="session")
def fault_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fault-injecting shim of tests/faults.py (tests/native/faultshim.c), built once per process."""
    try:
        from faults import build_shim
    except ImportError:
        pytest.skip("the locked-PIN entry needs tests/faults.py (the fault-injecting PKCS#11 shim)")
    try:
        return build_shim(tmp_path_factory.mktemp("fault-shim"))
    except RuntimeError as exc:
        pytest.skip(f"cannot build the fault shim: {exc}")


@pytest.mark.parametrize("name", PROFILES)
def test_bad_profile_is_one_usage_error(name, request, pytester, run_inner_inprocess, assert_usage_error, monkeypatch):
    """pytest --vendor-file=<corpus profile> exits 4 with one ERROR: line holding the expected fix, no traceback, and
    no PIN value in anything it prints."""
    entry = expected("profiles", name)
    for variable in PIN_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in entry.get("env", {}).items():
        monkeypatch.setenv(variable, value)
    path = CORPUS / "profiles" / name
    needs = entry.get("needs")
    if needs in ("token", "fault-shim"):
        request.getfixturevalue("softhsm_module")  # skips when SoftHSM is absent
        request.getfixturevalue("other_token")
    if needs == "fault-shim":
        text = path.read_text(encoding="utf-8")
        text = text.replace("@FAULT_SHIM@", str(request.getfixturevalue("fault_shim")))
        path = pytester.path / name
        path.write_text(text.replace("@SOFTHSM@", request.getfixturevalue("softhsm_module")), encoding="utf-8")
    result = run_inner_inprocess(f"--vendor-file={path}")
    assert_usage_error(result, *entry["fix"])
    text = "\n".join(result.outlines + result.errlines)
    assert "INTERNALERROR" not in text, text
    for secret in entry.get("secrets", []):
        assert secret not in text


# ----------------------------------------------------------------------------------------------------- --sut


@pytest.mark.parametrize(("spec", "phrases"), suts(), ids=[spec for spec, _ in suts()])
def test_bad_sut_is_one_usage_error(spec, phrases, run_inner_inprocess, assert_usage_error, monkeypatch):
    """pytest --sut=<corpus line> exits 4 with one ERROR: line naming the --sut given and the fix, no traceback."""
    monkeypatch.syspath_prepend(str(CORPUS))  # corpus_sut_broken.py
    assert_usage_error(run_inner_inprocess(f"--sut={spec}"), f"--sut={spec!r}", *phrases)


@pytest.mark.parametrize(("factory", "phrases"), [
    ("raising", ["the factory raised RuntimeError: pool misconfigured", "it must return a provider"]),
    ("not_a_provider", ["the factory returned int, which has no acquire()", "session provider contract"]),
], ids=["factory-raises", "factory-returns-no-provider"])
def test_bad_sut_factory_is_one_usage_error(factory, phrases, softhsm_profile, run_inner_inprocess,
                                            assert_usage_error, monkeypatch):
    """A --sut factory that raises, or returns no provider, is called once at start (in the module's process,
    like every provider scenario will): one usage error naming it, not a failure in every provider check."""
    monkeypatch.syspath_prepend(str(CORPUS))  # corpus_sut_factories.py
    spec = f"corpus_sut_factories:{factory}"
    assert_usage_error(run_inner_inprocess(f"--vendor-file={softhsm_profile}", f"--sut={spec}"), f"--sut={spec!r}",
                       *phrases)


# ---------------------------------------------------------------------------------------------- gate inputs


@pytest.fixture
def good_results(tmp_path: Path) -> str:
    """A valid results document of vendor softhsm (one passed check) to pair with each bad file."""
    path = tmp_path / "good.json"
    path.write_text(json.dumps(doc(rec()).to_dict()), encoding="utf-8")
    return str(path)


def assert_one_gate_line(err: str, entry: dict[str, Any], role: str, path: str) -> None:
    """stderr is exactly one line: the gate's prefix, the file and its role (unless the pair is at fault), the fix."""
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    prefix = "pkcs11-conformance gate: " + (f"{role} {path}: " if entry.get("names_file", True) else "")
    assert err.startswith(prefix), err
    for phrase in entry["fix"]:
        assert phrase in err, err


@pytest.mark.parametrize("name", RESULTS)
def test_bad_results_file_gate_main(name, good_results, capsys):
    """gate GOOD BAD and gate BAD GOOD (conformance.cli.main) each exit 2, print nothing on stdout and one stderr line
    naming the file, its role and the fix."""
    entry, bad = expected("results", name), str(CORPUS / "results" / name)
    for role, argv in (("candidate", [good_results, bad]), ("baseline", [bad, good_results])):
        assert main(["gate", *argv]) == EXIT_USAGE
        out, err = capsys.readouterr()
        assert out == ""
        assert_one_gate_line(err, entry, role, bad)


def console_script() -> list[str]:
    """The installed pkcs11-conformance script beside this Python, else the module run as a script."""
    script = Path(sys.executable).parent / "pkcs11-conformance"
    return [str(script)] if script.exists() else [sys.executable, "-m", "conformance.cli"]


@pytest.mark.parametrize("name", RESULTS)
def test_bad_results_file_console_script(name, good_results):
    """The console script, run as a process on GOOD BAD, exits 2 with one stderr line naming the fix, no traceback."""
    entry, bad = expected("results", name), str(CORPUS / "results" / name)
    proc = subprocess.run([*console_script(), "gate", good_results, bad], capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert proc.stdout == ""
    assert_one_gate_line(proc.stderr, entry, "candidate", bad)


@pytest.mark.parametrize("name", RESULTS)
def test_bad_results_file_as_baseline_option(name, softhsm_profile, softhsm_module, run_inner_inprocess,
                                             assert_usage_error):
    """pytest --baseline=<corpus file> stops before any check: exit 4, one ERROR: line naming the fix."""
    entry, bad = expected("results", name), CORPUS / "results" / name
    fix = entry.get("baseline_fix", [f"--baseline={bad}", *entry["fix"]])
    assert_usage_error(run_inner_inprocess(f"--vendor-file={softhsm_profile}", f"--baseline={bad}"), *fix)
