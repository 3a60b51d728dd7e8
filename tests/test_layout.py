"""The package's shape: who imports whom, and the line budget.

A reader finds each concept by its file name, and can read any module without
first reading the ones that import it. So the import graph has one cycle only,
the engine core's (a Tensor's methods apply op `Function`s; `Function.apply`
returns Tensors), and every file and function stays short enough to read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "numpygpt"
ENGINE_CORE = {"autograd", "tensor", "ops"}
MAX_FILE_LINES = 650
MAX_FUNCTION_LINES = 90


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.glob("*.py"))}


def _imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """Every package module `tree` imports, at any depth (inside functions and `if TYPE_CHECKING` too)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x, y
                found.update(a.name for a in node.names)
            elif node.module and node.module.split(".")[0] == "numpygpt":
                parts = node.module.split(".")
                found.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "numpygpt" and len(parts) > 1:
                    found.add(parts[1])
    return found & modules


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    names = set(modules) - {"__init__", "__main__"}
    return {name: _imports(tree, names) - {name} for name, tree in modules.items() if name in names}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def test_the_only_import_cycle_is_the_engine_core() -> None:
    cycles = _cycles(_graph())
    assert all(c <= ENGINE_CORE for c in cycles), f"import cycles outside the engine core: {cycles}"


def test_the_engine_core_imports_nothing_above_it() -> None:
    graph = _graph()
    for name in ENGINE_CORE:
        above = graph[name] - ENGINE_CORE - {"_checks", "random"}
        assert not above, f"{name}.py imports {sorted(above)}"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_files_and_functions_fit_the_line_budget(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_FILE_LINES, f"{path.name} has {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}: {node.name} has {length} lines"


def test_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []
