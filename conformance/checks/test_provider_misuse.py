"""The session provider used the way services misuse it (issue 14, item 3): a release in an error path with no
acquire behind it, a holder releasing with its search unconsumed while another holder works, and an acquire after
the process forked. The reference refcounted session and --sut pools alike; scripted scenarios judged by the model
(conformance/engine), except where the spec leaves the outcome open (characterised)."""

from __future__ import annotations

import pytest

from ..binding import session_handle
from ..engine.schedule import Step
from ..live.forking import in_forked_child
from ..live.probes import OK, outcome_of

pytestmark = [pytest.mark.sut, pytest.mark.concurrency]
DOCS = "python-pkcs11 docs, Reenterant Sessions"


def step(actor: int, op: str, **args) -> Step:
    return Step(actor, op, args)


@pytest.mark.check("provider.stray_release_when_idle", layer="provider", spec=f"{DOCS}; --sut contract")
def test_stray_release_when_idle(play, observe, one_shot):
    """A release with no acquire behind it while nobody holds the session — a service's error path that releases
    what it never got — is the provider's to refuse or ignore (its answer is characterised); the next holder still
    gets an open session of its own, can use it, and its release closes it."""
    trace = play("provider", step(0, "stray_release"), step(1, "acquire"), step(1, "use", what=one_shot),
                 step(1, "release"))
    observe(trace.results[0].outcome())


@pytest.mark.check("provider.stray_release_while_held", layer="provider", spec=f"{DOCS}; --sut contract")
def test_stray_release_while_held(play, observe, one_shot):
    """A stray release while another holder has the session must not close it under that holder: the holder's
    next use works and its own release closes the session."""
    trace = play("provider", step(0, "acquire"), step(1, "stray_release"), step(0, "use", what=one_shot),
                 step(0, "release"))
    observe(trace.results[1].outcome())


@pytest.mark.check("provider.release_with_unconsumed_search", layer="provider", spec=f"python-pkcs11 docs, Concurrency; {DOCS}")
def test_release_with_unconsumed_search(play):
    """A holder that releases with its search partly consumed keeps the session's lock (docs: "The lock is not
    released until the iterator is consumed (or garbage collected)"): another holder's search on the shared session
    waits for it, and runs once the first holder's iterator is collected."""
    play("provider", step(0, "acquire"), step(1, "acquire"), step(0, "use_partial", ref="it0"), step(0, "release"),
         step(1, "use", what="search"), step(0, "drop", iterator="it0"), step(1, "release"))


@pytest.mark.check("provider.stale_search_after_last_release", layer="provider", spec=f"PKCS#11 v3.0 §5.6.7, §5.7.7; {DOCS}")
def test_stale_search_after_last_release(play):
    """The last holder releases with its search unconsumed (the provider closes the session under it), a new holder
    acquires — a new session, perhaps with the old one's handle — and starts a search there; collecting the stale
    iterator must not end the new holder's search (its C_FindObjectsFinal belongs to a closed session, v3.0
    §5.6.7), which then finds every object."""
    play("provider", step(0, "acquire"), step(0, "use_partial", ref="it0"), step(0, "release"), step(1, "acquire"),
         step(1, "use_partial", ref="it1"), step(0, "drop", iterator="it0"), step(1, "consume", iterator="it1"),
         step(1, "release"))


@pytest.mark.check("provider.acquire_after_fork", layer="provider", spec=f"PKCS#11 UG v2.40 §2.5.2; {DOCS}")
def test_acquire_after_fork(vendor, observe, limits):
    """A forked worker acquiring from the provider it inherited (a module-level pool made before the fork, as a
    gunicorn --preload app has it) while the parent holds the shared session: it gets the parent's session, which
    UG §2.5.2 gives the child no right to use — characterised (each step's outcome, or how the child ended). The
    parent's session works afterwards, and its release closes it."""
    if vendor.new_provider is None:
        pytest.skip("the module's process was started without a --sut factory")
    vendor.retire = True  # the child shares the module's state with this process: the next check gets a new one
    provider = vendor.new_provider()
    held = provider.acquire()

    def child(step):
        got = []
        step("acquire", lambda: got.append(provider.acquire()))
        if got:
            step("the parent's session" if got[0] is held else "another session", lambda: None)
            step("random", lambda: got[0].generate_random(128))
            step("release", provider.release)
    result = in_forked_child(child, limits)
    observe(result.summary())
    assert outcome_of(lambda: held.generate_random(128)) == OK, (
        f"after a forked worker acquired from the inherited provider ({result.summary()}), the parent's shared "
        "session does not work")
    provider.release()
    assert vendor.ground_truth.session_info(session_handle(held)) is None, "the parent's last release left it open"
