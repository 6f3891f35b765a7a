"""Records and the results document: round trips, and a results file that is valid at every moment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance import RESULTS_SCHEMA
from conformance.results import document as results
from conformance.outcomes import LAYERS, OUTCOMES
from conformance.engine.schedule import Schedule, Step
from conformance.results.records import BEHAVIOUR_CLASSES, Behaviour, Coverage, Record, Reproducer
from conformance.results.document import Results, ResultsWriter, RunInfo, load_results, write_atomic

texts = st.text(max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=10,
)
reproducers = st.builds(Reproducer, schedule=st.lists(json_values, max_size=4).map(tuple), hypothesis=st.none() | texts,
                        family=st.none() | texts, actors=st.none() | st.integers(1, 5))
records = st.builds(
    Record,
    check=st.text(min_size=1, max_size=30),
    vendor=st.text(min_size=1, max_size=20),
    layer=st.sampled_from(LAYERS),
    outcome=st.sampled_from(OUTCOMES),
    observed=json_values,
    reason=texts,
    spec=texts,
    duration_s=st.floats(0, 10**4).map(lambda x: round(x, 6)),
    reproducer=st.none() | reproducers,
    trace=st.none() | texts,
    coverage=st.none() | st.builds(Coverage, run=st.integers(0, 500), planned=st.integers(0, 500),
                                   complete=st.booleans()),
    behaviour=st.none() | st.builds(Behaviour, kind=st.sampled_from(BEHAVIOUR_CLASSES), detail=texts),
)
run_infos = st.builds(
    RunInfo,
    id=st.text(min_size=1, max_size=32),
    started=texts,
    harness_version=texts,
    python_pkcs11_version=texts,
    python=texts,
    platform=texts,
    hypothesis_profile=texts,
    sut=texts,
    finished=st.none() | texts,
)
vendor_facts = st.dictionaries(
    st.text(min_size=1, max_size=10),
    st.fixed_dictionaries({"module": texts, "library": st.dictionaries(texts, texts, max_size=3),
                           "token": st.dictionaries(texts, texts, max_size=3), "mechanisms": st.integers(0, 500)}),
    max_size=3,
)
documents = st.builds(Results, run=run_infos, vendors=vendor_facts, results=st.lists(records, max_size=5).map(tuple))


def through_json(data: Any) -> Any:
    return json.loads(json.dumps(data))


def test_reproducer_carries_family_and_actors_of_its_schedule():
    """Reproducer.of(schedule) keeps the family and the actor count, so a report or a replay needs no guess from
    the check id; to_schedule() gives the schedule back."""
    schedule = Schedule("sessions", 3, (Step(2, "open", {"ref": "s0", "login": True}),))
    reproducer = Reproducer.of(schedule, "note")
    assert (reproducer.family, reproducer.actors) == ("sessions", 3)
    assert reproducer.to_schedule() == schedule


def test_reproducer_of_an_older_file_takes_the_family_it_is_given():
    """A results file written before family and actors were recorded: the exploring check's family is used and
    the actors are counted from the steps."""
    old = Reproducer.from_dict({"schedule": [{"actor": 1, "op": "acquire", "args": {}}], "hypothesis": None})
    assert (old.family, old.actors) == (None, None)
    assert old.to_schedule("provider") == Schedule("provider", 2, (Step(1, "acquire", {}),))


@given(reproducers)
def test_reproducer_round_trips(reproducer):
    """Reproducer.from_dict(r.to_dict()) gives r back, also through JSON."""
    assert Reproducer.from_dict(through_json(reproducer.to_dict())) == reproducer


@given(records)
def test_record_round_trips(record):
    """Record.from_dict(r.to_dict()) gives r back, also through JSON."""
    assert Record.from_dict(through_json(record.to_dict())) == record


@given(run_infos)
def test_run_info_round_trips(run):
    """RunInfo.from_dict(r.to_dict()) gives r back, also through JSON."""
    assert RunInfo.from_dict(through_json(run.to_dict())) == run


@given(documents)
def test_results_round_trip(doc):
    """Results.from_dict(d.to_dict()) gives d back, also through JSON, and carries the schema id."""
    data = through_json(doc.to_dict())
    assert data["schema"] == RESULTS_SCHEMA
    assert Results.from_dict(data) == doc


def test_results_refuse_other_schema():
    """A document of another schema is refused, naming the schema found."""
    with pytest.raises(ValueError, match="pkcs11-conformance/results/0"):
        Results.from_dict({"schema": "pkcs11-conformance/results/0", "run": {}, "vendors": {}, "results": []})


def test_record_dict_has_the_contract_keys():
    """Record.to_dict has exactly the results contract's keys (nodeid stays out)."""
    record = Record("a.b", "v", "module", "passed", nodeid="x.py::test")
    assert set(record.to_dict()) - {"deviations"} == {"check", "vendor", "layer", "outcome", "observed", "reason", "spec", "duration_s",
                                     "reproducer", "trace"}


