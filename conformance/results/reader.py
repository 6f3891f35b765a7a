"""Reading a results file given by the user (the gate's baseline and candidate, the report's runs): every way it
can be unusable is one ResultsInputError line naming the file and the fix."""

from __future__ import annotations

import json
import os
from typing import Any

from .. import RESULTS_SCHEMA
from ..outcomes import OUTCOMES
from .document import Results

FIX_FILE = "pass a results file written by pytest --conformance-json"


class ResultsInputError(ValueError):
    """A results file that cannot be used; the message is one line naming the file and the fix."""


def read_results(path: str | os.PathLike[str], role: str = "results", *, complete: bool = True) -> Results:
    """Read and validate a results file; every problem is a ResultsInputError naming the file (as `role PATH`, or
    `--option=PATH` when role is an option) and the fix. `complete`: refuse a run that did not finish (the gate
    does; the report shows such a run, marked as such)."""
    where = f"{role}={os.fspath(path)}" if role.startswith("--") else f"{role} {os.fspath(path)}"
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except IsADirectoryError:
        raise ResultsInputError(f"{where}: is a directory; name the results file itself") from None
    except OSError as exc:
        raise ResultsInputError(f"{where}: cannot read it ({exc.strerror or exc}); check the path") from None
    except UnicodeDecodeError:
        raise ResultsInputError(f"{where}: not UTF-8 text; {FIX_FILE}") from None
    if not text.strip():
        raise ResultsInputError(f"{where}: the file is empty; {FIX_FILE}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsInputError(f"{where}: not JSON ({exc}); {FIX_FILE}") from None
    return parse_results(data, where, complete=complete)


def parse_results(data: Any, where: str, *, complete: bool = True) -> Results:
    """A results document (plain data) as Results, checked for everything the gate and the report rely on (and
    against the JSON Schema too where jsonschema is installed)."""
    if not isinstance(data, dict):
        raise ResultsInputError(f"{where}: not a results document (a JSON object); {FIX_FILE}")
    if "schema" not in data:
        raise ResultsInputError(f"{where}: no 'schema' key, so not a results document; {FIX_FILE}")
    if data.get("schema") != RESULTS_SCHEMA:
        raise ResultsInputError(f"{where}: schema is {data.get('schema')!r}, expected {RESULTS_SCHEMA!r}; {FIX_FILE}")
    for key, kind in (("run", dict), ("vendors", dict), ("results", list)):
        if not isinstance(data.get(key), kind):
            raise ResultsInputError(f"{where}: malformed: {key!r} is missing or not a JSON {kind.__name__}; {FIX_FILE}")
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(data["results"]):
        problem = _record_problem(entry)
        if problem:
            raise ResultsInputError(f"{where}: malformed: results[{i}] {problem}; {FIX_FILE}")
        key = (entry["check"], entry["vendor"])
        if key in seen:
            raise ResultsInputError(f"{where}: malformed: check {key[0]!r} of vendor {key[1]!r} appears twice; "
                                    "pass the file of a single run")
        seen.add(key)
    schema_problems = _schema_problems(data)
    if schema_problems:
        more = f" (and {len(schema_problems) - 1} more)" if len(schema_problems) > 1 else ""
        raise ResultsInputError(f"{where}: malformed: {schema_problems[0]}{more}; {FIX_FILE}")
    try:
        doc = Results.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResultsInputError(f"{where}: malformed ({type(exc).__name__}: {exc}); {FIX_FILE}") from None
    if complete and not doc.run.complete:
        # A partial run would pass its missing checks off as lost coverage (candidate) or hide regressions (baseline).
        status = doc.run.exit_status
        how = "was killed or is still running" if status is None else f"ended with exit status {status}"
        raise ResultsInputError(f"{where}: the run did not finish (run.finished is null: it {how}); "
                                "gate only complete runs — run the checks again to the end")
    return doc


def _record_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "is not a JSON object"
    for key in ("check", "vendor", "layer"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            return f"has no {key!r} string"
    if entry.get("outcome") not in OUTCOMES:
        return f"outcome {entry.get('outcome')!r} is not one of {', '.join(OUTCOMES)}"
    if not isinstance(entry.get("deviations", []), list) or not all(isinstance(d, dict) for d in entry.get("deviations", [])):
        return "deviations is not a list of objects"
    return None


def _schema_problems(data: Any) -> list[str]:
    """Schema violations where jsonschema is installed (the `test` extra); the checks above cover the rest."""
    from .schema import validate_results

    try:
        return validate_results(data)
    except RuntimeError:  # jsonschema missing
        return []
