"""Proof of blame (issue 11, item 5): a module of our own over SoftHSM (tests/native/breaker.c) that breaks one rule
of PKCS#11 at a time — login state, session lifecycle and object lifetime, search and operation lifecycle, return
codes — is caught every time, and every failure it adds is blamed on the module, although python-pkcs11 and the
reference provider are unchanged (engine/rawspec.py judges the module on its own answers); the variations the spec
allows (latency, fewer objects per C_FindObjects) change nothing, and the third (handle reuse after close) is never
blamed on the module. The shipped checks of the areas the rules are about run (dev profile): AREAS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faults import build_breaker, locked as _locked, shared_dir
from wrapped_profiles import broken_profile, run_checks

from conformance.outcomes import BAD
from conformance.vendor.registry import SHIPPED

# rule -> what it breaks (CONFORMANCE_BREAK in breaker.c)
RULES = {
    "login_not_shared": "login state: a session opened after C_Login reports a public state (UG v2.40 §2.6.5)",
    "login_survives_close_all": "login state: C_CloseAllSessions leaves the application logged in (v3.0 §5.6.3)",
    "logout_keeps_login": "login state: C_Logout says CKR_OK and logs nobody out (v3.0 §5.6.10)",
    "second_login_ok": "return codes: a second C_Login says CKR_OK, not CKR_USER_ALREADY_LOGGED_IN (§5.6.8)",
    "close_keeps_session": "session lifecycle and object lifetime: C_CloseSession says CKR_OK and closes nothing, "
                           "its session objects live on (v3.0 §5.6.2, §4.4)",
    "closed_session_code": "return codes: a closed handle gives CKR_DEVICE_ERROR, not CKR_SESSION_HANDLE_INVALID",
    "search_restarts": "search: C_FindObjectsInit during a search restarts it instead of CKR_OPERATION_ACTIVE",
    "fetch_forgets_search": "search: the second C_FindObjects of a search says CKR_OPERATION_NOT_INITIALIZED",
    "final_keeps_search": "search: C_FindObjectsFinal says CKR_OK and the search stays active (v3.0 §5.7.7)",
    "search_blocks_other_sessions": "operation lifecycle: a search on one session refuses searches on the others",
    "search_blocks_one_shot": "operation lifecycle: a search refuses C_DigestInit and C_GenerateRandom on its session",
    "random_general_error": "return codes: every third C_GenerateRandom says CKR_GENERAL_ERROR",
}
VARIATIONS = {
    "latency": "1 ms before every session call (a module a little away)",
    "fewer_objects": "C_FindObjects returns one object per call, however many are asked for (v3.0 §5.7.7 allows it)",
}
# The rules break sessions, login, searches, operation lifecycle and return codes: the checks of what applications
# do with keys (keygen, sign, encrypt, wrap, derive, attributes, mechanisms, drawn payloads: two thirds of the
# checks, most of the run time) call none of what they break beyond opening a session, and are left out.
KEY_AREAS = ("test_keygen", "test_sign", "test_crypt", "test_wrap", "test_derive", "test_attributes",
             "test_mechanisms", "test_drawn")
# login.concurrent_applications finds SoftHSM's login race only when two C_Logins meet in the token file: 1 ms more
# per call (the latency variation) can make the race not happen in its rounds — a race's verdict, not a rule's.
# The greenlet and asyncio checks run their calls in runtime programs of their own, which the tap's log of the
# module's process does not cover: their failures keep the check's layer (README, How blame is decided) — left out.
# The stray-release checks fail on the reference session already (declared, provider); a rule the module breaks
# later in the same schedule rightly moves the blame to the module, which "every other result keeps its layer"
# cannot allow — left out too.
RUNTIME_AREAS = ("test_greenlets", "test_asyncio", "test_stray_release")
AREAS = ("-k", " and ".join(f"not {name}" for name in (*KEY_AREAS, *RUNTIME_AREAS, "test_concurrent_applications")))
Outcomes = dict[str, tuple[str, str, str]]  # check -> (outcome, layer, observed as canonical JSON)


def _outcomes(results: Path) -> Outcomes:
    doc = json.loads(results.read_text(encoding="utf-8"))
    return {r["check"]: (r["outcome"], r["layer"], json.dumps(r["observed"], sort_keys=True)) for r in doc["results"]}


@pytest.fixture(scope="module")
def blame_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_dir(tmp_path_factory, "blame")


@pytest.fixture(scope="module")
def bare(blame_dir: Path) -> Outcomes:
    """Every check on the unwrapped SoftHSM, once for all xdist workers."""
    with _locked(blame_dir / "bare.lock"):
        done = blame_dir / "bare.outcomes.json"
        if not done.exists():
            run = run_checks(blame_dir, Path(SHIPPED) / "softhsm.toml", *AREAS, hypothesis_profile="dev")
            done.write_text(json.dumps(_outcomes(run.results)))
        return {k: tuple(v) for k, v in json.loads(done.read_text()).items()}  # type: ignore[misc]


@pytest.fixture(scope="module")
def breaker(blame_dir: Path) -> Path:
    with _locked(blame_dir / "breaker.lock"):
        target = blame_dir / "breaker.so"
        if not target.exists():
            (blame_dir / "build").mkdir(exist_ok=True)
            build_breaker(blame_dir / "build").replace(target)
        return target


def _run(blame_dir: Path, breaker: Path, rule: str) -> Outcomes:
    directory = blame_dir / rule
    directory.mkdir(exist_ok=True)
    profile = broken_profile("softhsm", breaker, rule, directory / f"softhsm-{rule}.toml")
    return _outcomes(run_checks(directory, profile, *AREAS, hypothesis_profile="dev").results)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_broken_rule_is_caught_and_blamed_on_the_module(rule: str, bare: Outcomes, blame_dir: Path, breaker: Path):
    """Each broken rule changes an outcome or an observed value (the gate sees it); every check it makes fail is
    blamed on the module; and every other result keeps its layer (the python-pkcs11 findings stay binding ones)."""
    broken = _run(blame_dir, breaker, rule)
    changed = {check: (bare.get(check), now) for check, now in broken.items() if bare.get(check) != now}
    assert any(bare.get(check, ("",))[0::2] != now[0::2] for check, now in broken.items()), (rule, "not caught")
    added = {check: pair for check, pair in changed.items() if pair[1][0] in BAD and (pair[0] or ("",))[0] not in BAD}
    assert all(now[1] == "module" for _, now in added.values()), (rule, {c: p for c, p in added.items()
                                                                        if p[1][1] != "module"})
    kept = {check: pair for check, pair in changed.items() if check not in added and pair[0] and pair[0][1] != pair[1][1]}
    assert not kept, (rule, kept)


@pytest.mark.parametrize("variation", sorted(VARIATIONS))
def test_an_allowed_variation_changes_nothing(variation: str, bare: Outcomes, blame_dir: Path, breaker: Path):
    """What the spec allows a module to do is judged exactly as the unwrapped module: same outcomes, layers and
    observed values for every check."""
    varied = _run(blame_dir, breaker, variation)
    assert varied == bare, (variation, {c: (bare.get(c), v) for c, v in varied.items() if bare.get(c) != v})


# Allowed, but not invisible: a closed session's handle handed out again lets python-pkcs11 0.10.1's stale Session
# objects act on the new session — the binding findings OpenCryptoki's profile declares. The drawn scenarios do not
# trip over it: the run measures the handle reuse first (characterised: stale_session_handles) and leaves those
# schedules out, as on OpenCryptoki.
STALE_HANDLE_FINDINGS = {"release.call_on_closed_session", "release.iterator_of_closed_session",
                         "release.started_iterator_of_closed_session",
                         # a collected stale search ends the next holder's (declared for OpenCryptoki)
                         "provider.stale_search_after_last_release"}


def test_handle_reuse_is_never_blamed_on_the_module(bare: Outcomes, blame_dir: Path, breaker: Path):
    """v3.0 §5.6.1 does not forbid giving a closed session's handle to a new one (OpenCryptoki does): what changes is
    python-pkcs11's, and blamed on it: the stale-handle checks fail as binding findings; nothing is blamed on the
    module."""
    reused = _run(blame_dir, breaker, "handle_reuse")
    changed = {c: (bare.get(c), v) for c, v in reused.items() if bare.get(c) != v}
    assert {c for c, (_, now) in changed.items() if now[0] in BAD and now[1] == "binding"} == STALE_HANDLE_FINDINGS
    assert not {c: pair for c, pair in changed.items() if pair[1][0] in BAD and pair[1][1] == "module"}
