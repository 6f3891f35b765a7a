"""Tiny fake conformance checks, written into inner pytest runs by test_plugin.py and test_schema.py."""

# Tiny checks, one per outcome; each uses the real `vendor` fixture, so the plugin treats them as conformance checks.
FAKE_CHECKS = '''
from __future__ import annotations

import pytest


@pytest.fixture
def broken_setup():
    raise RuntimeError("fixture broke")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")


@pytest.mark.check("fake.passes", layer="module", spec="x")
def test_passes(vendor, observe):
    import os
    print("a check body that prints")  # must not land among the module process's answers
    os.write(1, b"nor what the module writes to fd 1\\n")
    observe({"seen": ["ok", 1]})


@pytest.mark.check("fake.fails", layer="binding", spec="x")
def test_fails(vendor):
    assert 1 == 2, "made to fail"


@pytest.mark.check("fake.skips", layer="module", spec="x")
def test_skips(vendor):
    pytest.skip("why")


@pytest.mark.check("fake.xfails", layer="provider", spec="x")
@pytest.mark.xfail(strict=True, reason="known to fail")
def test_xfails(vendor):
    assert 1 == 2


@pytest.mark.check("fake.xpasses", layer="module", spec="x")
@pytest.mark.xfail(strict=True, reason="expected to fail")
def test_xpasses(vendor):
    pass


# A check that takes a fixture the module's process cannot give runs in pytest, so it drives the module through
# one of the driver fixtures (here: the executor itself).
@pytest.mark.check("fake.setup_error", layer="module", spec="x")
def test_setup_error(executor, broken_setup):
    pass


@pytest.mark.check("fake.teardown_error", layer="module", spec="x")
def test_teardown_error(executor, broken_teardown):
    pass


@pytest.mark.check("fake.echoes_pin", layer="module", spec="x")
def test_echoes_pin(vendor, observe):
    observe(vendor.user_pin())
    pytest.fail(f"login with {vendor.user_pin()} refused")


def test_not_a_check():
    pass
'''

# Check bodies that take their process down or never return, as a faulty PKCS#11 module would. They run in the
# vendor's executor child: the run goes on, and the check after them runs on a fresh child.
CRASHING_CHECK = '''
import ctypes
import os
import time

import pytest


@pytest.mark.check("fake.crashes", layer="module", spec="x")
def test_crashes(vendor):
    os._exit(70)


@pytest.mark.check("fake.segfaults", layer="module", spec="x")
def test_segfaults(vendor):
    ctypes.string_at(0)


@pytest.mark.check("fake.hangs", layer="module", spec="x")
def test_hangs(vendor):
    vendor.open_session()
    time.sleep(60)


@pytest.mark.check("fake.runs_after", layer="module", spec="x")
def test_runs_after(vendor):
    assert vendor.open_session(login=False) is not None
'''

# Checks whose body breaks in the harness's own code (a helper of the package raising, as an incompatibility with an
# older python-pkcs11 would), once declared as a known failure, and one needing what the binding does not offer.
HARNESS_BUG_CHECKS = '''
import pytest


def _harness_helper_breaks():
    from conformance.engine.schedule import Step

    Step.from_dict({})  # KeyError inside conformance/: the harness's bug, whichever check called it


@pytest.mark.check("fake.harness_bug", layer="module", spec="x")
def test_harness_bug(vendor):
    _harness_helper_breaks()


@pytest.mark.check("fake.harness_bug_declared", layer="binding", spec="x")
@pytest.mark.xfail(strict=True, reason="declared as a known binding failure")
def test_harness_bug_declared(vendor):
    _harness_helper_breaks()


@pytest.mark.check("fake.harness_bug_in_pytest", layer="provider", spec="x")
def test_harness_bug_in_pytest(executor):
    _harness_helper_breaks()


@pytest.mark.check("fake.binding_lacks", layer="module", spec="x")
def test_binding_lacks(vendor):
    from conformance.binding import session_handle

    session_handle(object())


@pytest.mark.check("fake.module_error_in_check", layer="module", spec="x")
def test_module_error_in_check(vendor):
    import pkcs11

    raise pkcs11.exceptions.DeviceError()
'''
