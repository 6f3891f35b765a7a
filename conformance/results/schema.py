"""The JSON Schema of the results document (conformance/results/results.schema.json), shipped with the package."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "results.schema.json"


@cache
def _schema_text() -> str:
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def load_schema() -> dict[str, Any]:
    """The results schema (draft 2020-12) as plain data; a fresh copy each call, so callers may change it."""
    return json.loads(_schema_text())


def validate_results(doc: Any) -> list[str]:
    """Every way `doc` breaks the results schema, one readable line each (`at run.finished: ...`); [] if valid.

    Needs the jsonschema package (the `test` extra): raises RuntimeError naming the install command if missing.
    """
    try:
        import jsonschema
    except ImportError:
        raise RuntimeError("validating results needs the jsonschema package; "
                           "install it with: pip install 'pkcs11-conformance[test]' (or pip install jsonschema)") from None
    validator_cls = jsonschema.validators.validator_for(load_schema(), default=jsonschema.Draft202012Validator)
    validator = validator_cls(load_schema(), format_checker=validator_cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"at {_where(e.absolute_path)}: {e.message}" for e in errors]


def _where(path: Any) -> str:
    parts = list(path)
    if not parts:
        return "(document)"
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
