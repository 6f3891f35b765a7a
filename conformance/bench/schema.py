"""The JSON Schema of the bench document (conformance/bench/bench.schema.json), shipped with the package."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "bench.schema.json"


@cache
def _schema_text() -> str:
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def load_schema() -> dict[str, Any]:
    return json.loads(_schema_text())


def validate_bench(doc: Any) -> list[str]:
    """Every way `doc` breaks the bench schema, one line each; [] if valid. Without jsonschema installed (it is
    the `test` extra) only the shape the readers rely on is looked at: the keys from_dict reads."""
    try:
        import jsonschema
    except ImportError:
        return _shape(doc)
    from ..results.schema import _where

    validator_cls = jsonschema.validators.validator_for(load_schema(), default=jsonschema.Draft202012Validator)
    validator = validator_cls(load_schema(), format_checker=validator_cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"at {_where(e.absolute_path)}: {e.message}" for e in errors]


def _shape(doc: Any) -> list[str]:
    if not isinstance(doc.get("run"), dict) or not isinstance(doc.get("rows"), list):
        return ["at (document): needs run and rows"]
    missing = [k for row in doc["rows"] for k in ("vendor", "mechanism", "strategy", "threads") if k not in row]
    return [f"at rows: a row has no {missing[0]}"] if missing else []
