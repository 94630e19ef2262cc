"""Every benchmark can still run: each name it imports from ``ensemble`` (at the top or inside a
function) exists where it imports it from, and so does each name it takes from another
benchmark. A moved function broke ``make bench`` at its first step once (bench_averaging
imported ``average_checkpoints`` from where it no longer was), silently."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
FILES = sorted(BENCH.glob("bench_*.py"))


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                yield node.module, a.name, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None, node.lineno


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_name_a_benchmark_imports_exists(path):
    missing = []
    for module, name, line in _imports(path):
        if module.startswith("ensemble"):
            mod = importlib.import_module(module)
            if name is not None and not hasattr(mod, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    missing.append(f"{path.name}:{line}: {module}.{name}")
        elif module.startswith("bench_"):
            other = (BENCH / f"{module}.py").read_text(encoding="utf-8")
            defined = {n.name for n in ast.parse(other).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            defined |= {t.id for n in ast.parse(other).body if isinstance(n, ast.Assign) for t in n.targets
                        if isinstance(t, ast.Name)}
            if name is not None and name not in defined:
                missing.append(f"{path.name}:{line}: {module}.{name}")
    assert missing == []


def test_there_are_benchmarks_to_check():
    assert len(FILES) >= 10


# the benchmarks run end to end at --smoke sizes, in this process (torch is imported once); the
# ones that train or load real models beyond a step, or read ../shared, are checked above only
SMOKE = ["bench_honesty", "bench_regression", "bench_multilabel", "bench_priors", "bench_folds",
         "bench_winners_curse", "bench_weighting", "bench_many_classes", "bench_zoo", "bench_averaging",
         "bench_predict", "bench_real", "bench_sweep", "bench_metrics", "bench_tokens", "bench_generation"]


@pytest.mark.parametrize("name", SMOKE)
def test_the_benchmark_runs_at_smoke_size(name, monkeypatch, capsys):
    import runpy
    import sys

    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", [str(BENCH / f"{name}.py"), "--smoke"])
    runpy.run_path(str(BENCH / f"{name}.py"), run_name="__main__")
    assert capsys.readouterr().out.strip()  # it printed its figures