def make_run() -> RunInfo:
    return RunInfo.new(sut="conformance.refsession:reference_session", hypothesis_profile="default", run_id="fake-run")


def sample_records(count: int) -> list[Record]:
    return [Record(f"fake.check_{i}", "fake-vendor", "module", "passed", observed={"i": i}, duration_s=0.25)
            for i in range(count)]


def test_writer_file_is_valid_at_every_flush(tmp_path, monkeypatch):
    """With every add flushing, the file loads after creation and after each add, holding the records so far."""
    monkeypatch.setattr(results, "WRITE_INTERVAL_S", 0.0)
    path = tmp_path / "out" / "results.json"
    vendors = {"fake-vendor": {"module": "/x.so", "library": {}, "token": {}, "mechanisms": 0}}
    writer = ResultsWriter(path, make_run(), vendors)
    assert load_results(path) == Results(make_run(), vendors, ())
    added = sample_records(4)
    for n, record in enumerate(added, 1):
        writer.add(record)
        loaded = load_results(path)
        assert loaded.results == tuple(added[:n])
        assert loaded.run.finished is None


@pytest.mark.parametrize(("exit_status", "finished"), [(1, True), (2, False)])
def test_writer_final_flush_stamps_finished_only_for_a_complete_run(tmp_path, exit_status, finished):
    """The last flush writes every record and run.exit_status; it stamps run.finished for a complete run (exit
    status 1: checks failed) and not for an interrupted one (2), which the report and the gate must not take for
    complete."""
    path = tmp_path / "results.json"
    writer = ResultsWriter(path, make_run(), {})
    for record in sample_records(3):
        writer.add(record)
    writer.flush(exit_status=exit_status)
    loaded = load_results(path)
    assert loaded.results == tuple(sample_records(3))
    assert (loaded.run.finished is not None) is finished and loaded.run.exit_status == exit_status
    assert loaded.run.id == "fake-run"


def test_writer_holds_records_until_the_next_flush(tmp_path, monkeypatch):
    """Records added inside the write interval reach the file at the next flush (the file stays valid meanwhile)."""
    monkeypatch.setattr(results, "WRITE_INTERVAL_S", 10**9)
    path = tmp_path / "results.json"
    writer = ResultsWriter(path, make_run(), {})
    writer.add(sample_records(1)[0])
    assert load_results(path).results == ()
    writer.flush()
    assert load_results(path).results == tuple(sample_records(1))


def test_write_atomic_leaves_no_temp_files(tmp_path):
    """Repeated atomic writes leave only the target file, holding the last text."""
    path = tmp_path / "deep" / "results.json"
    for i in range(5):
        write_atomic(path, f"version {i}\n")
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]
    assert path.read_text() == "version 4\n"


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    """A write that fails midway leaves the previous file intact and no temp file behind."""
    path = tmp_path / "results.json"
    write_atomic(path, "good\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "bad \ud800 text")  # a lone surrogate cannot be encoded as UTF-8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert path.read_text() == "good\n"


def test_load_results_reads_what_the_writer_wrote(tmp_path):
    """load_results gives back the document the writer returned from its last flush."""
    path = tmp_path / "results.json"
    writer = ResultsWriter(path, make_run(), {})
    for record in sample_records(2):
        writer.add(record)
    doc = writer.flush(exit_status=0)
    assert load_results(path) == doc
    assert isinstance(json.loads(Path(path).read_text()), dict)


def test_behaviour_detail_keeps_the_kind_not_the_numbers():
    """A failure's kind is its first line with the numbers that vary from run to run (handles, counts, step
    indexes, durations) made #: the same failure on two runs has the same signature."""
    one = Behaviour.of_failure("failed", "AssertionError: the refused login left session handle(s) [18] open\nmore")
    two = Behaviour.of_failure("failed", "AssertionError: the refused login left session handle(s) [40] open")
    assert one == two
    assert one.detail == "AssertionError: the refused login left session handle(s) [#] open"
    assert Behaviour.of_failure("failed", "x: got 0x1a") == Behaviour("failed", "x: got #")
