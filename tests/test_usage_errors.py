"""Every bad command line stops the run as a usage error: exit code 4, one ERROR: line naming the fix, no traceback.

One bad input file each (profiles, --sut strings, --baseline files) lives in tests/corpus/, run by test_corpus.py."""

from __future__ import annotations

import pytest

CHECKS = ("--pyargs", "conformance.checks")


def test_unknown_vendor_lists_known_vendors(run_inner_inprocess, vendors_dir, assert_usage_error):
    """--vendor=nope names the vendors that exist (not TEMPLATE) and the --vendor-file alternative."""
    line = assert_usage_error(run_inner_inprocess("--vendor=nope"), "'nope'", "known vendors:", "softhsm", "--vendor-file")
    assert "TEMPLATE" not in line


def test_no_vendor_selected(run_inner_inprocess, assert_usage_error):
    """Collecting checks without --vendor or --vendor-file asks for one."""
    assert_usage_error(run_inner_inprocess(*CHECKS), "no vendor selected", "--vendor=NAME", "--vendor-file=PATH")


def test_vendor_given_twice_is_deduplicated(run_inner_inprocess, vendors_dir):
    """--vendor=softhsm twice runs the vendor once: each check is collected once, with one vendor id."""
    result = run_inner_inprocess("--vendor=softhsm", "--vendor=softhsm", "--collect-only", "-q", *CHECKS,
                       "--conformance-json=results.json", "--conformance-html=report.html")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    ids = [line for line in result.outlines if "::" in line]
    # A parametrized check's id joins the vendor with its own parameters (test_one_shot[softhsm-sha1]).
    assert ids and all(line[line.rindex("[") + 1:-1].split("-").count("softhsm") == 1 for line in ids), ids
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("option", ["--block-window=0", "--step-timeout=-1", "--check-timeout=0"])
def test_non_positive_timeout_option(option, run_inner_inprocess, assert_usage_error):
    """A time limit that is not a positive number of seconds is refused naming the option and asking for one."""
    assert_usage_error(run_inner_inprocess(option), option.split("=")[0], "give a positive number of seconds")


@pytest.mark.parametrize(
    ("source", "fix"),
    [
        ('@pytest.mark.check("fake.bad_layer", layer="hardware", spec="x")\ndef test_a(vendor):\n    pass\n',
         "layer='module|binding|provider'"),
        ('@pytest.mark.check("fake.no_vendor", layer="module", spec="x")\ndef test_a():\n    pass\n',
         "must use the 'vendor' fixture"),
        ('@pytest.mark.check("fake.twice", layer="module", spec="x")\ndef test_a(vendor):\n    pass\n\n\n'
         '@pytest.mark.check("fake.twice", layer="module", spec="x")\ndef test_b(vendor):\n    pass\n',
         "ids must be unique"),
    ],
    ids=["unknown-layer", "no-vendor-fixture", "duplicate-id"],
)
def test_malformed_check(source, fix, pytester, run_inner_inprocess, softhsm_profile, assert_usage_error):
    """A check marker the plugin cannot key results on stops collection with the form to write."""
    pytester.makepyfile(test_fake_malformed="import pytest\n\n\n" + source)
    assert_usage_error(run_inner_inprocess(f"--vendor-file={softhsm_profile}", "--conformance-json=results.json",
                                 "--conformance-html=report.html"), fix)
