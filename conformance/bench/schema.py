"""The JSON Schema of the bench document (conformance/bench/bench.schema.json), shipped with the package."""

from __future__ import annotations

from typing import Any

from ..results.schema import packaged_schema, schema_errors

SCHEMA_FILE = "bench.schema.json"


def load_schema() -> dict[str, Any]:
    return packaged_schema(__package__, SCHEMA_FILE)


def validate_bench(doc: Any) -> list[str]:
    """Every way `doc` breaks the bench schema, one line each; [] if valid. Without jsonschema installed (it is
    the `test` extra) only the shape the readers rely on is looked at: the keys from_dict reads."""
    try:
        return schema_errors(load_schema(), doc)
    except ImportError:
        return _shape(doc)


def _shape(doc: Any) -> list[str]:
    if not isinstance(doc.get("run"), dict) or not isinstance(doc.get("rows"), list):
        return ["at (document): needs run and rows"]
    missing = [k for row in doc["rows"] for k in ("vendor", "mechanism", "strategy", "threads") if k not in row]
    return [f"at rows: a row has no {missing[0]}"] if missing else []
