"""The shipped JSON Schema of the results file: it describes the contract, and every file the harness writes
validates against it (real SoftHSM runs in subprocesses, the file as first written, hand-made breakages rejected)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance import RESULTS_SCHEMA
from conformance.results.document import ResultsWriter, RunInfo
from conformance.results.schema import load_schema, validate_results

from fake_checks import CRASHING_CHECK, FAKE_CHECKS
from conftest import INNER_RUN_TIMEOUT_S

jsonschema = pytest.importorskip("jsonschema", reason="install the test extra: pip install -e '.[test]'")

TESTS = Path(__file__).resolve().parent
RUN_KEYS = ["id", "started", "finished", "harness_version", "python_pkcs11_version", "python", "platform",
            "hypothesis_profile", "sut"]
VENDOR_KEYS = ["module", "library", "token", "mechanisms"]
RESULT_KEYS = ["check", "vendor", "layer", "outcome", "observed", "reason", "spec", "duration_s", "reproducer", "trace"]


def inner_run(tmp_path: Path, profile: Path, *args: str) -> dict[str, Any]:
    """pytest on SoftHSM in a subprocess (module state is per process), in tmp_path; the results JSON it wrote."""
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--vendor-file={profile}",
           f"--conformance-json={out}", f"--conformance-html={tmp_path / 'report.html'}",
           f"--basetemp={tmp_path / 'bt'}", *args]
    if not any(a == "--pyargs" or a.endswith(".py") for a in args):
        cmd.append(str(tmp_path))  # the fake checks written there
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=INNER_RUN_TIMEOUT_S)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


def valid_doc() -> dict[str, Any]:
    """A small hand-made results document that follows the contract."""
    return {
        "schema": RESULTS_SCHEMA,
        "run": {"id": "r1", "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00",
                "harness_version": "0.1.0", "python_pkcs11_version": "0.10.1", "python": "3.11.7", "platform": "Linux",
                "hypothesis_profile": "dev", "sut": "conformance.refsession:reference_session"},
        "vendors": {"softhsm": {"module": "/usr/lib/softhsm/libsofthsm2.so",
                                "library": {"manufacturer": "SoftHSM", "version": "2.6"},
                                "token": {"label": "conformance"}, "mechanisms": 70}},
        "results": [{"check": "scenario.provider", "vendor": "softhsm", "layer": "provider", "outcome": "failed",
                     "observed": {"release": ["ok:open"]}, "reason": "failed: step 1", "spec": "docs",
                     "duration_s": 0.2, "trace": None,
                     "reproducer": {"schedule": [{"actor": 0, "op": "acquire", "args": {}},
                                                 {"actor": 0, "op": "release", "args": {}}], "hypothesis": None},
                     "deviations": []}],
    }


def test_schema_is_draft_2020_12_and_well_formed() -> None:
    """The shipped schema declares draft 2020-12 and is itself a valid schema of that draft."""
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_requires_exactly_the_contract_keys() -> None:
    """Top level, run, vendor and result objects require the contract's keys (DESIGN.md), no more, no fewer."""
    schema = load_schema()
    defs = schema["$defs"]
    assert schema["required"] == ["schema", "run", "vendors", "results"]
    assert schema["properties"]["schema"] == {"const": RESULTS_SCHEMA}
    assert defs["run"]["required"] == RUN_KEYS
    assert defs["vendor"]["required"] == VENDOR_KEYS
    assert defs["result"]["required"] == RESULT_KEYS


def test_hand_made_valid_document_validates() -> None:
    """A document that follows the contract, with the `deviations` extension, gives no errors."""
    assert validate_results(valid_doc()) == []


def test_extensions_are_allowed() -> None:
    """The contract may be extended freely: extra keys at every level still validate."""
    doc = valid_doc()
    doc["extra"] = 1
    doc["run"]["ci_job"] = "42"
    doc["vendors"]["softhsm"]["firmware"] = "x"
    doc["results"][0]["pytest_nodeid"] = "t.py::t"
    assert validate_results(doc) == []


@pytest.mark.parametrize("where, key", [("document", "results"), ("run", "sut"), ("vendor", "mechanisms"),
                                        ("result", "observed"), ("result", "reproducer")])
