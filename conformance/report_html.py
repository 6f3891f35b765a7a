"""The HTML compatibility page: vendors as columns, checks as rows, one static file (no network, no JS needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from jinja2 import Environment, PackageLoader, select_autoescape

from .results import Results, write_atomic


def _environment() -> Environment:
    return Environment(loader=PackageLoader("conformance", "templates"), autoescape=select_autoescape(["j2", "html"]))


def render(docs: Iterable[Results]) -> str:
    docs = list(docs)
    vendors: dict[str, dict] = {}
    cells: dict[tuple[str, str], dict] = {}
    checks: dict[str, dict] = {}
    for doc in docs:
        for name, info in doc.vendors.items():
            vendors[name] = {**info, "python_pkcs11": doc.run.python_pkcs11_version}
        for r in doc.results:
            cells[(r.check, r.vendor)] = r.to_dict()
            checks.setdefault(r.check, {"id": r.check, "area": r.check.split(".", 1)[0], "spec": r.spec, "layer": r.layer})
    areas: dict[str, list[dict]] = {}
    for check in sorted(checks.values(), key=lambda c: c["id"]):
        areas.setdefault(check["area"], []).append(check)
    totals: dict[str, int] = {}
    for cell in cells.values():
        totals[cell["outcome"]] = totals.get(cell["outcome"], 0) + 1
    return _environment().get_template("report.html.j2").render(
        runs=[d.run for d in docs], vendors=vendors, areas=areas, cells=cells, totals=totals,
    )


def write_report(path: Path, docs: Iterable[Results]) -> None:
    write_atomic(path, render(docs))
