"""docs/architecture.md against the code: its package table, who imports whom, no cycles.

Imports are read from the source (``ast``), lazy ones inside functions and those under
``TYPE_CHECKING`` included: an import is an arrow whether or not it runs at import time.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import sweeper
import sweeper.models

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
SRC = Path(sweeper.__file__).parent
MODELS = Path(sweeper.models.__file__).parent
ROW = re.compile(r"^\| `(?P<name>\w+)` \|(?P<what>[^|]*)\|(?P<may>[^|]*)\|\s*$")


def doc_table() -> dict[str, set[str]]:
    """The doc's package table: package -> the packages it may import."""
    rows = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            rows[m["name"]] = set(re.findall(r"`(\w+)`", m["may"]))
    return rows


def source_files() -> dict[str, Path]:
    """Every module of the installed package: dotted name (without ``sweeper.``) -> file."""
    files = {}
    for base, prefix in ((SRC, ""), (MODELS, "models.")):
        for path in sorted(base.rglob("*.py")):
            if base == SRC and MODELS in path.parents:
                continue
            if "hook" in path.relative_to(base).parts:  # the script's sitecustomize
                continue
            rel = path.relative_to(base).with_suffix("")
            dotted = prefix + ".".join(rel.parts)
            files[dotted.removesuffix(".__init__").removesuffix("__init__") or "sweeper"] = path
    return files


def imports_of(name: str, path: Path) -> set[str]:
    """The ``sweeper.*`` modules ``path`` imports (dotted, without ``sweeper.``)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"sweeper.{base}.{node.module or ''}".rstrip(".")
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            if target == "sweeper" or target.startswith("sweeper."):
                found.add(target.removeprefix("sweeper").removeprefix(".") or "sweeper")
    return found


def top(module: str) -> str:
    return module.split(".")[0]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = source_files()
    return {
        name: {m for m in imports_of(name, path) if m in files and m != name}
        for name, path in files.items()
    }


def test_every_package_and_module_has_a_row_and_every_row_exists() -> None:
    rows = set(doc_table())
    code = {top(name) for name in source_files()} - {"sweeper"}
    assert code - rows == set(), "packages or modules of src/ missing from docs/architecture.md"
    assert rows - code == set(), "rows of docs/architecture.md that name nothing in src/"


def test_each_package_imports_only_what_its_row_allows(graph: dict[str, set[str]]) -> None:
    allowed = doc_table()
    allowed["sweeper"] = {"api", "errors"}
    arrows = {
        f"{name} -> {dep}"
        for name, deps in graph.items()
        for dep in deps
        if top(dep) != top(name) and top(dep) not in allowed[top(name)]
    }
    assert arrows == set(), "imports docs/architecture.md does not allow"


def test_no_package_imports_a_package_that_imports_it() -> None:
    allowed = doc_table()
    mutual = {(a, b) for a, deps in allowed.items() for b in deps if a in allowed.get(b, set())}
    assert mutual == set()


def test_no_module_imports_itself_round_a_cycle(graph: dict[str, set[str]]) -> None:
    """Tarjan's strongly connected components over modules; a package's ``__init__`` that
    re-exports its own modules is not an arrow back (its modules import the package's
    siblings, not the package)."""
    edges = {
        name: {d for d in deps if not d.startswith(name + ".")} for name, deps in graph.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_readme_layout_points_to_this_page() -> None:
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
