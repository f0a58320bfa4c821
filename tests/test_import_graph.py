"""The package's modules import each other one way: no module reaches, through any chain of
imports, back to itself.

Every ``import`` and ``from ... import`` statement counts, at module level or inside a
function (a lazy import only delays a circle), except those under ``if TYPE_CHECKING:``, which
never run. The statements are read with :mod:`ast`, so nothing is imported to find them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hydra_pipeline", "hydra_plugins")


@dataclass(frozen=True)
class Import:
    """One import statement of ``importer`` that loads the package's module ``imported``."""

    importer: str
    imported: str
    line: int


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """The dotted name of every module below ``root`` in ``packages``, with its file."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _runs(statement: ast.stmt) -> Iterator[ast.stmt]:
    """The statements inside ``statement`` that run (an ``if TYPE_CHECKING:`` body never
    does), ``statement`` included."""
    yield statement
    for field in ("body", "orelse", "finalbody", "handlers", "cases"):
        if field == "body" and isinstance(statement, ast.If) and _is_type_checking(statement.test):
            continue
        for child in getattr(statement, field, []):
            if isinstance(child, ast.stmt):
                yield from _runs(child)
            else:  # an except handler or a match case holds statements in its body
                for inner in child.body:
                    yield from _runs(inner)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """The imports of the package's modules that module ``name`` (file ``path``) runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for top in tree.body:
        for statement in _runs(top):
            targets: list[str] = []
            if isinstance(statement, ast.Import):
                targets = [_loaded_module(alias.name, modules) for alias in statement.names]
            elif isinstance(statement, ast.ImportFrom):
                source = statement.module or ""
                if statement.level:
                    base = package.split(".")[: len(package.split(".")) - statement.level + 1]
                    source = ".".join([*base, *([source] if source else [])])
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    for alias in statement.names
                ]
            found += [
                Import(name, target, statement.lineno) for target in targets if target in modules
            ]
    return list(dict.fromkeys(found))  # one per statement and module


def _loaded_module(dotted: str, modules: dict[str, Path]) -> str:
    """The longest leading part of ``dotted`` that is one of ``modules`` (or ``dotted``)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return dotted


def import_circles(modules: dict[str, Path]) -> list[list[Import]]:
    """The imports of each group of modules that reach each other (Tarjan's strongly
    connected components), one list per group; empty when imports flow one way."""
    edges = {name: imports_of(name, path, modules) for name, path in modules.items()}
    order: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        order[module] = lowest[module] = len(order)
        stack.append(module)
        for edge in edges[module]:
            if edge.imported not in order:
                visit(edge.imported)
                lowest[module] = min(lowest[module], lowest[edge.imported])
            elif edge.imported in stack:
                lowest[module] = min(lowest[module], order[edge.imported])
        if lowest[module] == order[module]:
            group = set()
            while not group or module not in group:
                group.add(stack.pop())
            inside = [e for m in sorted(group) for e in edges[m] if e.imported in group]
            if inside:
                circles.append(inside)

    for module in modules:
        if module not in order:
            visit(module)
    return circles


def describe(circle: list[Import], modules: dict[str, Path], root: Path) -> str:
    """One line per import of ``circle``: file, line and the module it imports."""
    return "\n".join(
        f"  {modules[e.importer].relative_to(root)}:{e.line} imports {e.imported}" for e in circle
    )


def test_package_imports_flow_one_way() -> None:
    modules = module_files(ROOT, PACKAGES)
    circles = import_circles(modules)
    if circles:
        pytest.fail(
            "Import circles (the imports inside each group of modules that reach each other):\n"
            + "\n".join(describe(circle, modules, ROOT) for circle in circles)
        )


@pytest.mark.parametrize(
    ("module", "allowed"),
    [("hydra_pipeline.errors", set()), ("hydra_pipeline.arguments", {"hydra_pipeline.errors"})],
)
def test_the_ground_floor_stands_alone(module: str, allowed: set[str]) -> None:
    """The errors and the argument checks every layer uses import nothing else of the
    package, so any module may import them."""
    modules = module_files(ROOT, PACKAGES)
    assert {e.imported for e in imports_of(module, modules[module], modules)} == allowed


def test_the_reader_sees_every_import_that_runs() -> None:
    """The package's own imports are found, lazy ones included (or the test above would pass
    on a reader that finds nothing)."""
    modules = module_files(ROOT, PACKAGES)
    assert {"hydra_pipeline.app.train", "hydra_pipeline.pipeline.stage"} <= set(modules)
    lazy = imports_of("hydra_pipeline.app.cli", modules["hydra_pipeline.app.cli"], modules)
    assert "hydra_pipeline.app.callbacks" in {e.imported for e in lazy}


WRITE = {
    "pkg/__init__.py": "",
    "pkg/low.py": "from typing import TYPE_CHECKING\n"
    "if TYPE_CHECKING:\n    from pkg.high import High\n",
    "pkg/high.py": "from pkg import low\n",
    "pkg/left.py": "import pkg.right\n",
    "pkg/right.py": "def later():\n    try:\n        pass\n    finally:\n"
    "        from . import left\n",
}


@pytest.mark.parametrize(
    ("files", "circle"),
    [
        (WRITE, {("pkg.left", "pkg.right"), ("pkg.right", "pkg.left")}),
        ({**WRITE, "pkg/right.py": ""}, None),
    ],
    ids=["a relative import in a function closes a circle", "type-only imports do not"],
)
def test_circles_found_in_a_small_package(
    tmp_path: Path, files: dict[str, str], circle: set[tuple[str, str]] | None
) -> None:
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    circles = import_circles(module_files(tmp_path, ("pkg",)))
    found = [{(e.importer, e.imported) for e in c} for c in circles]
    assert found == ([] if circle is None else [circle])
