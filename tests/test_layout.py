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
ENGINE_CORE = {"autograd", "tensor", "ops", "reductions"}
MAX_FILE_LINES = 650
MAX_FUNCTION_LINES = 90


def _modules() -> dict[str, ast.Module]:
    return {_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))}


def _name(path: Path) -> str:
    """A module's name below the package: "model", "utils.data", "utils" (its __init__)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _imports(tree: ast.Module, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """Every package module `tree` imports, at any depth (inside functions and `if TYPE_CHECKING` too)."""
    package = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()

    def add(parts: list[str]) -> None:
        for n in range(len(parts), 0, -1):  # the longest prefix that is one of our modules
            if ".".join(parts[:n]) in modules:
                found.add(".".join(parts[:n]))
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
            elif node.module and node.module.split(".")[0] == "numpygpt":
                base = []
            else:
                continue
            target = base + [p for p in (node.module or "").split(".") if p and p != "numpygpt"]
            for alias in node.names:
                add(target + [alias.name])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "numpygpt":
                    add(parts[1:])
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    names = set(modules) - {"__init__", "__main__"}
    packages = {p.parent.name for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE}
    return {name: _imports(tree, name, name in packages, names) - {name}
            for name, tree in modules.items() if name in names}


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
        above = graph[name] - ENGINE_CORE - {"_arguments", "_checks", "_printing", "random"}
        assert not above, f"{name}.py imports {sorted(above)}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_files_and_functions_fit_the_line_budget(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_FILE_LINES, f"{path.name} has {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}: {node.name} has {length} lines"


def test_imports_are_resolved_to_modules() -> None:
    graph = _graph()
    assert {"_checks", "random", "tensor"} <= graph["utils.data"]
    assert "utils.data" in graph["data"] and "autograd" in graph["tensor"]


def test_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []
