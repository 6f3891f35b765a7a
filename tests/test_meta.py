"""What a check carries to its record (conformance/plugin/meta.py): CheckMeta round-trips through the plain data
reports carry across pytest-xdist, and updates replace it in the item's stash."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.outcomes import DIED, LAYERS
from conformance.plugin.meta import META, CheckMeta, attach, carried_by, meta_of, update
from conformance.results.records import Reproducer

texts = st.text(max_size=20)
metas = st.builds(
    CheckMeta,
    check=st.text(min_size=1, max_size=20), vendor=st.text(min_size=1, max_size=10), layer=st.sampled_from(LAYERS),
    spec=texts, observed=st.none() | st.integers() | st.lists(texts, max_size=3) | st.dictionaries(texts, texts),
    note=texts, died=st.none() | st.sampled_from(DIED), integrity=texts,
    reproducer=st.none() | st.builds(Reproducer, schedule=st.lists(st.dictionaries(texts, texts), max_size=2).map(tuple),
                                     hypothesis=st.none() | texts, family=st.none() | texts,
                                     actors=st.none() | st.integers(1, 4)),
    trace=st.none() | texts,
    deviations=st.lists(st.dictionaries(texts, texts, max_size=2), max_size=2).map(tuple),
)


@given(metas)
def test_check_meta_round_trips_through_json(meta: CheckMeta) -> None:
    """CheckMeta.from_dict(json(m.to_dict())) == m: what a worker's report carries is what the controller reads."""
    assert CheckMeta.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta


def test_a_report_carries_the_meta_as_plain_data() -> None:
    """attach() puts plain data on the report (it must survive pytest-xdist's serialisation); carried_by() reads it
    back; a report of another test carries none."""
    meta = CheckMeta("login.x", "softhsm", "module", "UG §2.6", observed={"a": [1]})
    report = SimpleNamespace()
    attach(report, meta)  # type: ignore[arg-type]
    assert isinstance(report.conformance, dict)
    assert carried_by(report) == meta  # type: ignore[arg-type]
    assert carried_by(SimpleNamespace()) is None  # type: ignore[arg-type]


def test_update_replaces_the_items_meta() -> None:
    """update() records what was learned as a new frozen CheckMeta in the item's stash."""
    item = SimpleNamespace(stash=pytest.Stash())
    item.stash[META] = CheckMeta("login.x", "softhsm", "module", "")
    update(item, observed="ok", note="3 rounds")  # type: ignore[arg-type]
    assert meta_of(item) == CheckMeta("login.x", "softhsm", "module", "", observed="ok", note="3 rounds")  # type: ignore[arg-type]
