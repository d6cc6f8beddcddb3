"""The design card's rules, read from the code itself (every import, parsed with ``ast``).

* imports flow one way, ``compiler <- grammar <- runtime <- cosmonaut``;
* no module-level import circle between the project's modules, and none at any level inside
  the pure core;
* the pure core (``compiler/``, ``grammar/``) does no I/O of the kinds the edges own;
* ``docs/architecture.md`` names every module that exists.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.support.paths import ROOT

LAYERS = ("compiler", "grammar", "runtime", "cosmonaut")
PURE = ("compiler", "grammar")
# Modules (and attributes) that mean I/O the edges own: the environment, AWS, Docker, SQL,
# processes, the network.
IO_MODULES = ("boto3", "botocore", "docker", "sqlite3", "subprocess", "socket")
IO_ATTRIBUTES = {("os", "environ"), ("os", "getenv"), ("os", "putenv"), ("os", "system")}


@dataclass(frozen=True, slots=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted (for ``from X import y``: X, or X.y if a module)
    line: int
    top_level: bool  # executed when the module is imported (not in a function, not TYPE_CHECKING)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for layer in LAYERS
        for path in sorted((ROOT / layer).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, top_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, False)
        elif isinstance(child, ast.If) and _is_type_checking(child):
            for statement in child.body:
                yield statement, False
                yield from _walk(statement, False)
            for statement in child.orelse:
                yield statement, top_level
                yield from _walk(statement, top_level)
        else:
            yield child, top_level
            yield from _walk(child, top_level)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node, top_level in _walk(tree, True):
        if isinstance(node, ast.Import):
            found.extend(Import(name, a.name, node.lineno, top_level) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in modules else base
                found.append(Import(name, target, node.lineno, top_level))
    return found


def io_uses(path: Path) -> list[tuple[int, str]]:
    """Where a module imports an I/O module or touches ``os.environ`` and the like."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    uses: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            uses.extend(
                (node.lineno, f"import {a.name}")
                for a in node.names
                if a.name.split(".")[0] in IO_MODULES
            )
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] in IO_MODULES:
                uses.append((node.lineno, f"from {node.module} import ..."))
            uses.extend(
                (node.lineno, f"from {node.module} import {a.name}")
                for a in node.names
                if (node.module, a.name) in IO_ATTRIBUTES
            )
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in IO_ATTRIBUTES
        ):
            uses.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return uses


def layer_of(module: str) -> int | None:
    top = module.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else None


def layering_violations(imports: list[Import]) -> list[str]:
    problems = []
    for item in imports:
        source, target = layer_of(item.module), layer_of(item.target)
        if source is not None and target is not None and target > source:
            problems.append(
                f"{item.module} (line {item.line}) imports {item.target}: "
                f"{LAYERS[source]} may not depend on {LAYERS[target]}"
            )
    return problems


def import_cycles(imports: list[Import], modules: dict[str, Path]) -> list[list[str]]:
    """Strongly connected components (Tarjan) of the import graph at every level: an import
    inside a function or under ``TYPE_CHECKING`` hides a circle from Python, not from us."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for item in imports:
        if item.target in modules and item.target != item.module:
            graph[item.module].add(item.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    found = project_modules()
    assert {"compiler.ast", "grammar.parser", "runtime.pipeline", "cosmonaut.daemon.sync"} <= set(
        found
    )
    return found


@pytest.fixture(scope="module")
def all_imports(modules: dict[str, Path]) -> list[Import]:
    return [item for name, path in modules.items() for item in imports_of(name, path, modules)]


def test_imports_flow_one_way(all_imports: list[Import]) -> None:
    assert layering_violations(all_imports) == []


def test_no_import_circle_at_any_level(all_imports: list[Import], modules: dict[str, Path]) -> None:
    assert import_cycles(all_imports, modules) == []


def test_no_import_circle_at_any_level_in_the_pure_core(
    all_imports: list[Import], modules: dict[str, Path]
) -> None:
    """Inside ``compiler`` and ``grammar`` an import in a function or under TYPE_CHECKING
    counts too: a lazy import hides a circle, it does not remove it."""
    pure = {name: path for name, path in modules.items() if name.split(".")[0] in PURE}
    every = [replace(item, top_level=True) for item in all_imports if item.module in pure]
    assert import_cycles(every, pure) == []


def test_the_pure_core_does_no_edge_io(modules: dict[str, Path]) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for name, path in modules.items()
        if name.split(".")[0] in PURE
        for line, what in io_uses(path)
    ]
    assert found == []


def _has_code(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in body)


def test_architecture_page_names_every_module(modules: dict[str, Path]) -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [
        str(path.relative_to(ROOT))
        for path in modules.values()
        if (path.name != "__init__.py" or _has_code(path))
        and f"`{path.relative_to(ROOT)}`" not in page
    ]
    assert missing == [], "docs/architecture.md's package table misses these modules"


# The checks above must be able to fail: each is fed a known violation.


def test_a_backward_import_is_reported(modules: dict[str, Path]) -> None:
    bad = Import("compiler.lower", "runtime.pipeline", 7, True)
    (problem,) = layering_violations([bad])
    assert "compiler.lower (line 7) imports runtime.pipeline" in problem


def test_a_circle_through_a_function_level_import_is_reported(modules: dict[str, Path]) -> None:
    circle = [
        Import("cosmonaut.cli", "cosmonaut.wiring", 9, False),  # inside a function
        Import("cosmonaut.wiring", "cosmonaut.cli", 3, True),
    ]
    assert import_cycles(circle, modules) == [["cosmonaut.cli", "cosmonaut.wiring"]]


def test_a_circle_is_reported(modules: dict[str, Path]) -> None:
    circle = [
        Import("runtime.pipeline", "runtime.merge", 1, True),
        Import("runtime.merge", "runtime.pipeline", 1, True),
    ]
    assert import_cycles(circle, modules) == [["runtime.merge", "runtime.pipeline"]]


def test_io_in_the_core_is_reported(tmp_path: Path) -> None:
    module = tmp_path / "leaky.py"
    module.write_text(
        "import os\nimport subprocess\nfrom docker import from_env\n"
        "def f():\n    return os.environ.get('X')\n"
    )
    assert [what for _, what in io_uses(module)] == [
        "import subprocess",
        "from docker import ...",
        "os.environ",
    ]
