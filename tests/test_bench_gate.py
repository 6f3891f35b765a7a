"""The benchmark's upgrade gate (conformance/bench/compare.py): a drop is flagged only beyond the trials' spread and
with no trial overlapping, naming mechanism, strategy and thread count; outcomes, vendor pairing, files, formats."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from conformance.bench.compare import (
    BENCH_GATE_SCHEMA, BenchChange, BenchGateReport, compare, compare_files, render_bench_gate,
)
from conformance.bench.record import BenchDoc, BenchInputError, BenchRun, Row, Settings, Trial, VendorFacts

SETTINGS = Settings(mechanisms=("rsa2048_sign", "sha256_digest"), strategies=("shared", "per_thread"),
                    threads=(1, 4), trials=3, trial_s=0.5, warmup_s=0.2, pool_size=2)
RUN = BenchRun(id="0" * 32, started="2024-05-01T10:00:00+00:00", harness_version="0.1.0",
               python_pkcs11_version="0.7.0", python="3.12.3", platform="Linux-x86_64", cpus=8, sut="",
               settings=SETTINGS, finished="2024-05-01T10:05:00+00:00")


def row(*rates: float, vendor: str = "softhsm", mechanism: str = "rsa2048_sign", strategy: str = "per_thread",
        threads: int = 4, outcome: str = "measured", detail: str = "") -> Row:
    """A row whose trials ran exactly `rates` ops/s (one second each); the median is the row's ops/s."""
    trials = tuple(Trial(ops=int(r), seconds=1.0) for r in rates)
    ops = float(statistics.median(rates)) if outcome == "measured" else None
    return Row(vendor, mechanism, strategy, threads, outcome, ops_per_s=ops, trials=trials, detail=detail)


def doc(*rows: Row, settings: Settings = SETTINGS) -> BenchDoc:
    vendors = {r.vendor: VendorFacts(module=f"/usr/lib/{r.vendor}.so") for r in rows}
    return BenchDoc(replace(RUN, settings=settings), vendors, rows)


def only(base: Row, cand: Row) -> BenchChange:
    report = compare(doc(base), doc(cand))
    assert len(report.changes) == 1
    return report.changes[0]


# ------------------------------------------------------------------------------------------------- the rule


def test_identical_runs_pass():
    """The same rows on both sides: every change is "same" and the gate has no regressions."""
    rows = (row(3800, 3852, 3900), row(900, 910, 920, mechanism="sha256_digest", strategy="shared", threads=1))
    report = compare(doc(*rows), doc(*rows))
    assert [c.kind for c in report.changes] == ["same", "same"]
    assert report.regressions == ()


def test_small_drop_within_spread_passes():
    """A median 1.3% lower, with trials spread by 2.6% and 2.4%, is "same" (counted as slower within spread)."""
    change = only(row(3800, 3850, 3900), row(3760, 3800, 3850))
    assert (change.kind, change.regression) == ("same", False)
    assert change.spread_factor == pytest.approx(3900 / 3800 * 3850 / 3760)
    assert change.slower_within_spread
    assert "1 slower within spread" in render_bench_gate(compare(doc(row(3800, 3850, 3900)),
                                                                 doc(row(3760, 3800, 3850))))


def test_drop_beyond_spread_is_regression_naming_the_row():
    """3852 -> 2010 ops/s with trials spread by 3.2% and 3.0% and no trial overlapping: "slower", a regression, and
    the text output's first line names vendor, mechanism, strategy and thread count with the spread it exceeded."""
    report = compare(doc(row(3780, 3852, 3900)), doc(row(1980, 2010, 2040)))
    (change,) = report.regressions
    assert change.kind == "slower" and change.spread_factor == pytest.approx(3900 / 3780 * 2040 / 1980)
    first = render_bench_gate(report).splitlines()[0]
    assert first == ("REGRESSION softhsm rsa2048_sign per_thread at 4 threads: 3852 -> 2010 ops/s (-47.8%), "
                     "beyond the trials' spread (x1.06: each run's fastest trial over its slowest, multiplied)")


def test_drop_beyond_a_wide_spread_is_a_regression():
    """A fast call's trials vary by almost 3x (95k..273k ops/s: a soft token on a busy machine); a drop to 700 ops/s
    is far beyond that factor, so it is flagged although it is smaller than the trials' range in ops/s."""
    change = only(row(95_000, 121_000, 273_000), row(596, 719, 732))
    assert (change.kind, change.regression) == ("slower", True)


