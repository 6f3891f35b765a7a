"""Forked workers (issue 14, item 2): the module initialised in the parent — as a gunicorn `--preload` master or a
celery prefork parent has it — then the process forks. PKCS#11 UG v2.40 §2.5.2: "if C needs to use Cryptoki, it
needs to perform its own C_Initialize call. Furthermore, if C needs to be logged into the token(s) ..., it needs to
log into them even if P is already logged in"; without its own C_Initialize, behaviour is undefined (characterised
here, per vendor). python-pkcs11 caches the loaded library per process (pkcs11.lib() in the child hands back the
parent's copy); `lib.reinitialize()` is its way to C_Initialize again (C_Finalize, then C_Initialize).

Every check here forks the module's process: it is replaced before the next check (vendor.retire), whatever the
child did to what the two share."""

from __future__ import annotations

import pkcs11
import pytest

from ..binding import session_handle
from ..live.forking import in_forked_child
from ..live.probes import OK, outcome_of

WORKER_STEPS = ("get_token", "open_login", "random", "close")


def _worker_steps(vendor, *, reinitialize: bool, label: str):
    """A worker's first steps: (C_Initialize again,) find the token, log in on a session of its own, use it.
    Where lib.reinitialize() fails (its C_Finalize refused: a module that knows it is not initialised in the child),
    python-pkcs11 has already marked the library uninitialised, so lib.initialize() is tried next: the workaround
    a service can use, recorded as its own step."""
    def steps(step):
        lib = vendor.lib
        if reinitialize and step("reinitialize", lib.reinitialize) != OK:
            step("initialize after it", lambda: lib.initialize())  # python-pkcs11 0.9 and later
        found = []
        step("get_token", lambda: found.append(lib.get_token(token_label=label)))
        if found:
            step("open_login", lambda: found.append(found[0].open(rw=True, user_pin=vendor.pin)))
        if len(found) > 1:
            step("random", lambda: found[1].generate_random(128))
            step("close", found[1].close)
    return steps


def _forked(vendor, limits, steps=None, how="fork", *, on_parent=None):
    """The parent's logged-in session (a preloaded service's), and what the forked child did: `steps`, or
    `on_parent(parent)`'s steps where the child uses the parent's session."""
    vendor.retire = True  # the next check gets a new module process
    parent = vendor.open_session()
    return parent, in_forked_child(steps if on_parent is None else on_parent(parent), limits, how=how)


def _parent_works(vendor, session) -> str:
    """The parent's own session after the child: still open, logged in, and usable."""
    info = vendor.ground_truth.session_info(session_handle(session))
    if info is None:
        return "closed"
    if not info.state.logged_in:
        return "logged out"
    return outcome_of(lambda: session.generate_random(128))


@pytest.mark.check("fork.child_without_initialize", layer="module", spec="PKCS#11 UG v2.40 §2.5.2")
@pytest.mark.concurrency
def test_child_without_initialize(vendor, observe, limits):
    """A forked child that does not C_Initialize again — a worker using the library it inherited, as
    pkcs11.lib() hands it back — finds the token, logs in on a new session and uses it: undefined by UG §2.5.2,
    characterised (each step's outcome, or how the child ended: crashed:SIGNAL, hung). The parent's session works
    afterwards."""
    parent, result = _forked(vendor, limits, _worker_steps(vendor, reinitialize=False, label=vendor.token.label))
    observe(result.summary())
    assert _parent_works(vendor, parent) == OK


@pytest.mark.check("fork.child_uses_parent_session", layer="module", spec="PKCS#11 UG v2.40 §2.5.2; v3.0 §3.6")
@pytest.mark.concurrency
def test_child_uses_parent_session(vendor, observe, limits):
    """A forked child calling through a session its parent opened (and logged in) — the mistake a preloaded
    service makes with a module-level session: undefined by UG §2.5.2 without the child's own C_Initialize (v3.0
    §3.6: only a CKF_INTERFACE_FORK_SAFE interface gives each process "its own copy of all session objects, session
    states, login states"); characterises what it gets."""
    def through(parent):
        def steps(step):
            step("random", lambda: parent.generate_random(128))
            step("search", lambda: list(parent.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.DATA})))
        return steps
    parent, result = _forked(vendor, limits, on_parent=through)
    observe(result.summary())
    assert _parent_works(vendor, parent) == OK


