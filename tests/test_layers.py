"""The package's structure: subpackages in one declared order, modules import downward only, and
no private name crosses a module.

Every import of a module of ``ensemble`` counts, at the top of a file or inside a function: a
circle through a function-level import is still a circle in the design. ``TYPE_CHECKING`` imports
count too (they name a dependency), except where they are the only way round a circle of types.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ensemble"

# The layers, bottom first: a module may import from its own subpackage and from any layer below
# its own, never from one above. docs/architecture.md draws the same order.
LAYERS = ("core", "io", "data", "inference", "averaging", "combining", "estimates", "tasks", "workflows", "cli")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports() -> dict[str, dict[str, set[str]]]:
    """module -> {imported module -> names imported from it}, modules named in full
    (``ensemble.workflows.vote``)."""
    modules = _modules()
    graph: dict[str, dict[str, set[str]]] = {}
    for name, path in modules.items():
        deps: dict[str, set[str]] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(node, name, path.name == "__init__.py")
                if not target.startswith("ensemble"):
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in modules:  # from ensemble.io import atomic
                        deps.setdefault(sub, set())
                    else:
                        deps.setdefault(target, set()).add(a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("ensemble."):
                        deps.setdefault(a.name, set())
        graph[name] = {m: names for m, names in deps.items() if m != name}
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


def _layer(module: str) -> int | None:
    """The layer of ``ensemble.<layer>...``; None for the package's own ``__init__``/``__main__``."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_import_circles():
    assert _circles(_imports()) == []


def test_the_check_finds_a_circle():
    graph = {"a": {"b": set()}, "b": {"c": set()}, "c": {"a": set()}, "d": {"a": set()}}
    assert _circles(graph) == [["a", "b", "c"]]


def test_only_init_and_main_at_the_top_level():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py"]
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert packages == sorted(LAYERS), "every subpackage is a declared layer, every layer a subpackage"


def test_every_module_imports_downward_only():
    """A rule on package prefixes: ``ensemble.<layer>`` imports its own layer or a lower one."""
    upward = []
    for module, deps in _imports().items():
        mine = _layer(module)
        if mine is None:
            continue
        for dep in deps:
            theirs = _layer(dep)
            if theirs is not None and theirs > mine:
                upward.append((module, dep))
    assert upward == []


def test_the_check_finds_an_upward_import():
    assert _layer("ensemble.core.errors") < _layer("ensemble.workflows.vote")
    assert _layer("ensemble") is None


def test_the_layers_are_drawn_in_the_architecture_doc():
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawn = re.findall(r"^\| (\d+) \| `(\w+)/`", doc, flags=re.M)
    assert [name for _, name in sorted(drawn, key=lambda d: int(d[0]))] == list(LAYERS)


def test_no_private_name_crosses_a_module():
    """``from .x import _name`` couples a module to another's internals; tests may, the package not."""
    crossing = sorted((m, dep, n) for m, deps in _imports().items() for dep, names in deps.items()
                      for n in names if n.startswith("_") and not n.startswith("__"))
    assert crossing == []


