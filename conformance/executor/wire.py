"""Plain to/from dict for the protocol's flat frozen dataclasses (protocol.py), one JSON object per line."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, Mapping, TypeVar

W = TypeVar("W", bound="Wire")


class Wire:
    """Plain to/from dict for the flat dataclasses below. `_tuples` names fields that travel as JSON lists;
    `_nested` names fields holding another Wire (or Schedule / StepResult), with their type."""

    NAME: ClassVar[str]
    _tuples: ClassVar[frozenset[str]] = frozenset()
    _nested: ClassVar[Mapping[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self._nested and value is not None:
                value = value.to_dict()
            elif f.name in self._tuples:
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[W], data: Mapping[str, Any]) -> W:
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue  # the field's default
            value = data[f.name]
            if f.name in cls._nested and value is not None:
                value = cls._nested[f.name].from_dict(value)
            elif f.name in cls._tuples:
                value = tuple(value)
            values[f.name] = value
        return cls(**values)