@pytest.mark.check("fork.reinitialize_in_child", layer="binding", spec="PKCS#11 UG v2.40 §2.5.2; v3.0 §5.4")
@pytest.mark.concurrency
def test_reinitialize_in_child(vendor, observe, limits):
    """UG §2.5.2: the child "needs to perform its own C_Initialize call". python-pkcs11's way is lib.reinitialize()
    (C_Finalize, then C_Initialize): in a forked child it succeeds — the binding's C_Finalize must not stop the
    child's C_Initialize where the module already treats the child as not initialised (CKR_CRYPTOKI_NOT_INITIALIZED,
    v3.0 §5.4)."""
    _, result = _forked(vendor, limits, lambda step: step("reinitialize", vendor.lib.reinitialize))
    observe(result.summary())
    assert result.ended == OK and result.outcome("reinitialize") == OK, (
        f"lib.reinitialize() in a forked child: {result.summary()}")


@pytest.mark.check("fork.child_logs_in_again", layer="module", spec="PKCS#11 UG v2.40 §2.5.2")
@pytest.mark.concurrency
def test_child_logs_in_again(vendor, observe, limits):
    """UG §2.5.2: after its own C_Initialize the child "needs to log into them even if P is already logged in":
    it is an application of its own, so its login is its first (not CKR_USER_ALREADY_LOGGED_IN); it finds the token,
    logs in on its own session and uses it. (C_Initialize through lib.reinitialize(), else lib.initialize() where
    that failed: fork.reinitialize_in_child.)"""
    parent, result = _forked(vendor, limits, _worker_steps(vendor, reinitialize=True, label=vendor.token.label))
    observe(result.summary())
    worked = [result.outcome(step) for step in WORKER_STEPS]
    assert result.ended == OK and worked == [OK] * len(WORKER_STEPS), (
        f"a forked child after its own C_Initialize: {result.summary()}")


@pytest.mark.check("fork.parent_survives_child_exit", layer="module", spec="PKCS#11 UG v2.40 §2.5, §2.5.2")
@pytest.mark.concurrency
def test_parent_survives_child_exit(vendor, observe, limits):
    """UG §2.5: each process is an application of its own. A worker that initialised again, logged in, worked and
    exited as an interpreter does (its exit handlers: python-pkcs11 and the module may C_Finalize) leaves its
    parent's session open, logged in and usable — a gunicorn --preload master outlives its workers."""
    parent, result = _forked(vendor, limits, _worker_steps(vendor, reinitialize=True, label=vendor.token.label))
    after = _parent_works(vendor, parent)
    observe({"child": result.ended, "parent": after})
    assert after == OK, f"after a forked worker's exit, the parent's session is {after}"


@pytest.mark.check("fork.multiprocessing_worker", layer="module", spec="PKCS#11 UG v2.40 §2.5.2")
@pytest.mark.concurrency
def test_multiprocessing_worker(vendor, observe, limits):
    """A multiprocessing ("fork" context) worker — celery prefork, a Pool — using the library as it got it (no
    C_Initialize of its own: undefined by UG §2.5.2, characterised), then leaving through multiprocessing; the
    parent's session works afterwards."""
    parent, result = _forked(vendor, limits, _worker_steps(vendor, reinitialize=False, label=vendor.token.label),
                             how="multiprocessing")
    after = _parent_works(vendor, parent)
    observe({"worker": result.summary(), "parent": after})
    assert after == OK, f"after a multiprocessing worker's exit, the parent's session is {after}"
