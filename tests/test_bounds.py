"""Bounded everything: a check never runs past --check-timeout (issue: "Per-step, per-example and per-check time
limits with sensible defaults and options")."""

from __future__ import annotations

import pytest


def test_scenario_exploration_stops_at_the_check_timeout(pytester, run_inner, load_json, softhsm_profile):
    """A scenario check whose exploration outlives --check-timeout stops drawing examples and fails, saying how
    many examples it ran and which option to raise — it neither runs on nor passes silently."""
    out = pytester.path / "out" / "results.json"
    result = run_inner(f"--vendor-file={softhsm_profile}", "--pyargs", "conformance.checks", "-k",
                       "test_scenarios and test_release", "--check-timeout=0.01", f"--conformance-json={out}",
                       f"--conformance-html={out.with_name('report.html')}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, "\n".join(result.outlines + result.errlines)
    (record,) = load_json(out)["results"]
    assert record["check"] == "scenario.release" and record["outcome"] == "failed"
    assert "exploration stopped at --check-timeout=0.01 s after" in record["reason"]
    assert "raise --check-timeout" in record["reason"]
