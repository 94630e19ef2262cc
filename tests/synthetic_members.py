"""Members with many classes, without training: model folders that `ensemble` opens (config,
a classification head in safetensors, a vocabulary) and their logits put in the logit cache, as
``ensemble predict`` would have cached them. Used by the many-class tests and
``benchmarks/bench_many_classes.py``.

The logits are realistic in the ways that matter to the combining half: members share part of
their errors (shared noise), differ in strength, and are miscalibrated (each has its own scale).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

RHO = 0.5


def draw(n: int, classes: int, strengths, scales, rng, prior=None) -> tuple[list[np.ndarray], np.ndarray]:
    """M members' logits (n, C) and the true classes: ``scale_m * (strength_m * onehot(y) +
    sqrt(rho) * shared + sqrt(1 - rho) * own_m)``."""
    y = rng.choice(classes, size=n, p=prior)
    shared = rng.normal(size=(n, classes))
    members = []
    for s, t in zip(strengths, scales):
        z = np.sqrt(RHO) * shared + np.sqrt(1 - RHO) * rng.normal(size=(n, classes))
        z[np.arange(n), y] += s
        members.append((t * z).astype(np.float32))
    return members, y


def make_members(root: Path, *, valid_rows: int, test_rows: int, models: int, classes: int, seed: int = 0,
                 strength: float = 3.0):
    """Write ``models`` fake model folders, ``data/valid.csv`` and ``data/test.csv`` under ``root``
    and cache every member's logits on both splits (in ``root/.ensemble/cache``).

    Returns (members {name: folder}, data {split: path}, cache_dir, labels)."""
    rng = np.random.default_rng(seed)
    labels = [f"intent_{c:03d}" for c in range(classes)]
    prior = rng.dirichlet(np.full(classes, 30.0))  # unequal classes, none so rare that a fold lacks it
    strengths = strength * np.linspace(1.0, 0.7, models)
    scales = np.linspace(0.6, 1.8, models)  # from under- to over-confident
    valid, yv = draw(valid_rows, classes, strengths, scales, rng, prior)
    test, yt = draw(test_rows, classes, strengths, scales, rng, prior)
    (root / "data").mkdir(parents=True, exist_ok=True)
    data = {"valid": root / "data" / "valid.csv", "test": root / "data" / "test.csv"}
    pd.DataFrame({"id": [f"v{i}" for i in range(valid_rows)], "text": "x",
                  "label": [labels[c] for c in yv]}).to_csv(data["valid"], index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(test_rows)], "text": "x"}).to_csv(data["test"], index=False)
    cache_dir = root / ".ensemble" / "cache"
    members = {}
    for m in range(models):
        members[f"m{m}"] = cache_fake_model(root / "models" / f"m{m}", f"m{m}", labels, {},
                                            {"valid": valid[m], "test": test[m]}, data, cache_dir, rng)
    return members, data, cache_dir, labels


def draw_values(task: str, n: int, names, strengths, rng, *, rho: float = RHO, offsets=None, scales=None):
    """Regression: the truth y (n, T) ~ N(0, 1) and M members' outputs ``offset_m + scale_m *
    (y + noise / strength_m)``, their noise partly shared. Multi-label: y (n, L) 0/1 with label
    shares from 5% to 40%, and M members' logits ``strength_m * (2y - 1) + noise - 1``."""
    T, M = len(names), len(strengths)
    offsets = np.zeros(M) if offsets is None else np.asarray(offsets)
    scales = np.ones(M) if scales is None else np.asarray(scales)
    shared = rng.normal(size=(n, T))
    if task == "regression":
        y = rng.normal(size=(n, T))
    else:
        y = (rng.random((n, T)) < np.linspace(0.05, 0.4, T)).astype(np.float64)
    members = []
    for s, o, c in zip(strengths, offsets, scales):
        noise = np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(size=(n, T))
        out = o + c * (y + noise / s) if task == "regression" else s * (2 * y - 1) + noise - 1
        members.append(out.astype(np.float32))
    return members, y


