"""Hypothesis-drawn concurrency scenarios: thousands of interleavings of real PKCS#11 calls across threads and
sessions, each step judged against the model (conformance/engine/model.py), failures shrunk to a minimal schedule.
Scenario ids name the family; the scenario's `observed` value lists what each implementation-defined point did."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.concurrency


@pytest.mark.check("scenario.sessions_login", layer="module", spec="PKCS#11 UG v2.40 §2.6; v3.0 §5.6")
def test_sessions_login(scenario):
    """UG §2.6.5: an application's sessions share one login state — sessions opened with and without a PIN from
    several threads, closed in any order; every session's state as C_GetSessionInfo reports it matches the model,
    a refused second login is one the spec allows, and nothing is left open that no step accounts for."""
    scenario("sessions")


@pytest.mark.check("scenario.active_operations", layer="module", spec="PKCS#11 v3.0 §5.7.7, UG v2.40 §4.1; python-pkcs11 docs, Concurrency")
def test_active_operations(scenario):
    """Searches and encrypt generators partly consumed, with one-shot operations, on the same or another session and
    thread: what must raise OperationActive (v3.0 §5.7.7, UG §4.1), what must block on the session lock (docs:
    "The lock is not released until the iterator is consumed"), what must proceed."""
    scenario("operations")


@pytest.mark.check("scenario.release", layer="binding", spec="python-pkcs11 docs, Concurrency")
def test_release(scenario):
    """Iterators consumed, dropped and collected, by the thread that started them or another, and outliving their
    session (docs: the lock is released when the iterator "is consumed (or garbage collected)"): the session is
    usable afterwards and the next operation is not disturbed."""
    scenario("release")


@pytest.mark.check("scenario.provider", layer="provider", spec="python-pkcs11 docs, Reenterant Sessions; --sut contract")
@pytest.mark.sut
def test_provider(scenario):
    """Many actors acquiring, nesting, using the shared session as a service does (sign-free one-shots, generators,
    searches, partly consumed iterators, attribute reads) and releasing; the opener failing on purpose. Invariants:
    one session while anyone holds it, the same one for every holder, closed after the last release, nothing leaked."""
    scenario("provider")


@pytest.mark.check("scenario.provider_stress", layer="provider", spec="python-pkcs11 docs, Reenterant Sessions; --sut contract")
@pytest.mark.sut
@pytest.mark.risky
def test_provider_stress(stress):
    """Races no schedule can force: threads released together at a barrier, with a tiny switch interval, loop
    acquire/use/release; every holder must get the same open session, every use must work, and no provider
    session may be open once all have released."""
    stress()
