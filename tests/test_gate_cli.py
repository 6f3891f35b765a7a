"""The upgrade gate from outside: the console script's exit codes and formats, and pytest --baseline end to end on
SoftHSM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from conformance.cli import main
from conformance.gate import compare, load_input
from conformance.gate_format import render
from conformance.results import Results

from gate_records import CHECK, doc, rec, write


# ------------------------------------------------------------------------------------------- console script


@pytest.fixture
def files(tmp_path) -> Callable[..., list[str]]:
    """Write results documents (Results or plain data or text) to tmp files; returns their paths."""

    def make(*docs: Any) -> list[str]:
        out = []
        for i, d in enumerate(docs):
            out.append(str(write(tmp_path / f"r{i}.json", d.to_dict() if isinstance(d, Results) else d)))
        return out

    return make


def test_cli_exit_0_without_regressions(files, capsys):
    """gate A A exits 0 and says there are no regressions."""
    base = files(doc(rec("passed", "ok")))[0]
    assert main(["gate", base, base]) == 0
    assert capsys.readouterr().out.startswith("gate: no regressions (1 unchanged)")


def test_cli_exit_1_names_each_regression(files, capsys):
    """A regression exits 1 with the regressed check on its own line."""
    base, cand = files(doc(rec("passed", "ok")), doc(rec("failed", reason="boom")))
    assert main(["gate", base, cand]) == 1
    assert f"REGRESSED {CHECK} [softhsm]: passed (observed ok) -> failed: boom" in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_cli_formats(files, capsys, fmt):
    """--format=text|json|markdown each print their rendering of the same comparison."""
    base, cand = files(doc(rec("passed", "ok")), doc(rec("failed", reason="boom")))
    assert main(["gate", base, cand, f"--format={fmt}"]) == 1
    out = capsys.readouterr().out
    assert out == render(compare(load_input(base, "baseline"), load_input(cand, "candidate"), (), base, cand), fmt)


def test_cli_as_option(files, capsys):
    """--as OLD=NEW compares across vendor names on the command line."""
    base, cand = files(doc(rec(vendor="softhsm"), rec(vendor="luna")),
                       doc(rec(vendor="opencryptoki"), rec(vendor="luna")))
    assert main(["gate", base, cand, "--as", "softhsm=opencryptoki"]) == 0
    assert capsys.readouterr().out.startswith("gate: no regressions (2 unchanged)")


def valid() -> dict[str, Any]:
    return doc(rec()).to_dict()


BAD_INPUTS = {
    "not JSON": ("{not json", "not JSON"),
    "wrong schema": ({**valid(), "schema": "pkcs11-conformance/results/0"}, "schema is 'pkcs11-conformance/results/0'"),
    "not an object": ([1, 2], "not a results document"),
    "results not a list": ({**valid(), "results": {}}, "'results' is missing or not a JSON list"),
    "record without check": ({**valid(), "results": [{"vendor": "v", "layer": "module", "outcome": "passed"}]},
                             "results[0] has no 'check' string"),
    "unknown outcome": ({**valid(), "results": [{**valid()["results"][0], "outcome": "maybe"}]},
                        "results[0] outcome 'maybe' is not one of"),
    "duplicate": ({**valid(), "results": valid()["results"] * 2}, "appears twice"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_cli_bad_file_exit_2(files, capsys, case):
    """A malformed, non-JSON or wrong-schema file exits 2 with one stderr line naming that file and the fix."""
    data, phrase = BAD_INPUTS[case]
    good, bad = files(valid(), data)
    assert main(["gate", good, bad]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"pkcs11-conformance gate: candidate {bad}: ")
    assert phrase in err
    assert "pass a results file written by pytest --conformance-json" in err or "pass the file of a single run" in err


def test_cli_unreadable_file_exit_2(files, tmp_path, capsys):
    """A baseline that does not exist exits 2 naming it."""
    assert main(["gate", str(tmp_path / "nope.json"), files(valid())[0]]) == 2
    assert capsys.readouterr().err == f"pkcs11-conformance gate: baseline {tmp_path / 'nope.json'}: cannot read it " \
                                      "(No such file or directory); check the path\n"


def test_cli_bad_format_exit_2(files, capsys):
    """--format=html is refused by argparse with exit 2 and one line on stderr (not the whole usage)."""
    with pytest.raises(SystemExit) as exited:
        main(["gate", *files(valid(), valid()), "--format=html"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert len(err.splitlines()) == 1 and "invalid choice: 'html'" in err


def test_cli_bad_as_exit_2(files, capsys):
    """--as without OLD=NEW exits 2 with one line asking for OLD=NEW."""
    assert main(["gate", *files(valid(), valid()), "--as", "softhsm"]) == 2
    assert capsys.readouterr().err == ("pkcs11-conformance gate: --as 'softhsm': write it as OLD=NEW, "
                                       "e.g. --as softhsm=opencryptoki\n")


def test_console_script_exit_codes_and_no_traceback(files):
    """Run as a process: exit 1 on a regression, 2 on a malformed file, never a traceback."""
    base, cand, broken = files(doc(rec("passed")), doc(rec("hung", reason="step timeout")), "[")
    cmd = [sys.executable, "-m", "conformance.cli", "gate"]
    regressed = subprocess.run([*cmd, base, cand], capture_output=True, text=True, timeout=60)
    assert regressed.returncode == 1 and f"REGRESSED {CHECK} [softhsm]: passed -> hung: step timeout" in regressed.stdout
    malformed = subprocess.run([*cmd, base, broken], capture_output=True, text=True, timeout=60)
    assert malformed.returncode == 2 and "Traceback" not in malformed.stderr
    assert malformed.stderr.startswith(f"pkcs11-conformance gate: candidate {broken}: not JSON")


# ------------------------------------------------------------------------------------------- pytest --baseline


# Derandomized: the scenario check among these observes the same values run after run.
LOGIN = ("--pyargs", "conformance.checks", "-k", "login", "--hypothesis-profile=ci")


@pytest.fixture(scope="module")
def _first_runs() -> dict[str, Any]:
    return {}


@pytest.fixture
def run_login(pytester, run_inner, softhsm_profile) -> Callable[..., tuple[pytest.RunResult, Path]]:
    """An inner SoftHSM run of the login checks writing results to `name`.json in pytester's directory."""

    def run(name: str, *args: str) -> tuple[pytest.RunResult, Path]:
        out = pytester.path / f"{name}.json"
        result = run_inner(*LOGIN, f"--vendor-file={softhsm_profile}", f"--conformance-json={out}",
                           f"--conformance-html={out.with_suffix('.html')}", f"--basetemp={pytester.path / name}", *args)
        return result, out

    return run


