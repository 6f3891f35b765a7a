"""Object labels: one prefix for every run (the start-up sweep finds any run's leftovers), one tag per run (the
end of a run removes only its own objects)."""

from __future__ import annotations

from conformance import labels


def test_run_tag_is_made_once_and_inherited(monkeypatch):
    """The controller makes the tag; a process that already has one in its environment (an xdist worker, an
    executor child) keeps it, so every process of a run labels alike."""
    monkeypatch.delenv(labels.RUN_TAG_ENV, raising=False)
    tag = labels.ensure_run_tag()
    assert len(tag) == 8 and labels.ensure_run_tag() == tag
    assert labels.label("obj") == f"pkcs11-conformance-{tag}-obj"


def test_every_label_carries_the_common_prefix(monkeypatch):
    """Whatever the tag, labels start with the prefix the start-up sweep looks for."""
    monkeypatch.setenv(labels.RUN_TAG_ENV, "0123abcd")
    assert labels.label("fixture").startswith(labels.PREFIX + "-")
    assert labels.run_prefix() == "pkcs11-conformance-0123abcd"
