"""Where a check body runs (conformance/plugin/placement.py): in the module's process unless it takes a driver
fixture; a body that asks for what that process cannot give is refused at collection, naming the fix; its own
parametrize values travel with it."""

from __future__ import annotations

import pytest

CHILD_WITH_TMP_PATH = '''
import pytest


@pytest.mark.check("fake.wants_tmp_path", layer="module", spec="x")
def test_wants_tmp_path(vendor, tmp_path):
    vendor.open_session(login=False)
'''

PARAMETRIZED = '''
import pytest


@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.check("fake.random_{size}", layer="module", spec="x")
def test_random(vendor, observe, size):
    # vendor.open_session exists only on the live vendor of the module's process
    observe(len(vendor.open_session(login=False).generate_random(size * 8)))
'''

NOT_JSON = '''
import pytest


@pytest.mark.parametrize("size", [object()])
@pytest.mark.check("fake.object_{size}", layer="module", spec="x")
def test_object(vendor, size):
    pass
'''

ID_WITHOUT_ITS_ARGUMENT = '''
import pytest


@pytest.mark.parametrize("size", [16])
@pytest.mark.check("fake.random_{bits}", layer="module", spec="x")
def test_random(vendor, size):
    pass
'''


def test_a_child_check_asking_for_a_pytest_fixture_is_a_usage_error(pytester, run_inner_inprocess, softhsm_profile,
                                                                    assert_usage_error):
    """Issue 10: "add tmp_path to a plain vendor check and it fails with an AttributeError instead of a message" —
    now collection refuses it, naming the fixture and the two ways out."""
    pytester.makepyfile(test_fake=CHILD_WITH_TMP_PATH)
    assert_usage_error(run_inner_inprocess(f"--vendor-file={softhsm_profile}"), "test_wants_tmp_path",
                       "takes tmp_path", "module's process", "drop tmp_path", "scenario, play, stress")


def test_parametrize_values_go_with_the_body_to_the_module_process(pytester, run_inner, softhsm_profile, load_json):
    """A parametrized check runs in the module's process with its own argument; each case has its own id."""
    pytester.makepyfile(test_fake=PARAMETRIZED)
    out = pytester.path / "out" / "results.json"
    result = run_inner(f"--vendor-file={softhsm_profile}", f"--conformance-json={out}",
                       f"--conformance-html={out.with_name('report.html')}")
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines + result.errlines)
    observed = {r["check"]: (r["outcome"], r["observed"]) for r in load_json(out)["results"]}
    assert observed == {"fake.random_16": ("passed", 16), "fake.random_32": ("passed", 32)}


def test_a_parametrize_value_that_is_not_json_is_a_usage_error(pytester, run_inner_inprocess, softhsm_profile,
                                                               assert_usage_error):
    """Values travel to the module's process as JSON: anything else is refused at collection."""
    pytester.makepyfile(test_fake=NOT_JSON)
    assert_usage_error(run_inner_inprocess(f"--vendor-file={softhsm_profile}"), "cannot be sent", "JSON values")


def test_a_check_id_naming_no_argument_is_a_usage_error(pytester, run_inner_inprocess, softhsm_profile,
                                                        assert_usage_error):
    """A check id template must name the check's own parametrize arguments."""
    pytester.makepyfile(test_fake=ID_WITHOUT_ITS_ARGUMENT)
    assert_usage_error(run_inner_inprocess(f"--vendor-file={softhsm_profile}"), "fake.random_{bits}",
                       "parametrize argument")
