"""The upgrade gate from outside: the console script's exit codes and formats, and pytest --baseline end to end on
SoftHSM. Bad input files (unreadable, not JSON, wrong shape or schema) are in tests/corpus/results, run by test_corpus.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from conformance.cli import main
from conformance.gate.compare import compare
from conformance.results.reader import read_results
from conformance.gate.format import render
from conformance.results.document import Results

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
    assert out == render(compare(read_results(base, "baseline"), read_results(cand, "candidate"), (), base, cand), fmt)


def test_cli_as_option(files, capsys):
    """--as OLD=NEW compares across vendor names on the command line."""
    base, cand = files(doc(rec(vendor="softhsm"), rec(vendor="luna")),
                       doc(rec(vendor="opencryptoki"), rec(vendor="luna")))
    assert main(["gate", base, cand, "--as", "softhsm=opencryptoki"]) == 0
    assert capsys.readouterr().out.startswith("gate: no regressions (2 unchanged)")


def valid() -> dict[str, Any]:
    return doc(rec()).to_dict()


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


def test_console_script_exit_1_on_regression(files):
    """Run as a process: exit 1 on a regression, the regressed check named on stdout (bad files: test_corpus.py)."""
    base, cand = files(doc(rec("passed")), doc(rec("hung", reason="step timeout")))
    regressed = subprocess.run([sys.executable, "-m", "conformance.cli", "gate", base, cand], capture_output=True,
                               text=True, timeout=60)
    assert regressed.returncode == 1 and f"REGRESSED {CHECK} [softhsm]: passed -> hung: step timeout" in regressed.stdout
    assert regressed.stderr == ""


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
