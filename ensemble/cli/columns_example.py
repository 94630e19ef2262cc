"""Tiny real ``Trainer`` runs of regression and multi-label heads, and the examples that
``ensemble example --task regression`` / ``--task multi_label`` write with them.

The regression example is a sentence-pair similarity task with two targets (a score and its
confidence) built from word overlap; the multi-label example tags texts with any of four labels
by the words they hold. Both are small enough to train in well under a minute on a CPU.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ensemble.cli.example import make_tokenizer, new_example_folder, threads_for, write_vocab

log = logging.getLogger(__name__)

__all__ = ["train_value_run", "make_value_example", "make_regression_example", "make_multilabel_example", "pair_task",
           "tag_task"]

_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             max_position_embeddings=128)


def _metrics(problem_type: str):
    def compute(pred):
        p = np.asarray(pred.predictions, dtype=np.float64)
        y = np.asarray(pred.label_ids, dtype=np.float64)
        if problem_type == "regression":
            return {"mse": float(np.mean((p.reshape(y.shape) - y) ** 2))}
        d = (p >= 0).astype(np.float64)
        tp, fp, fn = (d * y).sum(), (d * (1 - y)).sum(), ((1 - d) * y).sum()
        return {"f1_micro": float(2 * tp / max(2 * tp + fp + fn, 1.0))}
    return compute


def _rows(tokenizer, texts: Sequence[Sequence[str]], targets: np.ndarray, max_length: int):
    enc = tokenizer(*[list(t) for t in texts], truncation=True, max_length=max_length)
    return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
             **({"token_type_ids": enc["token_type_ids"][i]} if "token_type_ids" in enc else {}),
             "labels": [float(v) for v in targets[i]]} for i in range(len(targets))]


def train_value_run(out_dir: str | os.PathLike, train_texts: Sequence[Sequence[str]], train_targets, *,
                    problem_type: str, names: Sequence[str] | None, valid_texts: Sequence[Sequence[str]],
                    valid_targets, vocab_texts: Sequence[str], epochs: float = 4, steps: int = 10,
                    batch_size: int = 16, learning_rate: float = 3e-3, seed: int = 0, max_length: int = 64,
                    callbacks: Sequence = ()):
    """A tiny BERT with a regression (``problem_type="regression"``) or multi-label
    (``"multi_label_classification"``) head of ``len(names)`` outputs, trained with the real
    ``Trainer`` on ``train_texts`` (one list of texts, or two for sentence pairs) and
    ``train_targets`` (n, T), evaluated and saved every ``steps`` steps. ``names``: the outputs'
    ``id2label`` (None: transformers' LABEL_0...). Returns the ``Trainer``."""
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    out_dir = Path(out_dir)
    y, yv = np.asarray(train_targets, dtype=np.float64), np.asarray(valid_targets, dtype=np.float64)
    tokenizer = make_tokenizer(write_vocab(vocab_texts, out_dir.parent / f".{out_dir.name}-vocab.txt"))
    labels = {} if names is None else {"id2label": dict(enumerate(names)),
                                       "label2id": {n: i for i, n in enumerate(names)}}
    config = BertConfig(vocab_size=len(tokenizer), num_labels=y.shape[1], problem_type=problem_type, **labels,
                        **_TINY)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    metric = "mse" if problem_type == "regression" else "f1_micro"
    args = TrainingArguments(output_dir=str(out_dir), per_device_train_batch_size=batch_size,
                             per_device_eval_batch_size=64, num_train_epochs=epochs, learning_rate=learning_rate,
                             eval_strategy="steps", save_strategy="steps", logging_strategy="steps", eval_steps=steps,
                             save_steps=steps, logging_steps=steps, metric_for_best_model=metric,
                             greater_is_better=problem_type != "regression", report_to="none", use_cpu=True,
                             disable_tqdm=True, seed=seed, data_seed=seed)
    trainer = Trainer(model=model, args=args, train_dataset=_rows(tokenizer, train_texts, y, max_length),
                      eval_dataset=_rows(tokenizer, valid_texts, yv, max_length),
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=_metrics(problem_type),
                      processing_class=tokenizer, callbacks=list(callbacks))
    trainer.remove_callback(PrinterCallback)
    with threads_for(trainer.model):
        trainer.train()
    (out_dir.parent / f".{out_dir.name}-vocab.txt").unlink(missing_ok=True)
    return trainer


# ---------------------------------------------------------------------- the examples' data

_FILLER = ("the a one this that my your our old new big small red blue green early late near far with from "
           "about over under").split()
_LEVELS = ("none", "few", "some", "many", "most", "all")  # a sentence's level: 0 to 5


def pair_task(n: int, *, seed: int = 0):
    """Sentence pairs and two targets: ``similarity`` (0-5: the mean of the two sentences'
    levels, each said by one word of :data:`_LEVELS`, plus noise) and ``agreement`` (0-1: one
    minus the gap between the levels over 5, plus noise)."""
    rng = np.random.default_rng(seed)
    a, b, y = [], [], []
    for _ in range(n):
        la, lb = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        for level, out in ((la, a), (lb, b)):
            words = list(rng.choice(_FILLER, size=4, replace=False)) + [_LEVELS[level]]
            rng.shuffle(words)
            out.append(" ".join(words))
        sim = float(np.clip((la + lb) / 2 + rng.normal(0, 0.3), 0, 5))
        agree = float(np.clip(1 - abs(la - lb) / 5 + rng.normal(0, 0.05), 0, 1))
        y.append([round(sim, 2), round(agree, 3)])
    return (a, b), np.asarray(y)


TAGS = ("weather", "nature", "animal", "home")
_TAG_WORDS = {"weather": ("sun", "rain", "snow"), "nature": ("river", "tree", "hill"),
              "animal": ("bird", "wolf", "fish"), "home": ("door", "roof", "bread")}


def tag_task(n: int, *, seed: int = 0):
    """Texts of 5 words and a 0/1 column per tag of :data:`TAGS`: a tag holds when one of its
    words is in the text (each tag in about 30% of the rows; 3% of the cells flipped)."""
    rng = np.random.default_rng(seed)
    texts, y = [], []
    for _ in range(n):
        row = [float(rng.random() < 0.3) for _ in TAGS]
        words = [str(rng.choice(_TAG_WORDS[t])) for t, on in zip(TAGS, row) if on]
        words += list(rng.choice(_FILLER, size=5 - len(words), replace=False))
        rng.shuffle(words)
        row = [1.0 - v if rng.random() < 0.03 else v for v in row]
        texts.append(" ".join(words))
        y.append(row)
    return (texts,), np.asarray(y)


_REGRESSION_PROJECT = """\
# Made by `ensemble example --task regression`: sentence-pair regressors with two targets.
[data]
task = "regression"
valid = "data/valid.csv"
test = "data/test.csv"
sample_submission = "data/sample_submission.csv"
id = "id"
text = ["sentence1", "sentence2"]
label = ["similarity", "agreement"]

# Trainer runs that `ensemble run` averages into weights/<name>-top<k> (best k by eval_loss)
[runs]
sts-a = { path = "runs/sts-a", k = 2, metric = "loss" }
# its head does not name its targets (id2label LABEL_0, LABEL_1): say which column each output is
sts-b = { path = "runs/sts-b", k = 2, metric = "loss", outputs = ["similarity", "agreement"] }
sts-c = { path = "runs/sts-c", k = 2, metric = "loss" }   # its targets in another order

[vote]
weights = "auto"   # a fitted method only when its cross-validated gain over uniform is sure
"""

_MULTI_LABEL_PROJECT = """\
# Made by `ensemble example --task multi_label`: multi-label taggers (one 0/1 column per label).
[data]
task = "multi_label"
valid = "data/valid.csv"
test = "data/test.csv"
sample_submission = "data/sample_submission.csv"
id = "id"
text = "text"
label = ["weather", "nature", "animal", "home"]

[runs]
tag-a = { path = "runs/tag-a", k = 2, metric = "loss" }
tag-b = { path = "runs/tag-b", k = 2, metric = "loss" }
tag-c = { path = "runs/tag-c", k = 2, metric = "loss" }   # its labels in another order

[vote]
weights = "auto"
threshold = "global"   # the decision threshold, fitted inside every cross-validation fold
"""


def _write(path: Path, header, rows) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def make_regression_example(folder: str | os.PathLike, *, seed: int = 0, progress: bool = False,
                            folds: int | None = None) -> Path:
    """``ensemble example --task regression``: sentence-pair regressors with two targets."""
    return make_value_example(folder, regression=True, seed=seed, progress=progress, folds=folds)


def make_multilabel_example(folder: str | os.PathLike, *, seed: int = 0, progress: bool = False,
                            folds: int | None = None) -> Path:
    """``ensemble example --task multi_label``: taggers with four labels."""
    return make_value_example(folder, regression=False, seed=seed, progress=progress, folds=folds)


def make_value_example(folder: str | os.PathLike, *, regression: bool, seed: int = 0, progress: bool = False,
                       folds: int | None = None) -> Path:
    """Write the regression (``regression``) or multi-label example: data, three tiny Trainer runs
    (one whose head does not name its outputs or lists them in another order) and ``ensemble.toml``."""
    from tqdm.auto import tqdm

    folder, data = new_example_folder(folder, folds, "regression" if regression else "multi_label")
    make = pair_task if regression else tag_task
    names = ["similarity", "agreement"] if regression else list(TAGS)
    text_cols = ["sentence1", "sentence2"] if regression else ["text"]
    (train, yt), (valid, yv), (test, _) = make(400, seed=seed), make(200, seed=seed + 1), make(150, seed=seed + 2)
    fmt = (lambda v: f"{v:g}") if regression else (lambda v: str(int(v)))
    _write(data / "train.csv", ["id", *text_cols, *names],
           [(f"tr{i}", *[t[i] for t in train], *map(fmt, yt[i])) for i in range(len(yt))])
    _write(data / "valid.csv", ["id", *text_cols, *names],
           [(f"va{i}", *[t[i] for t in valid], *map(fmt, yv[i])) for i in range(len(yv))])
    _write(data / "test.csv", ["id", *text_cols], [(f"te{i}", *[t[i] for t in test]) for i in range(len(test[0]))])
    _write(data / "sample_submission.csv", ["id", *names],
           [(f"te{i}", *["0"] * len(names)) for i in range(len(test[0]))])
    vocab = [w for t in train for w in t]
    prefix = "sts" if regression else "tag"
    problem = "regression" if regression else "multi_label_classification"
    runs = [("a", names, seed), ("b", None if regression else names, seed + 1), ("c", names[::-1], seed + 2)]
    with tqdm(total=len(runs), desc="training", unit="run", disable=not progress, leave=False) as bar:
        for letter, head, s in runs:
            order = [names.index(n) for n in (head or names)]
            log.info("training runs/%s-%s", prefix, letter)
            train_value_run(folder / "runs" / f"{prefix}-{letter}", train, yt[:, order], problem_type=problem,
                            names=head, valid_texts=valid, valid_targets=yv[:, order], vocab_texts=vocab, seed=s,
                            epochs=8, steps=25, learning_rate=4e-3 if letter != "b" else 2e-3)
            bar.update(1)
    (folder / "ensemble.toml").write_text(_REGRESSION_PROJECT if regression else _MULTI_LABEL_PROJECT, encoding="utf-8")
    log.info("example written (data, three Trainer runs, ensemble.toml); next: cd into it and ensemble run")
    return folder
