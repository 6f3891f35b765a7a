"""Bounded everything: a check never runs past --check-timeout (issue: "Per-step, per-example and per-check time
limits with sensible defaults and options")."""

from __future__ import annotations

import pytest


def test_scenario_exploration_stops_at_the_check_timeout(pytester, run_inner, load_json, softhsm_profile):
    """A scenario check whose exploration outlives --check-timeout stops drawing examples. A slow module is never a
    failure by itself (issue 11): without a finding among the examples run it passes, but not silently — the
    reason says how many of how many ran and which option to raise, the record carries the coverage (the gate
    marks comparisons with it), and the terminal summary counts it."""
    out = pytester.path / "out" / "results.json"
    result = run_inner(f"--vendor-file={softhsm_profile}", "--pyargs", "conformance.checks", "-k",
                       "test_scenarios and test_release", "--check-timeout=0.01", f"--conformance-json={out}",
                       f"--conformance-html={out.with_name('report.html')}")
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines + result.errlines)
    (record,) = load_json(out)["results"]
    assert record["check"] == "scenario.release" and record["outcome"] == "passed"
    run, planned = record["coverage"]["examples_run"], record["coverage"]["examples_planned"]
    assert record["coverage"]["complete"] is False and run < planned
    assert record["reason"].startswith(f"no finding in {run} of {planned} examples (the rest did not fit")
    assert "the exploration stopped at --check-timeout=0.01 s" in record["reason"]
    assert "raise --check-timeout" in record["reason"]
    assert any("1 exploration cut short by its time budget" in line for line in result.outlines), result.outlines