def test_no_function_over_80_lines_of_code():
    """Functions stay readable: at most 80 lines besides their docstring (numpydoc parameters may
    make the whole longer), unless the docstring gives the reason ("Long because ...")."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False) or ""
                code = node.end_lineno - node.lineno + 1 - (doc.count("\n") + 1 if doc else 0)
                if code > 80 and "Long because" not in doc:
                    long.append((str(path.relative_to(PACKAGE)), node.name, code))
    assert long == []


# Modules whose tests live in another module's file or in a behaviour test: where, and a string
# of that file that shows the module's behaviour is what it asserts.
TESTED_ELSEWHERE = {
    "averaging.manifest": ("averaging/test_build.py", "up to date"),  # staleness and the files loading needs
    "averaging.provenance": ("workflows/test_report.py", "chosen on this validation split"),  # members' notes
    "averaging.reading": ("averaging/test_build.py", "pytorch_model.bin"),  # and test_hostile.py
    "averaging.selection": ("averaging/test_build.py", "select_checkpoints"),
    "cli.commands": ("cli/test_avg_ckpt.py", '"avg-ckpt"'),  # and every test that runs a command
    "cli.example": ("test_first_hour.py", "train_run"),
    "tasks.columns.fitting": ("tasks/columns/test_estimate.py", "fit_value_weights"),
    "tasks.rules": ("tasks/test_contract.py", "headline_first_and_shows_every_row"),  # entities, summarization
    "tasks.columns.base": ("tasks/columns/test_estimate.py", "resampled("),  # the metrics from row statistics
    "tasks.columns.render": ("workflows/test_column_tasks.py", "rep.to_html()"),
    "tasks.columns.vote": ("workflows/test_column_tasks.py", "clip=True"),
    "tasks.columns.report": ("workflows/test_column_tasks.py", "report("),  # every member and method scored
    "tasks.classification.vote": ("workflows/test_vote.py", "adjust"),  # weights, adjustment, submission
    "tasks.classification.report": ("workflows/test_report.py", "report("),
    "cli.init": ("cli/test_project.py", '"init"'),
    "cli.main": ("cli/test_avg_ckpt.py", "exit_code == 2"),  # exit codes, -v tracebacks, python -m ensemble
    "cli.options": ("cli/test_project.py", "commands with no other argument"),  # the flags, else the project file
    "cli.run": ("cli/test_project.py", '["run"]'),
    "tasks.classification.weights": ("tasks/classification/test_weighting.py", "predict_proba"),
    "core.progress": ("test_many_classes.py", "progress"),
    "inference.models": ("test_model_zoo.py", "refused"),  # heads refused before anything is loaded
    "io.modelfiles": ("test_model_zoo.py", "head"),
    "io.projectfile": ("io/test_atomic.py", "find_project"),
    "tasks.base": ("tasks/test_contract.py", "TASKS"),
    "workflows.gather": ("test_trust.py", "gather("),
}


def test_every_module_has_its_tests():
    """Tests are shaped like the package: ``tests/<subpackage>/test_<module>.py`` for each module,
    or the test file :data:`TESTED_ELSEWHERE` names, which must exist and hold its evidence."""
    tests = PACKAGE.parent / "tests"
    missing = []
    for name, path in _modules().items():
        if path.name in ("__init__.py", "__main__.py"):
            continue
        *pkg, mod = name.split(".")[1:]  # a task's package is one folder deeper: tasks/columns/regression
        dotted = ".".join([*pkg, mod])
        if tests.joinpath(*pkg, f"test_{mod}.py").is_file():
            assert dotted not in TESTED_ELSEWHERE, f"{dotted} has its own test file now"
            continue
        where, evidence = TESTED_ELSEWHERE.get(dotted, (None, None))
        if where is None or not (tests / where).is_file():
            missing.append(name)
        elif evidence not in (tests / where).read_text(encoding="utf-8"):
            missing.append(f"{name} ({evidence!r} not in {where})")
    assert missing == []


def test_the_architecture_doc_lists_every_module():
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    for layer, cells in re.findall(r"^\| \d+ \| `(\w+)/` \|.*\| ([^|]+) \|$", doc, flags=re.M):
        listed = set(re.findall(r"`([\w/]+)`", cells))
        actual = {p.relative_to(PACKAGE / layer).with_suffix("").as_posix() for p in (PACKAGE / layer).rglob("*.py")
                  if p.stem != "__init__"}
        assert listed == actual, (layer, sorted(listed ^ actual))


def _task_names() -> set[str]:
    from ensemble.tasks import TASKS

    return set(TASKS) | {"multi-label", "multilabel"}


def _outside_tasks():
    for name, path in _modules().items():
        if not name.startswith("ensemble.tasks"):
            yield name, path


def test_no_code_outside_tasks_asks_a_task_its_name():
    """The seam is a contract, not a name: outside ``ensemble/tasks/`` no comparison involves a
    task's name (``task.name == "regression"``, ``t in ("classification", ...)``) nor a task's
    ``.name``; the workflows ask the task's hooks instead."""
    names = _task_names()
    found = []
    for module, path in _outside_tasks():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            consts = {n.value for s in sides for n in ast.walk(s) if isinstance(n, ast.Constant)}
            task_attr = any(isinstance(n, ast.Attribute) and n.attr == "name" and "task" in ast.unparse(n.value)
                            for s in sides for n in ast.walk(s))
            if consts & names and "task" in ast.unparse(node) or task_attr:  # problem_type "regression": a config
                found.append((module, node.lineno, ast.unparse(node)))
    assert found == []


def test_no_code_outside_tasks_imports_a_particular_task():
    """Outside ``ensemble/tasks/`` only the registry (``ensemble.tasks``) and the contract
    (``ensemble.tasks.base``) are imported: a new task is a package plus one line in TASKS."""
    allowed = {"ensemble.tasks", "ensemble.tasks.base"}
    found = sorted((m, dep) for m, deps in _imports().items() if not m.startswith("ensemble.tasks")
                   for dep in deps if dep.startswith("ensemble.tasks") and dep not in allowed)
    assert found == []


def test_the_name_rule_finds_a_comparison(tmp_path):
    tree = ast.parse('if source.task.name != "classification":\n    pass\nif t in ("regression", "x"):\n    pass\n')
    compares = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
    assert len(compares) == 2 and all({c.value for s in [n.left, *n.comparators] for c in ast.walk(s)
                                       if isinstance(c, ast.Constant)} & _task_names()
                                      or "task.name" in ast.unparse(n) for n in compares)


def test_one_ensemble_selection_routine():
    """Caruana's selection is written once (combining/ensemble_selection.py); tasks state a loss."""
    defining = [name for name, path in _modules().items()
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.FunctionDef) and node.name == "ensemble_selection"
                and "selection_routine" not in path.read_text(encoding="utf-8")]
    assert defining == ["ensemble.combining.ensemble_selection"]
