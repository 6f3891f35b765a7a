"""The benchmark's own logic (issue 15): its document round-trips and validates, percentiles come out of the
histogram, bad options are one line and exit 2, and the messages between runner and worker round-trip. The runs on
real modules are in test_bench_runs.py."""

from __future__ import annotations

import json
import sys
import subprocess
from pathlib import Path

import pytest

from conformance.bench import protocol, stats
from conformance.bench.record import (BenchDoc, BenchInputError, BenchRun, Overhead, Row, Settings, Trial,
                                      VendorFacts, read_bench)
from conformance.bench.schema import validate_bench
from conformance.cli import main

SETTINGS = Settings(("random", "rsa2048_sign"), ("shared", "per_thread"), (1, 2), 3, 0.1, 0.05, 2, 5.0)


def sample_doc(finished: bool = True) -> BenchDoc:
    run = BenchRun.new(SETTINGS, "")
    doc = BenchDoc(run, {"softhsm": VendorFacts("/usr/lib/softhsm/libsofthsm2.so", {"version": "2.6"}, "conformance",
                                                ("p11-kit",), (Overhead("random", 3.0, 3.1),))})
    doc = doc.with_row(Row("softhsm", "random", "shared", 1, "measured", 1000.0, 0.9, 1.1, 1.5,
                           (Trial(100, 0.1), Trial(98, 0.1), Trial(103, 0.1))))
    doc = doc.with_row(Row("softhsm", "random", "per_thread", 2, "crashed", trials=(Trial(50, 0.1),),
                           detail="unsafe at 2 threads: SIGSEGV"))
    doc = doc.with_row(Row("softhsm", "rsa2048_sign", "shared", 1, "skipped", detail="the token does not list X"))
    return doc.finished() if finished else doc


def test_document_round_trips_and_validates(tmp_path: Path) -> None:
    """bench.json (schema pkcs11-conformance/bench/1, the issue's contract) reads back as the document written,
    and the written file is valid against the shipped schema."""
    doc = sample_doc()
    path = tmp_path / "bench.json"
    doc.write(path)
    data = json.loads(path.read_text())
    assert data["schema"] == "pkcs11-conformance/bench/1"
    assert validate_bench(data) == []
    assert set(data["rows"][0]) >= {"vendor", "mechanism", "strategy", "threads", "ops_per_s", "p50_ms", "p95_ms",
                                    "p99_ms", "trials"}
    assert BenchDoc.from_dict(data).to_dict() == doc.to_dict()
    assert read_bench(path).to_dict() == doc.to_dict()


def test_measured_row_without_a_number_is_invalid() -> None:
    """The schema refuses a `measured` row with no ops/s: a row without a number says why (its outcome)."""
    data = sample_doc().to_dict()
    data["rows"][0]["ops_per_s"] = None
    assert validate_bench(data)


def test_unfinished_run_is_refused_by_the_gate_reader(tmp_path: Path) -> None:
    """An interrupted run's file (run.finished null) is readable for the report but refused where it would be
    compared: rows that were never measured must not read as a drop."""
    path = tmp_path / "bench.json"
    sample_doc(finished=False).write(path)
    assert read_bench(path, complete=False).run.finished is None
    with pytest.raises(BenchInputError, match="did not finish"):
        read_bench(path)


def test_results_file_is_named_as_such(tmp_path: Path) -> None:
    """A results file passed where a bench file belongs: the message says which command compares it."""
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema": "pkcs11-conformance/results/1"}))
    with pytest.raises(BenchInputError, match="pkcs11-conformance gate"):
        read_bench(path)


def test_percentiles_from_the_histogram() -> None:
    """p50/p95/p99 from the log-scale histogram are within its 2% bucket width of the exact percentiles, and
    histograms of several trials merge into the histogram of all their calls."""
    latencies = [1_000_000 + 1000 * i for i in range(1000)]  # 1.000 .. 1.999 ms
    hist = stats.merge([stats.histogram(latencies[:500]), stats.histogram(latencies[500:])])
    assert hist == stats.histogram(latencies)
    for q, exact in ((50, 1.4995), (95, 1.9495), (99, 1.9895)):
        got = stats.percentile_ms(hist, q)
        assert got is not None and abs(got - exact) / exact < 0.02, (q, got)
    assert stats.percentile_ms({}, 50) is None


def test_spread_is_the_trials_range() -> None:
    """A row's spread is its trials' max - min ops/s: what bench-gate holds a drop against."""
    row = sample_doc().rows[0]
    assert row.spread == pytest.approx(1030 - 980)


def test_protocol_messages_round_trip() -> None:
    """Every message between runner and worker reads back as itself through its JSON line."""
    messages = [
        protocol.Start("/m.so", "conformance", None, "random", True, 2, ""),
        protocol.Ready(12, {"library": {"version": "2.6"}}, 3.5, ""),
        protocol.Run("pool", 4, 0.1, 0.5, 10.0, 8),
        protocol.Measured(100, 0.5, {3: 1, 700: 99}),
        protocol.Stopped("failed", "GeneralError"),
        protocol.OverheadAsked(7, 1000, 10.0, 8),
        protocol.OverheadMeasured(3.0, 3.1),
    ]
    for message in messages:
        assert protocol.decode(json.loads(json.dumps(protocol.encode(message)))) == message


def test_overhead_percent() -> None:
    """The benchmark's overhead is its timed loop's time per call over the bare loop's, as a percentage."""
    assert Overhead("random", 2.0, 2.1).percent == pytest.approx(5.0)


@pytest.mark.parametrize("args, fix", [
    ([], "--vendor=NAME"),
    (["--vendor=nonesuch"], "known vendors"),
    (["--vendor=softhsm", "--mechanism=rsa1024"], "choose from"),
    (["--vendor=softhsm", "--strategy=sut"], "--sut=MODULE:FACTORY"),
    (["--vendor=softhsm", "--sut=nonesuch_module:make"], "cannot import"),
    (["--vendor=softhsm", "--threads=0"], "--threads"),
    (["--vendor=softhsm", "--trials=0"], "--trials"),
    (["--vendor=softhsm", "--pool-size=0"], "--pool-size"),
    (["--vendor=softhsm", "--hang-seconds=0"], "--hang-seconds"),
])
def test_bad_options_are_one_line_and_exit_2(args: list[str], fix: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Bad input is one line naming the fix and the usage exit code, never a traceback (DESIGN: command line)."""
    assert main(["bench", *args, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fix in err and "Traceback" not in err, err


def test_bench_gate_bad_file_is_one_line(tmp_path: Path) -> None:
    """bench-gate with a file that is not a bench file: one line on stderr, exit 2, as the gate's."""
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "bench-gate", str(bad), str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not JSON" in proc.stderr, proc.stderr
