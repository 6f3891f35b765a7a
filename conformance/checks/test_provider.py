"""The session provider under test (--sut; default: the documented refcounted session), on a real token.

Each check is a scripted scenario: a fixed list of steps run in the executor child (so a provider or module that
crashes or hangs is reported as such) and judged by the same model as the drawn scenarios.
"""

from __future__ import annotations

import pytest

from ..engine.schedule import Step

pytestmark = [pytest.mark.sut, pytest.mark.concurrency]
THREADS = 4
DOCS = "python-pkcs11 docs, Reenterant Sessions"


def step(actor: int, op: str, **args) -> Step:
    return Step(actor, op, args)


@pytest.mark.check("provider.threads_share_one_session", layer="provider", spec=DOCS)
def test_threads_share_one_session(play, one_shot):
    """Docs: "it can be advantageous to use a single session across multiple threads" — every thread that acquires
    gets the same session, opened once, and each can use it (a SHA-256 digest; C_GenerateRandom where the token
    has no SHA-256)."""
    play("provider",
         *(step(a, "acquire") for a in range(THREADS)),
         *(step(a, "use", what=one_shot) for a in range(THREADS)),
         *(step(a, "release") for a in range(THREADS)))


@pytest.mark.check("provider.closes_on_last_release", layer="provider", spec=DOCS)
def test_closes_on_last_release(play):
    """Docs: "failing to close a session may leak resources" — the session stays open while any holder remains
    and is closed by the last release; nothing is left open."""
    play("provider", *(step(a, "acquire") for a in range(3)), *(step(a, "release") for a in range(3)))


@pytest.mark.check("provider.stays_open_while_held", layer="provider", spec=DOCS)
def test_stays_open_while_held(play, one_shot):
    """A release by one thread does not close the session another thread still holds: its operations work."""
    play("provider", step(0, "acquire"), step(1, "acquire"), step(1, "release"),
         step(0, "use", what=one_shot), step(0, "use", what="search"), step(0, "release"))


@pytest.mark.check("provider.nested_acquire", layer="provider", spec=DOCS)
def test_nested_acquire(play, one_shot):
    """The provider is reentrant: an acquire inside an acquire gives the same session, still open after the inner
    release, closed after the outer one."""
    play("provider", step(0, "acquire"), step(0, "acquire"), step(0, "release"),
         step(0, "use", what=one_shot), step(0, "release"))


@pytest.mark.check("provider.reopens_after_release", layer="provider", spec=DOCS)
def test_reopens_after_release(play):
    """After the last release, the next acquire opens a new, working session."""
    play("provider", step(0, "acquire"), step(0, "release"), step(0, "acquire"),
         step(0, "use", what="encrypt"), step(0, "release"))


@pytest.mark.check("provider.open_failure_recovers", layer="provider", spec=f"{DOCS}; --sut contract")
def test_open_failure_recovers(play, one_shot):
    """When opening the session fails (the harness makes open_session fail, as a token gone would), acquire raises,
    and no phantom holder is left: the next acquire opens a session and its release closes it."""
    play("provider", step(0, "fail_next_open"), step(0, "acquire"), step(0, "acquire"),
         step(0, "use", what=one_shot), step(0, "release"))


@pytest.mark.check("provider.acquire_while_app_logged_in", layer="provider", spec=f"PKCS#11 v3.0 §5.6.8; {DOCS}")
def test_acquire_while_app_logged_in(play, observe):
    """Docs: "a number of PKCS#11 libraries do not support the same token being logged in from simultaneous
    sessions". Characterises what acquire does when another part of the application already has a logged-in
    session: it works, or raises (the value is what the gate compares)."""
    trace = play("provider", step(0, "open", ref="s0", login=True), step(0, "acquire"))
    observe(trace.results[1].outcome())


@pytest.mark.check("provider.release_logs_out_application", layer="provider", spec="PKCS#11 UG v2.40 §2.6.5")
def test_release_logs_out_application(play, observe):
    """UG §2.6.5: a logout applies to every session of the application. Characterises the login state another
    session of the application (opened without a PIN) is left in after the provider's last release."""
    trace = play("provider", step(0, "open", ref="s0", login=False), step(0, "acquire"), step(0, "release"),
                 step(0, "state", session="s0"))
    observe(trace.results[3].outcome())
