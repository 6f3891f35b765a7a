"""The house's shape (issue 10), checked: subpackages by stage with one arrow direction — no import circle, nested
and TYPE_CHECKING imports included —, a pure engine that never imports pkcs11, few modules at the top, none long,
and no private pytest API."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "conformance"
# The stages in import order: a module may import from its own stage and the ones before it, never after.
STAGES = [
    {"outcomes", "pins", "labels", "binding", "sut", "refsession"},  # the shared vocabulary and contracts
    {"engine"},  # schedules, the model, exploration: pure
    {"live"},  # what the module's process sees of the token
    {"runtimes"},  # programs of other runtimes (greenlets, asyncio) the checks start, and their model
    {"results"},  # the results document
    {"executor"},  # the module's process and its parent side
    {"vendor"},  # profiles, provisioning, bringing a vendor up
    {"checks"},  # the checks (import live, engine, executor.protocol)
    {"gate", "report"},  # reading results
    {"plugin"},  # pytest
    {"cli", "profiles", "matrix", "reproduce", "bench"},  # the console script, the binding matrix, the reproducers it
    # writes, the benchmark; the shipped profiles
]
TOP_LEVEL_LIMIT = 8  # modules directly in conformance/, __init__ included
LINE_LIMIT = 400
PRIVATE_PYTEST = re.compile(r"\b_pytest\b|\._fixtureinfo\b|\._tmp_path_factory\b|\._tw\b|\.(_report_sections|_request)\b")


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every conformance module `name` imports anywhere in its body (nested and TYPE_CHECKING imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out |= {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def stage_of(module: str) -> int:
    first = module.split(".")[1] if "." in module else ""
    return next(i for i, stage in enumerate(STAGES) if first in stage) if first else -1


def test_no_import_circle() -> None:
    """One arrow direction: no module reaches itself through imports (Tarjan's strongly connected components)."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    assert not circles, circles


def test_every_module_belongs_to_a_stage() -> None:
    """A new top-level module or subpackage is placed in STAGES deliberately."""
    unplaced = {m for m in modules() if m != "conformance" and not any(m.split(".")[1] in s for s in STAGES)}
    assert not unplaced, f"add to STAGES in this test: {sorted(unplaced)}"


def test_imports_go_one_way_along_the_stages() -> None:
    """A module imports only from its own stage and earlier ones (e.g. the engine never from the executor)."""
    backwards = sorted(f"{a} -> {b}" for a, targets in graph().items() for b in targets
                       if a != "conformance" and b != "conformance" and stage_of(b) > stage_of(a))
    assert not backwards, backwards


def test_the_engine_never_imports_pkcs11() -> None:
    """The model side reads and tests apart from the binding: conformance/engine/ imports no pkcs11 at all."""
    offenders = []
    for path in (PACKAGE / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "pkcs11"]
    assert not offenders, offenders


def test_few_modules_at_the_top() -> None:
    """At most about eight modules directly in conformance/: everything else sits in its stage's folder."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= TOP_LEVEL_LIMIT, top


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_long(path: Path) -> None:
    """No module past ~400 lines: split it by job."""
    assert len(path.read_text(encoding="utf-8").splitlines()) <= LINE_LIMIT


def test_no_private_pytest_api() -> None:
    """Only pytest's public API (issue 10: item._fixtureinfo, config._tmp_path_factory were used)."""
    hits = [f"{p.relative_to(PACKAGE)}:{i}: {line.strip()}" for p in PACKAGE.rglob("*.py")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if PRIVATE_PYTEST.search(line)]
    assert not hits, hits
