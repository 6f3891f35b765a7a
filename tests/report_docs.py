"""Hand-made results documents and constants for the report's tests (test_report_html.py, test_report_chromium.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from conformance import RESULTS_SCHEMA
from conformance.report.model import Report, build
from conformance.results.document import Results

REPO = Path(__file__).resolve().parent.parent
SOFTHSM_PROFILE = REPO / "conformance" / "profiles" / "softhsm.toml"
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed; run scripts/bootstrap.sh (it installs Debian's chromium)")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FINDINGS = ("failed", "crashed", "hung", "error")

FAILED_STEPS = [{"actor": 0, "op": "acquire", "args": {}}, {"actor": 1, "op": "acquire", "args": {}},
                {"actor": 0, "op": "search", "args": {"ref": "it0", "session": "s0", "batch": 2}},
                {"actor": 1, "op": "release", "args": {}, "expect_block": True}]
HYPOTHESIS_NOTE = "You can reproduce this example by temporarily adding @reproduce_failure('6.100.0', b'AXic') to the test"
ISSUE = "https://github.com/pyauth/python-pkcs11/issues/999"


# --- hand-made results -------------------------------------------------------------------------------------------


def result(check: str, outcome: str = "passed", vendor: str = "softhsm", **extra: Any) -> dict[str, Any]:
    out = {"check": check, "vendor": vendor, "layer": extra.pop("layer", "module"), "outcome": outcome,
           "observed": None, "reason": "", "spec": "spec §1", "duration_s": 0.01, "reproducer": None, "trace": None,
           "deviations": []}
    out.update(extra)
    return out


def run_doc(results: list[dict[str, Any]], *, run_id: str = "aaaaaaaa0000", binding: str = "0.10.1",
            vendors: tuple[str, ...] = ("softhsm",), finished: str | None = "2026-01-01T00:01:00+00:00",
            sut: str = "conformance.refsession:reference_session", exit_status: int | None = 0) -> dict[str, Any]:
    return {
        "schema": RESULTS_SCHEMA,
        "run": {"id": run_id, "started": "2026-01-01T00:00:00+00:00", "finished": finished, "harness_version": "0.1.0",
                "python_pkcs11_version": binding, "python": "3.11.7", "platform": "Linux", "hypothesis_profile": "dev",
                "sut": sut, "exit_status": exit_status},
        "vendors": {v: {"module": f"/usr/lib/{v}.so",
                        "library": {"manufacturer": v.upper(), "description": "lib", "version": "2.6",
                                    "cryptoki_version": "2.40"},
                        "token": {"label": "conformance", "model": "model", "serial": "123"}, "mechanisms": 70}
                    for v in vendors},
        "results": results,
    }


def failing_scenario_doc() -> dict[str, Any]:
    """A run with a failed scenario (reproducer + hypothesis note + trace) and a declared deviation with an issue."""
    return run_doc([
        result("scenario.provider", "failed", layer="provider",
               reason="Failed: failed: step 3 (actor1: release()): expected blocked, got ok  [provider: docs]\n\n"
                      "minimal schedule:\n...\nreplay: pytest --vendor=softhsm --replay=RESULTS.json -k test_provider",
               reproducer={"schedule": FAILED_STEPS, "hypothesis": HYPOTHESIS_NOTE}, trace="traces/provider.json"),
        result("binding.failed_login_closes_session", "xfailed", layer="binding",
               reason=f"declared binding deviation: leaks a session ({ISSUE})",
               deviations=[{"origin": "binding", "check": "binding.failed_login_closes_session",
                            "reason": "leaks a session", "outcome": "failed", "issue": ISSUE,
                            "versions": {"python-pkcs11": "==0.11.0"}}]),
        result("login.second_login_same_app", observed="UserAlreadyLoggedIn"),
    ], run_id="feedbeef00112233", binding="0.11.0")


def model(*docs: dict[str, Any], sources: list[str | None] | None = None) -> Report:
    return build([Results.from_dict(d) for d in docs], sources)


def cells_of(report: Report, check: str) -> list[Any]:
    return next(r.cells for a in report.areas for r in a.rows if r.check == check)