def test_missing_contract_key_is_rejected(where: str, key: str) -> None:
    """Dropping any contract key (even one whose value may be null) is an error that names the key."""
    doc = valid_doc()
    target = {"document": doc, "run": doc["run"], "vendor": doc["vendors"]["softhsm"], "result": doc["results"][0]}[where]
    del target[key]
    errors = validate_results(doc)
    assert len(errors) == 1 and f"'{key}' is a required property" in errors[0], errors


def test_bad_outcome_is_rejected() -> None:
    """An outcome outside passed|failed|xfailed|xpassed|skipped|error|crashed|hung is an error at its path."""
    doc = valid_doc()
    doc["results"][0]["outcome"] = "flaky"
    assert validate_results(doc) == [f"at results[0].outcome: 'flaky' is not one of {list(_outcomes())}"]


def test_bad_layer_is_rejected() -> None:
    """A layer outside module|binding|provider|harness is an error."""
    doc = valid_doc()
    doc["results"][0]["layer"] = "firmware"
    assert [e for e in validate_results(doc) if e.startswith("at results[0].layer:")]


def test_wrong_schema_id_is_rejected() -> None:
    """A document of another schema (or version) is rejected."""
    doc = valid_doc()
    doc["schema"] = "pkcs11-conformance/results/2"
    assert validate_results(doc) and validate_results(doc)[0].startswith("at schema:")


def test_skip_without_reason_is_rejected() -> None:
    """The contract says a skip always carries its reason: an empty reason on a skip is an error."""
    doc = valid_doc()
    doc["results"][0].update(outcome="skipped", reason="", reproducer=None)
    assert [e for e in validate_results(doc) if e.startswith("at results[0].reason:")]


def test_malformed_reproducer_step_is_rejected() -> None:
    """A reproducer step without its actor is an error (steps must render as a program)."""
    doc = valid_doc()
    del doc["results"][0]["reproducer"]["schedule"][1]["actor"]
    assert validate_results(doc) == ["at results[0].reproducer.schedule[1]: 'actor' is a required property"]


def test_file_as_first_written_validates(tmp_path: Path) -> None:
    """The file a run writes before any result (finished still null) already validates."""
    run = RunInfo.new(sut="conformance.refsession:reference_session", hypothesis_profile="dev")
    writer = ResultsWriter(tmp_path / "results.json", run, {})
    doc = json.loads(writer.path.read_text(encoding="utf-8"))
    assert doc["run"]["finished"] is None
    assert validate_results(doc) == []


def test_real_softhsm_run_validates(tmp_path: Path, softhsm_profile: Path, softhsm_module: str) -> None:
    """Every check on SoftHSM (scenario checks with observed dicts, declared deviations), -n 2: valid."""
    doc = inner_run(tmp_path, softhsm_profile, "--pyargs", "conformance.checks", "-n", "2")
    assert len(doc["results"]) >= 30
    assert validate_results(doc) == []


def test_run_with_reproducers_and_crashes_validates(tmp_path: Path, softhsm_profile: Path, softhsm_module: str) -> None:
    """The sut checks against a provider that crashes the executor: crashed outcomes with reproducers, valid."""
    doc = inner_run(tmp_path, softhsm_profile, "--pyargs", "conformance.checks", "-m", "sut",
                    "--sut=faulty_providers:crashing")
    assert any(r["reproducer"] and r["outcome"] == "crashed" for r in doc["results"]), doc["results"]
    assert validate_results(doc) == []


def test_every_outcome_validates(tmp_path: Path, softhsm_profile: Path, softhsm_module: str) -> None:
    """A run recording every outcome the harness writes (passed ... crashed, harness errors) validates."""
    (tmp_path / "test_fake_checks.py").write_text(FAKE_CHECKS, encoding="utf-8")
    (tmp_path / "test_fake_crash.py").write_text(CRASHING_CHECK, encoding="utf-8")
    doc = inner_run(tmp_path, softhsm_profile, "-n", "1", "--check-timeout=3", "test_fake_checks.py",
                    "test_fake_crash.py")
    assert {r["outcome"] for r in doc["results"]} == {"passed", "failed", "skipped", "xfailed", "xpassed", "error",
                                                      "crashed", "hung"}
    assert validate_results(doc) == []


def test_missing_jsonschema_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without jsonschema installed, validate_results raises an error that says how to install it."""
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    with pytest.raises(RuntimeError, match=r"pip install"):
        validate_results(valid_doc())


def _outcomes() -> tuple[str, ...]:
    from conformance.outcomes import OUTCOMES

    return OUTCOMES
