"""The model's parameters: implementation-defined points and declared deviations, as data.

Defaults come from the PKCS#11 spec (where it allows more than one behaviour, every allowed outcome is accepted
and the observed one is recorded) and from python-pkcs11's documented contract. A declared deviation replaces a
default with what was measured and understood — from conformance/vendor/binding.toml (keyed by python-pkcs11
version) or a vendor profile — so exploration goes on past a known finding instead of re-finding it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Iterable, Mapping

OK = "ok"
ACTIVE = "raises:OperationActive"


@dataclass(frozen=True)
class ModelParams:
    # --- module: implementation-defined (characterised; any allowed outcome passes and is recorded) ------------
    # UG v2.40 §2.6.7 / §4.1: one operation per session, with dual-function pairs allowed where the token says so.
    crypto_during_search: frozenset[str] = frozenset({OK, ACTIVE})
    search_during_crypto: frozenset[str] = frozenset({OK, ACTIVE})
    digest_during_encrypt: frozenset[str] = frozenset({OK, ACTIVE})
    random_during_operation: frozenset[str] = frozenset({OK, ACTIVE})
    # v3.0 §5.6.8 / §5.1.6: a second C_Login may be refused (CKR_USER_ALREADY_LOGGED_IN) or accepted.
    second_login: frozenset[str] = frozenset({OK, "raises:UserAlreadyLoggedIn"})
    # --- binding: the documented contract by default; binding.toml declares what a version really does --------
    # A search refused with OperationActive also ends the search already active on the session.
    refused_search_ends_active_search: bool = False
    # Token.open(user_pin=...) leaves the session open when its C_Login fails.
    failed_login_leaks_session: bool = False
    # An iterator finished (consumed, failed or collected) on a thread that does not hold the session lock
    # leaves the lock held for good; consuming it raises RuntimeError ("cannot release un-acquired lock").
    nonowner_finish_keeps_lock: bool = False
    # --- declared findings a scripted check pins down; exploration then leaves those steps out -----------------
    # The module runs a second search on a session instead of refusing it (operation.search_then_search_same_thread).
    concurrent_searches: bool = False
    # A closed session's Session object — its calls, its iterators started or not, a call waiting on its lock —
    # acts on whichever session got its handle (modules that reuse handles, as python-pkcs11 keeps the handle;
    # release.iterator_of_closed_session, release.started_iterator_of_closed_session, release.call_on_closed_session).
    stale_session_handles: bool = False
    # --- capabilities, not behaviour: scenario steps (op, or "use:WHAT") the token cannot run are left out of
    # the menus (conformance.live.capabilities.STEP_NEEDS says which capability each step needs) -----------------
    unsupported_steps: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: sorted(v) if isinstance(v, frozenset) else v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelParams:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown model parameter {key!r}; known: {', '.join(sorted(known))}")
            values[key] = frozenset(value) if isinstance(value, (list, tuple, set, frozenset)) else value
        return cls(**values)

    def declare(self, settings: Iterable[tuple[str, Any]]) -> ModelParams:
        return replace(self, **{k: (frozenset(v) if isinstance(v, (list, tuple, set)) else v) for k, v in settings})