@pytest.fixture
def earlier_results(_first_runs, run_login, load_json) -> dict[str, Any]:
    """The results document of an earlier SoftHSM run of the login checks (made once per module and process)."""
    if "doc" not in _first_runs:
        result, out = run_login("earlier")
        assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines + result.errlines)
        _first_runs["doc"] = load_json(out)
    return _first_runs["doc"]


def test_baseline_run_against_its_own_results_passes(earlier_results, pytester, run_login):
    """--baseline naming the --conformance-json file itself (read before the run overwrites it): every check
    unchanged, exit 0, no regression line."""
    same = write(pytester.path / "same.json", earlier_results)
    result, _ = run_login("same", f"--baseline={same}")
    text = "\n".join(result.outlines)
    assert result.ret == pytest.ExitCode.OK, text
    assert f"gate: no regressions ({len(earlier_results['results'])} unchanged)" in result.outlines, text
    assert "REGRESSED" not in text and "regressions:" not in text


def test_baseline_with_changed_observed_value_fails_run(earlier_results, pytester, run_login):
    """A baseline where one check observed something else: exit 1 naming that check, the gate run once on the
    controller under -n 2."""
    doctored = json.loads(json.dumps(earlier_results))
    record = next(r for r in doctored["results"] if r["check"] == CHECK)
    record["observed"] = "ok"
    baseline = write(pytester.path / "baseline-doctored.json", doctored)
    result, _ = run_login("doctored", f"--baseline={baseline}", "-n", "2")
    text = "\n".join(result.outlines)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text
    assert text.count("pkcs11-conformance gate ==") == 1
    assert f"gate: 1 regression (1 regressed, {len(doctored['results']) - 1} unchanged)" in result.outlines, text
    assert any(row.startswith(f"REGRESSED {CHECK} [softhsm]: passed (observed ok) -> passed (observed ")
               for row in result.outlines), text


def test_baseline_with_check_missing_from_run_fails_run(earlier_results, pytester, run_login):
    """A check of the baseline that this run did not run (coverage lost) fails the run, naming the check."""
    doctored = json.loads(json.dumps(earlier_results))
    doctored["results"].append({**doctored["results"][0], "check": "login.dropped_since"})
    baseline = write(pytester.path / "baseline-extra.json", doctored)
    result, _ = run_login("extra", f"--baseline={baseline}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert any(row.startswith("REMOVED login.dropped_since [softhsm]: passed -> absent: ") for row in result.outlines)


@pytest.mark.parametrize("content, phrase", [("{", "not JSON"), (json.dumps({"schema": "other/1"}), "schema is 'other/1'")])
def test_bad_baseline_is_usage_error(pytester, run_inner_inprocess, softhsm_profile, assert_usage_error, content, phrase):
    """An unusable --baseline stops the run before any check: exit 4, one line naming the file and the fix."""
    bad = write(pytester.path / "bad.json", content)
    result = run_inner_inprocess(*LOGIN, f"--vendor-file={softhsm_profile}", f"--baseline={bad}")
    assert_usage_error(result, f"--baseline={bad}", phrase, "pass a results file written by pytest --conformance-json")


def test_baseline_without_selected_vendor_is_usage_error(pytester, run_inner_inprocess, softhsm_profile,
                                                         assert_usage_error):
    """A baseline of several vendors, none of them selected, is refused before the run, naming --vendor."""
    other = doc(rec(vendor="luna"), rec(vendor="nshield"))
    bad = write(pytester.path / "others.json", other.to_dict())
    result = run_inner_inprocess(*LOGIN, f"--vendor-file={softhsm_profile}", f"--baseline={bad}")
    assert_usage_error(result, "luna, nshield", "none of the selected vendors (softhsm)", "--vendor")
