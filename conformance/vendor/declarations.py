"""Declared deviations: a vendor profile's, and the binding's (one place, keyed by python-pkcs11 version)."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Mapping

import pytest

from ..outcomes import FINDINGS

from .profile import Deviation, ProfileError, VendorProfile

BINDING_FILE = "binding.toml"
# The reference refcounted session's (conformance/refsession.py, the docs' pattern as written): they hold only when
# it is the provider under test (--sut left at its default); a user's pool is judged without them.
PROVIDER_FILE = "provider.toml"


@cache
def _shipped(name: str) -> tuple[Deviation, ...]:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    unknown = set(data) - {"deviations"}
    if unknown:
        raise ProfileError(f"{name}: unknown keys {sorted(unknown)}")
    return tuple(Deviation.from_dict(d, f"{name}: deviations[{i}]") for i, d in enumerate(data.get("deviations", [])))


def binding_deviations() -> tuple[Deviation, ...]:
    """Deviations of python-pkcs11 itself, shipped with the harness (conformance/vendor/binding.toml)."""
    return _shipped(BINDING_FILE)


def provider_deviations() -> tuple[Deviation, ...]:
    """Deviations of the reference refcounted session, shipped with the harness (conformance/vendor/provider.toml)."""
    return _shipped(PROVIDER_FILE)


def applicable(check: str, profile: VendorProfile, versions: Mapping[str, str], *,
               reference_provider: bool = True) -> list[tuple[str, Deviation]]:
    """(origin, deviation) pairs declared for this check that hold for these component versions (the reference
    session's only while it is the provider under test)."""
    found = [("binding", d) for d in binding_deviations() if d.check == check and d.applies(versions)]
    if reference_provider:
        found += [("reference session", d) for d in provider_deviations() if d.check == check and d.applies(versions)]
    found += [(f"vendor {profile.name}", d) for d in profile.deviations if d.check == check and d.applies(versions)]
    return found


def mark_for(origin: str, deviation: Deviation) -> pytest.MarkDecorator | None:
    """A declared failing outcome becomes a strict xfail, so a deviation that stops happening is reported."""
    if deviation.outcome not in FINDINGS:
        return None  # observed-value deviations are compared by the gate, not by pytest
    where = f" ({deviation.issue})" if deviation.issue else ""
    return pytest.mark.xfail(strict=True, reason=f"declared {origin} deviation: {deviation.reason}{where}")
