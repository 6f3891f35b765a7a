"""The HTML compatibility page: vendors as columns, checks grouped by area as rows, a click opens a cell's detail.

One static file: inline CSS, no script, no network (works from file://). The view data comes from report/model.py;
the markup lives in templates/report.html.j2 (and its stylesheet report.css.j2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from .model import Report, build
from ..results.document import Results, write_atomic

TEMPLATE = "report.html.j2"


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("conformance.report", "templates"),
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
