"""The JSON Schema of the results document (conformance/results/results.schema.json), shipped with the package."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "results.schema.json"


@cache
def _schema_text(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def packaged_schema(package: str, name: str) -> dict[str, Any]:
    """A JSON Schema shipped in `package` as plain data; a fresh copy each call, so callers may change it."""
    return json.loads(_schema_text(package, name))


def load_schema() -> dict[str, Any]:
    """The results schema (draft 2020-12) as plain data; a fresh copy each call, so callers may change it."""
    return packaged_schema(__package__, SCHEMA_FILE)


def schema_errors(schema: dict[str, Any], doc: Any) -> list[str]:
    """Every way `doc` breaks `schema`, one readable line each (`at run.finished: ...`); [] if valid. ImportError
    without the jsonschema package (each caller says what that means for it)."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"at {_where(e.absolute_path)}: {e.message}" for e in errors]


def validate_results(doc: Any) -> list[str]:
    """Every way `doc` breaks the results schema, one readable line each (`at run.finished: ...`); [] if valid.

    Needs the jsonschema package (the `test` extra): raises RuntimeError naming the install command if missing.
    """
    try:
        return schema_errors(load_schema(), doc)
    except ImportError:
        raise RuntimeError("validating results needs the jsonschema package; "
                           "install it with: pip install 'pkcs11-conformance[test]' (or pip install jsonschema)") from None


def _where(path: Any) -> str:
    parts = list(path)
    if not parts:
        return "(document)"
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
