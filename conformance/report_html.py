"""The HTML compatibility page: vendors as columns, checks grouped by area as rows, a click opens a cell's detail.

One static file: inline CSS, no script, no network (works from file://). The view data comes from report_model;
the markup lives in templates/report.html.j2 (and its stylesheet report.css.j2).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from .report_model import Report, build
from .results import Results, write_atomic

TEMPLATE = "report.html.j2"


class ReportInputError(Exception):
    """A file given to the report is not a readable results file (the message names the file and the fix)."""


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("conformance", "templates"),
        autoescape=select_autoescape(["j2", "html"]),
        undefined=StrictUndefined,  # a misspelt field is a rendering error, not a silently empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_model(report: Report) -> str:
    return _environment().get_template(TEMPLATE).render(report=report)


def render(docs: Iterable[Results], sources: Sequence[str | None] | None = None, page_dir: str | None = None) -> str:
    """The page for these runs; `sources` (one per run, or None) are their results files, for replay hints."""
    return render_model(build(docs, sources, page_dir))


def write_report(path: Path, docs: Iterable[Results], sources: Sequence[str | None] | None = None) -> None:
    write_atomic(Path(path), render(docs, sources, str(Path(path).parent)))


def load_run(path: str | os.PathLike[str]) -> Results:
    """Read one results file for the report; every way it can be unusable is a ReportInputError naming the fix."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read it ({exc.strerror or exc}); pass a results JSON file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportInputError(f"{path}: not JSON ({exc}); pass a results file written by --conformance-json") from None
    problems = _schema_problems(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ReportInputError(f"{path}: not a pkcs11-conformance results file: {problems[0]}{more}; "
                               "pass a file written by --conformance-json")
    try:
        return Results.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportInputError(f"{path}: not a pkcs11-conformance results file ({exc!s}); "
                               "pass a file written by --conformance-json") from None


def _schema_problems(data: object) -> list[str]:
    """Schema violations when jsonschema is installed; otherwise the basic shape (the renderer is defensive)."""
    try:
        from .schema import validate_results

        return validate_results(data)
    except RuntimeError:  # jsonschema missing
        if not isinstance(data, dict):
            return ["the document is not a JSON object"]
        missing = [k for k in ("schema", "run", "vendors", "results") if k not in data]
        return [f"missing {', '.join(missing)}"] if missing else []