def test_drop_beyond_each_runs_spread_but_within_both_is_not_flagged():
    """Two runs of one unchanged setup half an hour apart (SoftHSM via p11-kit, RSA-2048 sign, shared session, 4 threads,
    measured): 1301 then 985 ops/s, each run's trials within x1.26 and x1.13 — beyond either spread alone, within
    both together (x1.42): not a regression, in either direction."""
    first = row(1081, 1301, 1237, 1351, 1360)
    second = row(1009, 927, 891, 985, 1005)
    for base, cand in ((first, second), (second, first)):
        change = only(base, cand)
        assert change.kind == "same" and not change.regression, change.describe()
        assert change.spread_factor == pytest.approx(1360 / 1081 * 1009 / 891)
        assert "within the trials' spread" in change.describe()


def test_one_trial_each_side_needs_ten_percent():
    """With one trial on each side there is no spread: a drop must exceed 10% of the baseline, and a note says so."""
    assert only(row(1000), row(950)).kind == "same"
    report = compare(doc(row(1000)), doc(row(850)))
    assert (report.changes[0].kind, report.changes[0].spread_factor) == ("slower", 1.1)
    assert any("no spread to measure" in n and "--trials 3" in n for n in report.notes)


def test_one_trial_side_uses_the_other_sides_spread():
    """A one-trial candidate has no spread of its own: the baseline's (1100 / 900) is the factor to exceed."""
    change = only(row(900, 1000, 1100), row(850))
    assert change.kind == "same" and change.spread_factor == pytest.approx(1100 / 900)


def test_rise_beyond_spread_is_faster_not_regression():
    """The symmetric case: beyond the spread and no overlap upwards is "faster", never a regression."""
    change = only(row(1000, 1010, 1020), row(1500, 1510, 1520))
    assert (change.kind, change.regression) == ("faster", False)


# ------------------------------------------------------------------------------------------------- outcomes


def test_measured_to_crashed_is_unsafe_regression():
    """Measured in the baseline, crashed in the candidate: "unsafe", a regression, with the candidate's detail."""
    change = only(row(1000, 1010, 1020), row(outcome="crashed", detail="unsafe at 4 threads: SIGSEGV"))
    assert (change.kind, change.regression, change.cand_ops_per_s) == ("unsafe", True, None)
    assert "SIGSEGV" in change.describe() and "per_thread at 4 threads" in change.describe()


def test_crashed_to_crashed_is_not_regression():
    """Crashed on both sides: nothing measured was lost, so "same" and no regression."""
    crashed = row(outcome="crashed", detail="unsafe at 4 threads: SIGSEGV")
    change = only(crashed, crashed)
    assert (change.kind, change.regression) == ("same", False)


def test_crashed_to_measured_is_fixed():
    """The reverse of unsafe: "fixed", not a regression."""
    change = only(row(outcome="hung", detail="hung at 4 threads"), row(1000, 1010, 1020))
    assert (change.kind, change.regression) == ("fixed", False)


def test_missing_row_is_lost():
    """A row measured in the baseline and absent from the candidate (same settings) is "lost", a regression."""
    report = compare(doc(row(1000, 1010, 1020), row(50, 51, 52, threads=1)), doc(row(1000, 1010, 1020)))
    (lost,) = report.regressions
    assert (lost.kind, lost.threads, lost.cand_outcome) == ("lost", 1, None)


def test_row_only_in_candidate_is_new():
    """A row only the candidate has is "new", not a regression."""
    report = compare(doc(row(1000, 1010, 1020)), doc(row(1000, 1010, 1020), row(5, 6, 7, threads=1)))
    assert [c.kind for c in report.changes if c.kind != "same"] == ["new"] and not report.regressions


def test_rows_outside_the_other_runs_settings_are_noted_not_lost():
    """The candidate ran fewer thread counts: the baseline's 4-thread rows are left out (a note), not lost."""
    fewer = replace(SETTINGS, threads=(1,))
    report = compare(doc(row(1000, 1010, 1020), row(50, 51, 52, threads=1)),
                     doc(row(50, 51, 52, threads=1), settings=fewer))
    assert [c.threads for c in report.changes] == [1] and not report.regressions
    assert any("threads 1 4 in the baseline, 1 in the candidate" in n for n in report.notes)
    assert any("1 row only one run's settings asked for" in n for n in report.notes)


# ------------------------------------------------------------------------------------------------- vendors


def test_alias_pairs_differently_named_vendors():
    """--as softhsm=kryoptic compares the baseline's softhsm rows with the candidate's kryoptic rows, when the
    files have several vendors and automatic pairing does not apply."""
    base = doc(row(1000, 1010, 1020), row(500, 510, 520, vendor="other"))
    cand = doc(row(400, 410, 420, vendor="kryoptic"), row(500, 510, 520, vendor="other"))
    report = compare(base, cand, [("softhsm", "kryoptic")])
    (change,) = report.regressions
    assert (change.vendor, change.base_vendor, change.kind) == ("kryoptic", "softhsm", "slower")
    assert change.describe().startswith("softhsm -> kryoptic rsa2048_sign per_thread at 4 threads:")


