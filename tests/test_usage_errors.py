"""Every bad input stops the run as a usage error: exit code 4, one ERROR: line naming the fix, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

CHECKS = ("--pyargs", "conformance.checks")
LITERAL_PIN = "lit3ral-PIN-8841"
WRONG_PIN = "7319wrong"


def profile_text(*, module: str, label: str = "conformance", user_pin: str = "env:CONFORMANCE_TEST_PIN",
                 disposable: str = "false", kind: str = "none", extra_token: str = "") -> str:
    """A non-disposable profile using an existing token; keyword arguments replace single fields (TOML values)."""
    return (
        'name = "under-test"\n'
        'description = "a profile written by the harness tests"\n'
        "[module]\n"
        f'path = "{module}"\n'
        "[token]\n"
        f'label = "{label}"\n'
        f'user_pin = "{user_pin}"\n'
        f"disposable = {disposable}\n"
        f"{extra_token}"
        "[provisioning]\n"
        f'kind = "{kind}"\n'
    )


def test_unknown_vendor_lists_known_vendors(run_inner_inprocess, vendors_dir, assert_usage_error):
    """--vendor=nope names the vendors that exist (not TEMPLATE) and the --vendor-file alternative."""
    line = assert_usage_error(run_inner_inprocess("--vendor=nope"), "'nope'", "known vendors: softhsm", "--vendor-file")
    assert "TEMPLATE" not in line


def test_broken_toml_syntax(run_inner_inprocess, write_profile, assert_usage_error):
    """A profile that is not valid TOML is named and the fix is to correct the syntax."""
    path = write_profile('name = "broken\n[module\n')
    assert_usage_error(run_inner_inprocess(f"--vendor-file={path}"), str(path), "not valid TOML", "fix the syntax")


def test_unknown_key_in_profile(softhsm_module, run_inner_inprocess, write_profile, assert_usage_error):
    """An unknown key is refused with the key named and the known keys listed."""
    path = write_profile(profile_text(module=softhsm_module, extra_token='lable = "typo"\n'))
    assert_usage_error(run_inner_inprocess(f"--vendor-file={path}"), "unknown key 'lable'", "known keys are")


def test_wrong_type_for_disposable(softhsm_module, run_inner_inprocess, write_profile, assert_usage_error):
    """disposable = "yes" is refused: the field is named and true/false is asked for."""
    path = write_profile(profile_text(module=softhsm_module, disposable='"yes"'))
    assert_usage_error(run_inner_inprocess(f"--vendor-file={path}"), "disposable", "expected true or false")


def test_literal_pin_on_non_disposable_profile(softhsm_module, run_inner_inprocess, write_profile, assert_usage_error):
    """A literal PIN on a non-disposable token is refused, the env:VARIABLE form is asked for, the PIN is never echoed."""
    path = write_profile(profile_text(module=softhsm_module, user_pin=LITERAL_PIN))
    result = run_inner_inprocess(f"--vendor-file={path}")
    assert_usage_error(result, "user_pin", "env:VARIABLE")
    assert LITERAL_PIN not in "\n".join(result.outlines + result.errlines)


def test_module_path_does_not_exist(run_inner_inprocess, write_profile, assert_usage_error):
    """A module path that does not exist asks to install the module or fix module.path."""
    path = write_profile(profile_text(module="/nonexistent/libpkcs11-missing.so"))
    assert_usage_error(run_inner_inprocess(f"--vendor-file={path}"), "/nonexistent/libpkcs11-missing.so", "fix module.path")


def test_module_path_missing_from_profile(softhsm_module, run_inner_inprocess, write_profile, assert_usage_error):
    """A [module] table without path asks for the library's path."""
    text = profile_text(module=softhsm_module).replace(f'path = "{softhsm_module}"\n', "")
    path = write_profile(text)
    assert_usage_error(run_inner_inprocess(f"--vendor-file={path}"), "module.path", "give the PKCS#11 library's path")


