"""The launcher's module layout, read from its source: no import cycle among its modules, and one
``ray.wait`` loop.

The import graph is built from every ``import`` statement of every module of
``hydra_plugins/inal_ray_launcher`` (top-level and inside functions, absolute and relative), so a
new module or a new import is checked without editing this test.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set

PACKAGE = "hydra_plugins.inal_ray_launcher"
ROOT = Path(__file__).resolve().parents[1] / "hydra_plugins" / "inal_ray_launcher"


def _modules() -> Dict[str, ast.Module]:
    return {f"{PACKAGE}.{p.stem}" if p.stem != "__init__" else PACKAGE: ast.parse(p.read_text(), filename=str(p))
            for p in sorted(ROOT.glob("*.py"))}


def _imported(module: str, tree: ast.Module, known: Set[str]) -> Set[str]:
    """The package's modules that ``module`` imports anywhere in its source."""
    is_package = module == PACKAGE
    found: Set[str] = set()
    for node in ast.walk(tree):
        names: List[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                parts = module.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            # ``import a.b.c`` imports a.b and a.b.c; ``from pkg import _x`` imports pkg._x
            while name:
                if name in known and name != module:
                    found.add(name)
                name = name.rpartition(".")[0]
    found.discard(PACKAGE)  # every submodule imports its package first: not an edge of the layout
    return found


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """A cycle of ``graph`` as a list of nodes (first == last), or None (depth-first search)."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def import_graph() -> Dict[str, Set[str]]:
    modules = _modules()
    return {name: _imported(name, tree, set(modules)) for name, tree in modules.items()}


def test_the_cycle_finder_finds_cycles_and_only_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None  # a diamond is no cycle
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": set(), "a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]


def test_the_graph_sees_every_kind_of_import(tmp_path):
    """The parser finds ``from pkg import _m`` inside a function, ``import pkg._m`` and relative
    imports: the forms a cycle could hide in."""
    source = ("from hydra_plugins.inal_ray_launcher._ray import drain\n"
              "def f():\n    from hydra_plugins.inal_ray_launcher import _generic\n"
              "import hydra_plugins.inal_ray_launcher.progress\n"
              "from . import _summary\nfrom ._errors import LauncherConfigError\n")
    known = {f"{PACKAGE}.{m}" for m in ("_ray", "_generic", "progress", "_summary", "_errors", "_fast_path")}
    assert _imported(f"{PACKAGE}._fast_path", ast.parse(source), known) == known - {f"{PACKAGE}._fast_path"}


def test_launcher_modules_import_no_cycle():
    graph = import_graph()
    assert len(graph) >= 5 and any(graph.values())  # the package was read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among the launcher's modules: " + " -> ".join(cycle)


def _ray_wait_callers(name: str, tree: ast.Module) -> Set[str]:
    """The innermost functions of a module that call ``ray.wait``."""
    callers: Set[str] = set()

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            where = f"{where}.{node.name}"
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "wait"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "ray"):
            callers.add(where)
        for child in ast.iter_child_nodes(node):
            visit(child, where)

    visit(tree, name)
    return callers


def test_one_ray_wait_loop():
    """``ray.wait`` is called in one function of the package: the shared loop, ``_ray.drain``."""
    callers = set().union(*(_ray_wait_callers(name, tree) for name, tree in _modules().items()))
    assert callers == {f"{PACKAGE}._ray.drain"}
