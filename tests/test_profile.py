"""Vendor profiles, deviations, PINs and redaction; profile lookup by name."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.vendor.declarations import applicable, binding_deviations, provider_deviations
from conformance.pins import REDACTED, PinUnavailable, Secret, redact, redact_data
from conformance.outcomes import OUTCOMES
from conformance.vendor.profile import PIN_ENV, VERSION_KEYS, Deviation, ProfileError, VendorProfile, load_profile
from conformance.vendor.registry import resolve

VENDORS = Path(__file__).resolve().parent.parent / "conformance" / "profiles"
SPECIFIERS = [">=0.10", "==0.10.1", "<7.5", ">=1,<2", "!=2.6"]

names = st.text(min_size=1, max_size=20)
vendor_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}", fullmatch=True)
json_scalars = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=20))


@st.composite
def deviations(draw: Any) -> Deviation:
    outcome = draw(st.none() | st.sampled_from(OUTCOMES))
    observed = draw(json_scalars if outcome is None else st.none() | json_scalars)
    return Deviation(
        check=draw(names),
        reason=draw(names),
        outcome=outcome,
        observed=observed,
        issue=draw(st.none() | names.map(lambda s: f"https://example.com/{s}")),
        versions=draw(st.dictionaries(st.sampled_from(VERSION_KEYS), st.sampled_from(SPECIFIERS))),
    )


@st.composite
def profiles(draw: Any) -> VendorProfile:
    disposable = draw(st.booleans())
    provisioning = draw(st.sampled_from(["none", "softhsm2"])) if disposable else "none"
    pin_spec = names.map(lambda s: f"env:{s}")
    if disposable:
        pin_spec = pin_spec | names
    so_pin = draw(pin_spec) if provisioning == "softhsm2" else draw(st.none() | pin_spec)
    by_label = provisioning == "softhsm2" or draw(st.booleans())
    via = tuple(draw(st.lists(st.sampled_from(["p11-kit", "spy"]), unique=True, max_size=2)))
    return VendorProfile(
        name=draw(vendor_names),
        description=draw(st.just("") | names),
        module_paths=tuple(draw(st.lists(names, min_size=1, max_size=3))),
        token_label=draw(names) if by_label else None,
        token_uri=None if by_label else draw(names.map(lambda s: f"pkcs11:token={s}")),
        user_pin=Secret(draw(pin_spec), override_env=PIN_ENV["user_pin"]),
        so_pin=None if so_pin is None else Secret(so_pin, override_env=PIN_ENV["so_pin"]),
        disposable=disposable,
        provisioning=provisioning,
        env=draw(st.dictionaries(names, st.text(max_size=20), max_size=3)),
        deviations=tuple(draw(st.lists(deviations(), max_size=3))),
        via=via,
        init_reserved=draw(st.none() | names) if "p11-kit" in via else None,
        skip=draw(st.dictionaries(names, names, max_size=2)),
    )


def minimal(**token: Any) -> dict[str, Any]:
    """The smallest valid profile data, with token fields replaced as given (None removes a field)."""
    fields = {"label": "fake", "user_pin": "env:FAKE_PIN", **token}
    return {
        "name": "fake-vendor",
        "module": {"path": "/nonexistent/libfake.so"},
        "token": {k: v for k, v in fields.items() if v is not None},
    }


@given(deviations())
def test_deviation_round_trips(deviation):
    """Deviation.from_dict(d.to_dict()) gives d back."""
    assert Deviation.from_dict(deviation.to_dict()) == deviation


@given(profiles())
def test_profile_round_trips(profile):
    """VendorProfile.from_dict(p.to_dict()) gives p back for every valid profile."""
    assert VendorProfile.from_dict(profile.to_dict()) == profile


def test_profile_without_description_round_trips():
    """A profile whose file has no description round-trips through to_dict/from_dict."""
    profile = VendorProfile.from_dict(minimal())
    assert VendorProfile.from_dict(profile.to_dict()) == profile


def test_softhsm_profile_validates():
    """vendors/softhsm.toml loads: disposable, provisioned by softhsm2, token chosen by label."""
    profile = load_profile(VENDORS / "softhsm.toml")
    assert (profile.name, profile.disposable, profile.provisioning, profile.token_label) == ("softhsm", True, "softhsm2", "conformance")
    assert profile.so_pin is not None
    assert profile.source == str(VENDORS / "softhsm.toml")


def test_template_profile_validates():
    """vendors/TEMPLATE.toml loads as it ships: not disposable, PIN from the environment."""
    profile = load_profile(VENDORS / "TEMPLATE.toml")
    assert (profile.name, profile.disposable, profile.provisioning) == ("my-hsm", False, "none")
    assert profile.user_pin.spec == "env:MY_HSM_PIN"


@pytest.mark.parametrize("path", sorted((VENDORS / "templates").glob("*.toml")), ids=lambda p: p.stem)
def test_hsm_templates_validate(path):
    """vendors/templates/*.toml (Luna, nShield, YubiHSM 2, CloudHSM) load as shipped: never disposable, PINs only
    from the environment, token used as it is."""
    profile = load_profile(path)
    assert (profile.disposable, profile.provisioning) == (False, "none")
    assert profile.user_pin.spec.startswith("env:")


@pytest.mark.parametrize("name", ["softhsm", "softhsm-p11kit", "softhsm-spy", "opencryptoki", "tpm2", "nss"])
def test_shipped_profiles_validate(name):
    """Every vendors/*.toml the harness ships loads; --vendor=all picks them all up."""
    profile = load_profile(VENDORS / f"{name}.toml")
    assert profile.name == name and profile.disposable


def test_template_deviation_example_validates():
    """The commented [[deviations]] example in TEMPLATE.toml is a valid deviation once uncommented."""
    text = (VENDORS / "TEMPLATE.toml").read_text(encoding="utf-8")
    block = text[text.index("# [[deviations]]"):]
    uncommented = "\n".join(re.sub(r"^# ?", "", line) for line in block.splitlines())
    data = tomllib.loads(uncommented)
    (deviation,) = [Deviation.from_dict(d) for d in data["deviations"]]
    assert deviation.check == "login.second_login_same_app"


def test_reference_session_deviations_hold_only_for_the_reference_session(softhsm_profile):
    """provider.toml loads, and its deviations apply while the reference session is under test, never to a
    user's --sut pool (which is judged on its own)."""
    found = provider_deviations()
    assert found and all(d.check.startswith("provider.") for d in found)
    profile = load_profile(softhsm_profile)
    versions = {"python-pkcs11": "0.10.1", "library": "2.6"}
    check = found[0].check
    assert [o for o, _ in applicable(check, profile, versions)] == ["reference session"]
    assert applicable(check, profile, versions, reference_provider=False) == []


def test_binding_deviations_validate():
    """The shipped binding.toml deviations load and each is pinned to a python-pkcs11 version."""
    found = binding_deviations()
    assert found
    assert all("python-pkcs11" in d.versions for d in found)


@pytest.mark.parametrize(
    ("data", "fix"),
    [
        (minimal(uri="pkcs11:token=fake"), "set exactly one of label"),
        (minimal(label=None), "set exactly one of label"),
        (minimal(label=None, uri="token=fake"), "write pkcs11:token=LABEL"),
        ({**minimal(), "provisioning": {"kind": "softhsm2"}}, "needs token.disposable = true"),
        ({**minimal(disposable=True), "provisioning": {"kind": "softhsm2"}}, "needs an SO PIN"),
        ({**minimal(), "provisioning": {"kind": "magic"}}, "use one of none, nss, opencryptoki, softhsm2, tpm2"),
        ({**minimal(), "module": {"path": []}}, "give the PKCS#11 library's path"),
        ({**minimal(), "module": {"path": "/x.so", "env": {"A": 1}}}, "expected a table of strings"),
        ({k: v for k, v in minimal().items() if k != "token"}, "the [token] table is missing"),
        ({**minimal(), "deviations": {"check": "x"}}, "write each as a [[deviations]] table"),
        (minimal(user_pin=""), "expected a string"),
        ({**minimal(), "module": {"path": "/x.so", "via": ["proxy"]}}, "distinct layers from p11-kit, spy"),
        ({**minimal(), "module": {"path": "/x.so", "init_reserved": "configdir=x"}}, "needs via = [\"p11-kit\"]"),
        ({**minimal(), "skip": [{"check": "x.*"}]}, "reason is missing"),
    ],
    ids=["label-and-uri", "neither", "uri-not-rfc7512", "provision-non-disposable", "provision-without-so-pin",
         "unknown-kind", "no-paths", "env-not-strings", "no-token-table", "deviations-not-list", "empty-pin",
         "unknown-layer", "init-reserved-without-p11kit", "skip-without-reason"],
)
def test_bad_profile_names_the_fix(data, fix):
    """Each invalid profile raises ProfileError whose message names the fix."""
    with pytest.raises(ProfileError) as excinfo:
        VendorProfile.from_dict(data)
    assert fix in str(excinfo.value)


@pytest.mark.parametrize(
    ("data", "fix"),
    [
        ({"check": "a.b", "reason": "r"}, "declare what is expected instead"),
        ({"check": "a.b", "reason": "r", "outcome": "broken"}, "is not an outcome"),
        ({"check": "a.b", "reason": "r", "outcome": "failed", "issue": "#12"}, "give the upstream issue's http(s) address"),
        ({"check": "a.b", "reason": "r", "outcome": "failed", "versions": {"openssl": ">=3"}}, "unknown component 'openssl'"),
        ({"check": "a.b", "reason": "r", "outcome": "failed", "versions": {"library": "new"}}, "is not a version range"),
        ({"reason": "r", "outcome": "failed"}, "check is missing"),
    ],
    ids=["nothing-declared", "bad-outcome", "issue-not-url", "unknown-component", "bad-range", "no-check"],
)
def test_bad_deviation_names_the_fix(data, fix):
    """Each invalid deviation raises ProfileError whose message names the fix."""
    with pytest.raises(ProfileError) as excinfo:
        Deviation.from_dict(data)
    assert fix in str(excinfo.value)


def test_load_profile_of_missing_file():
    """A profile path that cannot be read raises ProfileError asking to check the path."""
    with pytest.raises(ProfileError, match="check the path"):
        load_profile(VENDORS / "no-such-vendor.toml")


@pytest.mark.parametrize("spec", ["1234-literal-secret", "env:FAKE_PIN_VAR"])
def test_secret_never_shows_its_value(spec, monkeypatch):
    """str() and repr() of a Secret (and of a profile holding it) show where the PIN comes from, never the PIN."""
    monkeypatch.setenv("FAKE_PIN_VAR", "9876-env-secret")
    secret = Secret(spec, override_env="PKCS11_TOKEN_PIN")
    profile = VendorProfile.from_dict(minimal(user_pin=spec, so_pin=spec, disposable=True))
    for text in (str(secret), repr(secret), repr(profile), str(profile)):
        assert "1234-literal-secret" not in text and "9876-env-secret" not in text


def test_secret_source_names_the_variable(monkeypatch):
    """Secret.source names the environment variable the PIN comes from."""
    monkeypatch.delenv("PKCS11_TOKEN_PIN", raising=False)
    assert Secret("env:FAKE_PIN_VAR", override_env="PKCS11_TOKEN_PIN").source == "$FAKE_PIN_VAR"
    assert Secret("1234").source == "profile literal"


def test_env_pin_is_read_from_the_environment(monkeypatch):
    """An env:VAR PIN reveals the variable's value."""
    monkeypatch.delenv("PKCS11_TOKEN_PIN", raising=False)
    monkeypatch.setenv("FAKE_PIN_VAR", "2468")
    assert Secret("env:FAKE_PIN_VAR", override_env="PKCS11_TOKEN_PIN").reveal() == "2468"


@pytest.mark.parametrize(("key", "variable"), sorted(PIN_ENV.items()))
def test_pin_override_variable_wins(key, variable, monkeypatch):
    """PKCS11_TOKEN_PIN / PKCS11_TOKEN_SO_PIN override both literal and env: PINs of a loaded profile."""
    monkeypatch.setenv("FAKE_PIN_VAR", "from-profile-variable")
    monkeypatch.setenv(variable, "from-override")
    for spec in ("env:FAKE_PIN_VAR", "1111"):
        profile = VendorProfile.from_dict(minimal(disposable=True, **{key: spec}))
        secret = getattr(profile, key)
        assert secret.reveal() == "from-override"
        assert secret.source == f"${variable}"


def test_empty_override_is_ignored(monkeypatch):
    """An override variable set to the empty string does not replace the profile's PIN."""
    monkeypatch.setenv("PKCS11_TOKEN_PIN", "")
    assert Secret("1357", override_env="PKCS11_TOKEN_PIN").reveal() == "1357"


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_unset_pin_variable_is_pin_unavailable(value, monkeypatch):
    """env:VAR with VAR unset (or empty) raises PinUnavailable naming VAR and the override variable."""
    monkeypatch.delenv("PKCS11_TOKEN_PIN", raising=False)
    if value is None:
        monkeypatch.delenv("FAKE_UNSET_PIN_VAR", raising=False)
    else:
        monkeypatch.setenv("FAKE_UNSET_PIN_VAR", value)
    with pytest.raises(PinUnavailable) as excinfo:
        Secret("env:FAKE_UNSET_PIN_VAR", override_env="PKCS11_TOKEN_PIN").reveal()
    assert "export FAKE_UNSET_PIN_VAR=" in str(excinfo.value)
    assert "PKCS11_TOKEN_PIN" in str(excinfo.value)


def test_redact_data_keeps_the_structure():
    """Data (facts, observed values) is redacted in its strings, keys included, never in its JSON text: a digit PIN
    inside a measured duration is no PIN and must not break the JSON (it did: "0.0***56"); a number that is the PIN
    is redacted."""
    data = {"latency_s": 0.0123456, "why 1234": ["pin 1234", 1234, True], "n": 12345}
    assert redact_data(data, ["1234"]) == {"latency_s": 0.0123456, f"why {REDACTED}": [f"pin {REDACTED}", REDACTED, True],
                                           "n": 12345}


def test_redact_replaces_longest_first():
    """A secret that contains a shorter one is redacted whole, so no tail of it is left."""
    assert redact("pin=123456 so=12", ["12", "123456"]) == f"pin={REDACTED} so={REDACTED}"


def test_redact_ignores_empty_secrets():
    """An empty secret (an unset PIN) changes nothing."""
    assert redact("nothing to hide", ["", "zzz"]) == "nothing to hide"


@given(st.text(), st.text(min_size=1).filter(lambda s: "*" not in s), st.text())
def test_redact_leaves_no_occurrence(before, secret, after):
    """After redaction no occurrence of the secret is left in the text."""
    assert secret not in redact(before + secret + after, [secret])


@pytest.mark.parametrize(
    ("conditions", "versions", "applies"),
    [
        ({}, {}, True),
        ({"python-pkcs11": "==0.10.1"}, {"python-pkcs11": "0.10.1", "library": "2.6"}, True),
        ({"python-pkcs11": "==0.10.1"}, {"python-pkcs11": "0.10.2", "library": "2.6"}, False),
        ({"python-pkcs11": "==0.10.1"}, {"library": "2.6"}, False),
        ({"python-pkcs11": ">=0.10", "library": "<2.6"}, {"python-pkcs11": "0.10.1", "library": "2.6"}, False),
        ({"python-pkcs11": ">=0.10", "library": "<2.7"}, {"python-pkcs11": "0.10.1", "library": "2.6"}, True),
    ],
    ids=["no-conditions", "match", "other-version", "component-unknown", "one-of-two-fails", "both-hold"],
)
def test_deviation_applies_by_version(conditions, versions, applies):
    """A deviation applies only when every version condition holds for the versions given."""
    deviation = Deviation("a.b", "r", outcome="failed", versions=conditions)
    assert deviation.applies(versions) is applies


def test_resolve_all_selects_present_modules(tmp_path):
    """--vendor=all selects the profiles whose module exists and skips the others and TEMPLATE.toml."""
    softhsm = load_profile(VENDORS / "softhsm.toml")
    if softhsm.module is None:
        pytest.skip("SoftHSM is not installed")
    (tmp_path / "softhsm.toml").write_text((VENDORS / "softhsm.toml").read_text())
    (tmp_path / "TEMPLATE.toml").write_text((VENDORS / "TEMPLATE.toml").read_text())
    (tmp_path / "absent.toml").write_text('name = "absent"\n[module]\npath = "/nonexistent/x.so"\n'
                                          '[token]\nlabel = "t"\nuser_pin = "env:X"\n')
    assert [p.name for p in resolve(["all"], [], [tmp_path])] == ["softhsm"]


def test_resolve_refuses_two_profiles_with_one_name(tmp_path):
    """Two different files that declare the same vendor name are refused, asking to rename one."""
    copy = tmp_path / "copy.toml"
    copy.write_text((VENDORS / "softhsm.toml").read_text())
    if load_profile(copy).module is None:
        pytest.skip("SoftHSM is not installed")
    with pytest.raises(ProfileError, match="rename one"):
        resolve([], [str(VENDORS / "softhsm.toml"), str(copy)], [])


def test_resolve_same_file_by_two_spellings(monkeypatch):
    """--vendor=softhsm and --vendor-file=vendors/softhsm.toml name one file: it is selected once."""
    if load_profile(VENDORS / "softhsm.toml").module is None:
        pytest.skip("SoftHSM is not installed")
    monkeypatch.chdir(VENDORS.parent)
    assert [p.name for p in resolve(["softhsm"], ["profiles/softhsm.toml"], [VENDORS])] == ["softhsm"]