@pytest.mark.parametrize("kind", ["executable", "text file"])
def test_module_is_not_a_pkcs11_library(kind, run_inner_inprocess, write_profile, pytester, assert_usage_error):
    """A file that exists but is not a PKCS#11 library asks to point module.path at the vendor's library."""
    if kind == "executable":
        module = "/bin/true"
    else:
        module = str(pytester.path / "not-a-library.so")
        Path(module).write_text("just text\n")
    path = write_profile(profile_text(module=module))
    assert_usage_error(run_inner_inprocess(f"--vendor-file={path}"), "could not be loaded as a PKCS#11 module",
                       "point module.path at the vendor's PKCS#11 library")


def test_token_label_does_not_exist(softhsm_module, other_token, run_inner_inprocess, write_profile, assert_usage_error):
    """A token label that matches no token lists the tokens present and asks to fix the token selection."""
    path = write_profile(profile_text(module=softhsm_module, label="conformance"))
    assert_usage_error(run_inner_inprocess(f"--vendor-file={path}"), "no token matches label 'conformance'", "'other'",
                       "fix the profile's token selection")


def test_wrong_pin(softhsm_module, other_token, run_inner_inprocess, write_profile, assert_usage_error, monkeypatch):
    """A wrong user PIN says where the PIN came from and how to fix it, without showing the PIN."""
    monkeypatch.setenv("CONFORMANCE_TEST_PIN", WRONG_PIN)
    path = write_profile(profile_text(module=softhsm_module, label="other", user_pin="env:CONFORMANCE_TEST_PIN"))
    result = run_inner_inprocess(f"--vendor-file={path}")
    assert_usage_error(result, "$CONFORMANCE_TEST_PIN", "is wrong", "PKCS11_TOKEN_PIN")
    assert WRONG_PIN not in "\n".join(result.outlines + result.errlines)


def test_pin_variable_unset(softhsm_module, other_token, run_inner_inprocess, write_profile, assert_usage_error, monkeypatch):
    """A PIN taken from an unset environment variable names the variable to export."""
    monkeypatch.delenv("CONFORMANCE_TEST_PIN", raising=False)
    monkeypatch.delenv("PKCS11_TOKEN_PIN", raising=False)
    path = write_profile(profile_text(module=softhsm_module, label="other", user_pin="env:CONFORMANCE_TEST_PIN"))
    assert_usage_error(run_inner_inprocess(f"--vendor-file={path}"), "export CONFORMANCE_TEST_PIN=")


@pytest.mark.parametrize(
    ("sut", "fix"),
    [
        ("conformance.refsession.reference_session", "expected MODULE:FACTORY"),
        ("no_such_module_xyz:factory", "cannot import 'no_such_module_xyz'"),
        ("conformance.refsession:no_such_factory", "has no attribute 'no_such_factory'"),
        ("conformance:RESULTS_SCHEMA", "is not callable"),
    ],
    ids=["no-colon", "unknown-module", "missing-attribute", "not-callable"],
)
def test_bad_sut(sut, fix, run_inner_inprocess, assert_usage_error):
    """A --sut that cannot name a provider factory is refused with the reason and the expected form."""
    assert_usage_error(run_inner_inprocess(f"--sut={sut}"), f"--sut={sut!r}", fix)


def test_no_vendor_selected(run_inner_inprocess, assert_usage_error):
    """Collecting checks without --vendor or --vendor-file asks for one."""
    assert_usage_error(run_inner_inprocess(*CHECKS), "no vendor selected", "--vendor=NAME", "--vendor-file=PATH")


def test_vendor_given_twice_is_deduplicated(run_inner_inprocess, vendors_dir):
    """--vendor=softhsm twice runs the vendor once: each check is collected once, with one vendor id."""
    result = run_inner_inprocess("--vendor=softhsm", "--vendor=softhsm", "--collect-only", "-q", *CHECKS,
                       "--conformance-json=results.json", "--conformance-html=report.html")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    ids = [line for line in result.outlines if "::" in line]
    assert ids and all(line.endswith("[softhsm]") for line in ids), ids
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("option", "fix"),
    [("--block-window=0", "give a positive number of seconds"),
     ("--baseline=old.json", "cannot read it (No such file or directory); check the path")],
    ids=["block-window-zero", "baseline-unreadable"],
)
def test_bad_run_option(option, fix, run_inner_inprocess, assert_usage_error):
    """A run option the harness cannot honour is refused naming what to do instead."""
    assert_usage_error(run_inner_inprocess(option), fix)


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