def make_value_members(root: Path, task: str, *, valid_rows: int, test_rows: int, models: int, targets: int,
                       seed: int = 0):
    """Fake regression or multi-label model folders and data files under ``root``, every member's
    outputs cached on both splits, as :func:`make_members` does for classifiers.

    Returns (members {name: folder}, data {split: path}, cache_dir, names, truth {split: y})."""
    rng = np.random.default_rng(seed)
    names = [f"t{j}" for j in range(targets)]
    strengths = np.linspace(2.0, 0.8, models)
    valid, yv = draw_values(task, valid_rows, names, strengths, rng)
    test, yt = draw_values(task, test_rows, names, strengths, rng)
    data = write_value_files(root, task, names, yv, test_rows)
    cache_dir = root / ".ensemble" / "cache"
    members = {}
    problem = "regression" if task == "regression" else "multi_label_classification"
    for m in range(models):
        members[f"m{m}"] = cache_fake_model(root / "models" / f"m{m}", f"m{m}", names, {"problem_type": problem},
                                            {"valid": valid[m], "test": test[m]}, data, cache_dir, rng,
                                            label={"valid": names})
    return members, data, cache_dir, names, {"valid": yv, "test": yt}


def write_value_files(root: Path, task: str, columns, yv: np.ndarray, test_rows: int) -> dict:
    """``root/data/valid.csv`` (ids, the text "x", the truth ``yv`` under ``columns``) and an
    unlabelled ``test.csv`` of ``test_rows`` rows: {split: path}."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    data = {"valid": root / "data" / "valid.csv", "test": root / "data" / "test.csv"}
    frame = pd.DataFrame({"id": [f"v{i}" for i in range(len(yv))], "text": "x"})
    for j, c in enumerate(columns):
        frame[c] = yv[:, j] if task == "regression" else yv[:, j].astype(int)
    frame.to_csv(data["valid"], index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(test_rows)], "text": "x"}).to_csv(data["test"], index=False)
    return data


def cache_fake_model(folder: Path, name: str, labels, config: dict, outputs: dict, data: dict, cache_dir: Path, rng,
                     label: dict | None = None) -> Path:
    """A fake model folder (config with ``labels`` as id2label and ``config``'s keys, a head in
    safetensors, a vocabulary) and its ``outputs`` {split: (n, C)} cached as predict caches them."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["BertForSequenceClassification"], "model_type": "bert", **config,
        "id2label": {str(i): c for i, c in enumerate(labels)}, "label2id": {c: i for i, c in enumerate(labels)}}))
    save_file({"classifier.weight": rng.normal(size=(len(labels), 4)).astype(np.float32),
               "classifier.bias": np.zeros(len(labels), dtype=np.float32)}, folder / "model.safetensors")
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nx\n")
    cache_outputs(folder, name, labels, outputs, data, cache_dir, label)
    return folder


def cache_outputs(folder: Path, name: str, labels, outputs: dict, data: dict, cache_dir: Path,
                  label: dict | None = None) -> None:
    """A model folder's ``outputs`` {split: (n, C)} on the files ``data`` {split: path} put in the
    cache as ``ensemble predict`` puts them."""
    from ensemble.core.outputs import Logits
    from ensemble.data.splits import load_split
    from ensemble.inference.cache import OutputCache
    from ensemble.inference.models import ModelRef
    from ensemble.inference.settings import InferenceSettings, recorded_settings

    cache = OutputCache(cache_dir)
    ref = ModelRef.open(folder, name)
    digest = ref.fingerprint(cache.file_digest)
    for split_name, values in outputs.items():
        split = load_split(data[split_name], name=split_name, label=(label or {}).get(split_name))
        lg = Logits(split.ids, values, tuple(labels), name, split_name)
        settings = recorded_settings(ref, InferenceSettings())  # as predict on the CPU records them
        cache.put(cache.make_key({"model": digest, "data": split.digest}), lg,
                  {"model_digest": digest, "data_digest": split.digest, "settings": settings})



def make_task_members(task: str, root: Path, *, valid_rows: int = 240, test_rows: int = 60, models: int = 3,
                      outputs: int = 3, seed: int = 0):
    """Fake members of any registered task (its name), their outputs cached on a labelled
    validation split and a test split, for the task contract (tests/tasks/test_contract.py).

    Returns (members {name: folder}, data {split: path}, cache_dir, columns, names): ``columns``
    as vote and report take them, ``names`` the classes, targets or labels in column order."""
    if task == "classification":
        members, data, cache_dir, labels = make_members(root, valid_rows=valid_rows, test_rows=test_rows,
                                                        models=models, classes=outputs, seed=seed)
        return members, data, cache_dir, {}, list(labels)
    if task in ("regression", "multi_label"):
        members, data, cache_dir, names, _ = make_value_members(root, task, valid_rows=valid_rows, test_rows=test_rows,
                                                                models=models, targets=outputs, seed=seed)
        return members, data, cache_dir, {"label": list(names)}, list(names)
    raise KeyError(f"no synthetic members for task {task!r}: add them to tests/synthetic_members.py")
