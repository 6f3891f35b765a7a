"""The model's parameters: implementation-defined points and what the run measured, as data.

Defaults come from the PKCS#11 spec (where it allows more than one behaviour, every allowed outcome is accepted
and the observed one is recorded) and from python-pkcs11's documented contract. Where a setup departs from them in
a way exploration must go on past (a known finding it would otherwise re-find in every schedule), the run measures
it first (conformance/live/characterise.py) and the measurement replaces the default: a Characterisation. Never a
declaration or a version number: two setups that behave the same explore and are judged the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterable, Mapping

OK = "ok"
ACTIVE = "raises:OperationActive"


@dataclass(frozen=True)
class ModelParams:
    # --- module: implementation-defined (characterised; any allowed outcome passes and is recorded) ------------
    # UG v2.40 §2.6.7 / §4.1: one operation per session, with dual-function pairs allowed where the token says so;
    # v3.0 §5.1.6 leaves to the module which combinations of active operations prevent a new one. Which pair each
    # field covers: vocabulary.CONCURRENT (the answer is recorded per pair, e.g. digest_during_encrypt).
    crypto_during_search: frozenset[str] = frozenset({OK, ACTIVE})
    search_during_crypto: frozenset[str] = frozenset({OK, ACTIVE})
    dual_function_pair: frozenset[str] = frozenset({OK, ACTIVE})  # digest+encrypt, decrypt+digest, sign+encrypt, ...
    other_crypto_pair: frozenset[str] = frozenset({OK, ACTIVE})  # encrypt+decrypt, sign+decrypt, verify+encrypt
    random_during_operation: frozenset[str] = frozenset({OK, ACTIVE})
    # v3.0 §5.6.8 / §5.1.6: a second C_Login may be refused (CKR_USER_ALREADY_LOGGED_IN) or accepted.
    second_login: frozenset[str] = frozenset({OK, "raises:UserAlreadyLoggedIn"})
    # --- binding: the documented contract by default; measured at the start of the run (live/characterise.py) --
    # A search refused with OperationActive also ends the search already active on the session.
    refused_search_ends_active_search: bool = False
    # Token.open(user_pin=...) leaves the session open when its C_Login fails.
    failed_login_leaks_session: bool = False
    # An iterator finished (consumed, failed or collected) on a thread that does not hold the session lock
    # leaves the lock held for good; consuming it raises RuntimeError ("cannot release un-acquired lock").
    nonowner_finish_keeps_lock: bool = False
    # get_objects() takes the session lock and calls C_FindObjectsInit at once (0.7, 0.8), not at the first next().
    search_starts_at_creation: bool = False
    # A search iterator whose C_FindObjects / C_FindObjectsFinal fails (its search ended under it) keeps the session
    # lock for good (0.7, 0.8: the lock is released after the return code is checked).
    failed_search_keeps_lock: bool = False
    # A chunked encryption's generator collected unfinished leaves the module's encrypt operation active for good
    # (0.7, 0.8: nothing ends it; 0.9 brought operation cancellation). The session lock is released.
    collected_generator_keeps_operation: bool = False
    # A chunked encryption's generator releases the session lock with its last item (0.9 and later), not at the
    # next() after it that ends the generator (0.7, 0.8: the final block is yielded inside the lock).
    generator_releases_at_last_item: bool = True
    # The same two for a chunked decryption's generator (measured apart: the binding could treat them differently).
    collected_decrypt_generator_keeps_operation: bool = False
    decrypt_generator_releases_at_last_item: bool = True
    # --- module findings a scripted check pins down (measured too); exploration then leaves those steps out ----
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


@dataclass(frozen=True)
class Finding:
    """One measured parameter: its value (None: not reached, the default applies) and how it was decided."""

    value: bool | None
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "evidence": self.evidence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(data["value"], str(data["evidence"]))


@dataclass(frozen=True)
class Characterisation:
    """Every probe's findings, by model parameter name."""

    findings: Mapping[str, Finding] = field(default_factory=dict)

    def settings(self) -> list[tuple[str, bool]]:
        """The (parameter, value) pairs to apply to the model's defaults: only what was measured."""
        return [(name, f.value) for name, f in sorted(self.findings.items()) if f.value is not None]

    def to_dict(self) -> dict[str, Any]:
        return {name: f.to_dict() for name, f in sorted(self.findings.items())}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Characterisation:
        return cls({name: Finding.from_dict(f) for name, f in data.items()})
