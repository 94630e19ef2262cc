"""The package's structure: modules import one way only, and no private name crosses a module.

Every import of a module of ``ensemble`` counts, at the top of a file or inside a function: a
circle through a function-level import is still a circle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ensemble"


def _imports() -> dict[str, dict[str, set[str]]]:
    """module -> {imported module -> names imported from it}."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        deps: dict[str, set[str]] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("ensemble")):
                module = (node.module or "").removeprefix("ensemble").lstrip(".").split(".")[0]
                if module:
                    deps.setdefault(module, set()).update(a.name for a in node.names)
                else:  # from . import x
                    for a in node.names:
                        deps.setdefault(a.name, set())
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("ensemble."):
                        deps.setdefault(a.name.split(".")[1], set())
        graph[path.stem] = {m: names for m, names in deps.items() if m != path.stem}
    return graph


def _circles(graph: dict[str, dict]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert _circles(_imports()) == []


def test_the_check_finds_a_circle():
    graph = {"a": {"b": set()}, "b": {"c": set()}, "c": {"a": set()}, "d": {"a": set()}}
    assert _circles(graph) == [["a", "b", "c"]]


def test_the_core_layers_import_nothing_above_them():
    """combination, logits and scores are numpy only; the methods (weighting, adjustment) stand on
    them alone; the procedure chains the methods; the estimates stand on the procedure; nothing
    below imports a workflow or a face."""
    graph = _imports()
    below = {
        "logits": set(),
        "combination": {"errors"},
        "scores": {"errors"},
        "resampling": {"errors", "scores"},
        "adjustment": {"errors", "combination", "scores"},
        "weighting": {"errors", "combination", "scores", "adjustment", "atomic"},
        "progress": set(),
        "procedure": {"errors", "adjustment", "weighting", "resampling", "progress", "combination", "estimate_store"},
        "estimate_store": {"atomic"},
        "estimate": {"errors", "combination", "scores", "weighting", "procedure", "resampling", "estimate_store"},
        "priors": {"errors", "adjustment", "scores", "weighting", "procedure", "resampling", "data", "estimate_store",
                   "combination"},
    }
    for module, allowed in below.items():
        assert set(graph[module]) <= allowed, (module, sorted(set(graph[module]) - allowed))


def test_no_private_name_crosses_a_module():
    """``from .x import _name`` couples a module to another's internals; tests may, the package not."""
    crossing = sorted((m, dep, n) for m, deps in _imports().items() for dep, names in deps.items()
                      for n in names if n.startswith("_") and not n.startswith("__"))
    assert crossing == []


def test_no_function_over_80_lines_of_code():
    """Functions stay readable: at most 80 lines besides their docstring (numpydoc parameters may
    make the whole longer), unless the docstring gives the reason ("Long because ...")."""
    long = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False) or ""
                code = node.end_lineno - node.lineno + 1 - (doc.count("\n") + 1 if doc else 0)
                if code > 80 and "Long because" not in doc:
                    long.append((path.name, node.name, code))
    assert long == []
