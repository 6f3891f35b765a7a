"""Where a check body runs, decided once at collection from its signature, and refused there when it cannot run.

A check that takes a driver fixture (drivers.DRIVERS: scenario, play, stress, applications, executor) runs in
pytest and reaches the module only through the driver. Every other check body is sent by name to the module's
process (dispatch.py), which can give it only `vendor` (the live vendor there), `observe`, `limits` and its own
`@pytest.mark.parametrize` values (as JSON) — so any other fixture it asks for is a usage error naming the fix,
not an AttributeError at run time.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any, Mapping

import pytest

from ..executor.checkrun import CHILD_ARGS
from .drivers import DRIVERS


@dataclass(frozen=True)
class Placement:
    in_child: bool
    args: tuple[str, ...] = ()  # the body's own parameters
    params: Mapping[str, Any] | None = None  # parametrize values sent with it (in_child only)


PLACEMENT = pytest.StashKey[Placement]()


def own_args(item: pytest.Function) -> tuple[str, ...]:
    """The check function's own parameters (not autouse fixtures, not what its fixtures depend on)."""
    names = [name for name, p in inspect.signature(item.function).parameters.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return tuple(names[1:] if item.cls is not None and names else names)  # a method's self is not a fixture


def place(item: pytest.Function) -> Placement:
    """Where the check body runs; pytest.UsageError (naming the fix) when it cannot run there."""
    args = own_args(item)
    if any(arg in DRIVERS for arg in args):
        return Placement(False, args)
    callspec = getattr(item, "callspec", None)
    values = {k: v for k, v in (callspec.params.items() if callspec else ()) if k in args and k not in CHILD_ARGS}
    unknown = [a for a in args if a not in CHILD_ARGS and a not in values]
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: the check body takes {', '.join(unknown)}, which the module's process cannot give it: "
            f"a check that takes none of {', '.join(DRIVERS)} runs in the module's process, where only "
            f"{', '.join(CHILD_ARGS)} and its own parametrize values exist; drop {', '.join(unknown)} or drive "
            "the module through one of those fixtures")
    for name, value in values.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise pytest.UsageError(
                f"{item.nodeid}: parametrize value {name}={value!r} cannot be sent to the module's process; use "
                "JSON values (str, int, float, bool, None, lists, dicts)") from None
    return Placement(True, args, values)