def test_single_vendor_files_pair_automatically():
    """One vendor in each file, differently named: they are compared without --as."""
    report = compare(doc(row(1000, 1010, 1020)), doc(row(1000, 1010, 1020, vendor="kryoptic")))
    assert report.vendors == {"softhsm": "kryoptic"}
    assert [(c.base_vendor, c.vendor, c.kind) for c in report.changes] == [("softhsm", "kryoptic", "same")]


def test_unpaired_vendor_loses_its_rows():
    """A baseline vendor the candidate did not run is named in a note and its measured rows are lost
    (regressions), as the results gate counts a missing vendor; a candidate-only vendor is a note alone."""
    base = doc(row(1000, 1010, 1020), row(500, 510, 520, vendor="other"))
    report = compare(base, doc(row(1000, 1010, 1020), row(500, 510, 520, vendor="third")))
    assert {c.vendor for c in report.changes} == {"softhsm", "other"}
    assert [(c.vendor, c.kind) for c in report.regressions] == [("other", "lost")]
    assert any("'other' has no counterpart" in n and "--as other=NAME" in n for n in report.notes)
    assert any("'third' has no counterpart" in n for n in report.notes)


def test_alias_naming_an_unknown_vendor_is_bench_input_error():
    """An alias whose vendor is not in the file is a BenchInputError naming the fix."""
    with pytest.raises(BenchInputError, match="name one of those"):
        compare(doc(row(1000)), doc(row(1000)), [("nope", "softhsm")])


# ------------------------------------------------------------------------------------------------- files and formats


def test_compare_files_reads_written_docs(tmp_path: Path):
    """compare_files reads two bench.json files written with BenchDoc.write and parses the --as texts."""
    base, cand = tmp_path / "base.json", tmp_path / "cand.json"
    doc(row(3780, 3852, 3900), row(9, vendor="other")).write(base)
    doc(row(1980, 2010, 2040, vendor="kryoptic"), row(9, vendor="other")).write(cand)
    report = compare_files(base, cand, ["softhsm=kryoptic"])
    assert [c.kind for c in report.regressions] == ["slower"]
    assert (report.baseline, report.candidate) == (str(base), str(cand))


def test_bad_file_is_one_line_bench_input_error(tmp_path: Path):
    """A file that is not JSON is a BenchInputError of one line naming the file."""
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    doc(row(1000)).write(tmp_path / "ok.json")
    with pytest.raises(BenchInputError) as caught:
        compare_files(bad, tmp_path / "ok.json")
    assert str(bad) in str(caught.value) and "\n" not in str(caught.value)


def test_bad_alias_text_is_bench_input_error(tmp_path: Path):
    """--as without '=' is a BenchInputError saying how to write it (before any file is read)."""
    with pytest.raises(BenchInputError, match="write it as OLD=NEW"):
        compare_files(tmp_path / "absent.json", tmp_path / "absent.json", ["softhsm"])


def test_json_rendering_round_trips_fields():
    """The json format has the schema and the regression count, and each change reads back to the same fields."""
    report = compare(doc(row(3780, 3852, 3900), row(outcome="skipped", detail="no mechanism", threads=1)),
                     doc(row(1980, 2010, 2040), row(outcome="skipped", detail="no mechanism", threads=1)))
    data = json.loads(render_bench_gate(report, "json"))
    assert (data["schema"], data["regressions"]) == (BENCH_GATE_SCHEMA, 1)
    assert [BenchChange.from_dict(c) for c in data["changes"]] == list(report.changes)
    assert data["changes"][0]["description"] == report.changes[0].describe()


def test_markdown_is_a_table_with_the_regression():
    """The markdown format (a CI comment) marks the failure and has one table row per listed change."""
    text = render_bench_gate(compare(doc(row(3780, 3852, 3900)), doc(row(1980, 2010, 2040))), "markdown")
    assert text.startswith("### ❌") and "| ❌ | slower | softhsm | `rsa2048_sign` | per_thread | 4 |" in text


def test_report_without_changes_renders():
    """An empty comparison renders in every format, with no regressions."""
    report = BenchGateReport(())
    assert render_bench_gate(report).startswith("0 rows compared: 0 regressions")
    assert json.loads(render_bench_gate(report, "json"))["regressions"] == 0
