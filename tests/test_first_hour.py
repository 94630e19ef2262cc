"""What a new user meets in the first hour: the test data, the example's training, the README's
notebook snippets."""

from __future__ import annotations

import ast
import builtins
import math
import re
from pathlib import Path

import pytest

from .conftest import load_korean, require

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_requirement_skips_locally_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no data"):
        require(False, "no data")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no data \(tests are never skipped under CI\)"):
        require(False, "no data")
    require(True, "present")  # no effect


def test_the_shipped_slice_is_what_the_fixtures_read():
    (texts, labels), (vtexts, vlabels) = load_korean()
    assert len(texts) == 192 and len(vtexts) == 64
    assert set(labels) == {"none", "offensive", "hate"}
    assert any("\uac00" <= ch <= "\ud7a3" for ch in texts[0])  # real Korean text
    assert (ROOT / "tests" / "data" / "korean-hate-speech" / "LICENSE.md").is_file()
    assert "CC BY-SA 4.0" in (ROOT / "tests" / "data" / "korean-hate-speech" / "SOURCE.md").read_text()


def test_training_shows_every_step_and_uses_one_thread_for_tiny_models(runs, tmp_path):
    """The example's progress bar counts optimizer steps against a total computed before
    training; tiny models train on one thread (then the previous count is back)."""
    import torch
    from transformers import TrainerCallback

    from ensemble.cli.example import _step_progress, train_run

    class Bar:
        n = 0

        def update(self, k=1):
            self.n += k

    threads = []

    class Threads(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            threads.append(torch.get_num_threads())

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train, valid = load_korean(60, 20)
        bar = Bar()
        train_run(tmp_path / "run", runs.base, train, valid, epochs=2, steps=4, batch_size=16,
                  callbacks=[_step_progress(bar), Threads()])
        assert bar.n == 2 * math.ceil(60 / 16)  # the total make_example announces
        assert set(threads) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _undefined_names(code: str) -> set[str]:
    """Names a snippet reads but never binds (imports, assignments, loops, functions, classes)."""
    tree = ast.parse(code)
    bound, read = set(dir(builtins)), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, (ast.Store, ast.Del)) else read).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return read - bound


@pytest.mark.parametrize("doc", ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))])
def test_notebook_snippets_name_only_what_they_define(doc):
    """Every ```python block of the README and docs/ runs as written as far as names go: each
    name it reads is imported or assigned in the block (the blocks are independent cells)."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks or doc != "README.md"
    for code in blocks:
        assert not _undefined_names(code), (doc, sorted(_undefined_names(code)), code[:200])


def test_notebook_snippets_use_public_names_that_exist():
    """What the snippets import from ensemble exists, is public (the top level's ``__all__``, or a
    subpackage module's own name), and takes the keyword arguments the snippets pass it: no stale
    name and no stale argument in the docs."""
    import importlib
    import inspect

    import ensemble

    for doc in ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))]:
        text = (ROOT / doc).read_text(encoding="utf-8")
        for code in re.findall(r"```python\n(.*?)```", text, re.S):
            imported = {}
            tree = ast.parse(code)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ensemble":
                    module = importlib.import_module(node.module)
                    for alias in node.names:
                        assert not alias.name.startswith("_"), (doc, node.module, alias.name)
                        if node.module == "ensemble":
                            assert alias.name in ensemble.__all__, (doc, alias.name)
                        imported[alias.asname or alias.name] = getattr(module, alias.name)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported:
                    target = imported[node.func.id]
                    params = inspect.signature(target).parameters
                    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                        continue
                    unknown = [k.arg for k in node.keywords if k.arg is not None and k.arg not in params]
                    assert not unknown, (doc, node.func.id, unknown)


def test_repr_of_a_split_is_one_short_line(tmp_path):
    import pandas as pd

    from ensemble.data.splits import load_split

    path = tmp_path / "valid.csv"
    pd.DataFrame({"id": range(5000), "text": ["긴 문장입니다 " * 20] * 5000, "label": ["a", "b"] * 2500}).to_csv(path, index=False)
    r = repr(load_split(path))
    assert r == f"Split('valid', '{path}', 5000 rows, id='id', text='text', label='label')"
    unlabelled = repr(load_split(path, label="gold", label_if_present=True))
    assert unlabelled.endswith("text='text', unlabelled)")
