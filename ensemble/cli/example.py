"""Tiny BERT classifiers trained with the real ``Trainer``, made without any download.

Used by ``ensemble example`` (a self-contained demo) and by the test suite, so that both work on
checkpoint folders exactly like the ones users have: ``checkpoint-N/`` with ``config.json``,
``model.safetensors``, ``trainer_state.json`` and the optimizer / scheduler / RNG pickles.

The vocabulary is a character-level WordPiece vocabulary written from the texts themselves,
which suits Korean (and any script) without a trained tokenizer model.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import logging
import math
import os
import random
from pathlib import Path
from typing import Callable, Sequence

log = logging.getLogger(__name__)

__all__ = ['write_vocab', 'make_tokenizer', 'make_base_model', 'train_run', 'synthetic_task', 'make_example',
           'threads_for', 'new_example_folder']

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_vocab(texts: Sequence[str], path: str | os.PathLike, size: int = 600) -> Path:
    """Write a WordPiece ``vocab.txt``: special tokens, then frequent characters as word starts
    and as ``##`` continuations."""
    counts = collections.Counter(ch for t in texts for ch in t if not ch.isspace())
    chars = [c for c, _ in counts.most_common(max(1, (size - len(SPECIAL_TOKENS)) // 2))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(SPECIAL_TOKENS + chars + ["##" + c for c in chars]) + "\n", encoding="utf-8")
    return path


def make_tokenizer(vocab: str | os.PathLike):
    """A ``BertTokenizer`` over a ``vocab.txt`` (no lower-casing, Hangul kept whole).

    transformers 5 takes the file as ``vocab=`` and silently ignores ``vocab_file=``, which
    4.x expects: both are handled, and the loaded vocabulary is checked against the file.
    """
    import inspect

    from transformers import BertTokenizer

    key = "vocab_file" if "vocab_file" in inspect.signature(BertTokenizer.__init__).parameters else "vocab"
    tokenizer = BertTokenizer(**{key: str(vocab)}, do_lower_case=False, tokenize_chinese_chars=False)
    expected = len(Path(vocab).read_text(encoding="utf-8").splitlines())
    if len(tokenizer) != expected:
        raise RuntimeError(f"{vocab}: tokenizer loaded {len(tokenizer)} of {expected} tokens")
    return tokenizer


def make_base_model(
    folder: str | os.PathLike,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    max_position_embeddings: int = 128,
    seed: int = 0,
):
    """A randomly initialised ``BertForSequenceClassification`` and its tokenizer, saved in
    ``folder`` the way a downloaded base model is. Returns ``(model, tokenizer)``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = Path(folder)
    vocab = write_vocab(texts, folder / "vocab.txt")
    tokenizer = make_tokenizer(vocab)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=max_position_embeddings,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


def _encode(tokenizer, texts, labels, label2id, max_length, pad):
    enc = tokenizer(list(texts), truncation=True, max_length=max_length,
                    padding="max_length" if pad else False)
    return [
        {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": label2id[y]}
        for i, y in enumerate(labels)
    ]


def _compute_metrics(names: Sequence[str]) -> Callable:
    def compute(pred):
        import numpy as np
        from sklearn.metrics import accuracy_score, f1_score

        y_pred = np.asarray(pred.predictions).argmax(-1)
        out = {}
        if "accuracy" in names:
            out["accuracy"] = float(accuracy_score(pred.label_ids, y_pred))
        if "f1" in names:
            out["f1"] = float(f1_score(pred.label_ids, y_pred, average="macro"))
        return out

    return compute


def train_run(
    out_dir: str | os.PathLike,
    base: str | os.PathLike,
    train: tuple[Sequence[str], Sequence[str]],
    valid: tuple[Sequence[str], Sequence[str]],
    *,
    epochs: float = 3,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    strategy: str = "steps",
    steps: int = 4,
    save_tokenizer: bool = True,
    save_total_limit: int | None = None,
    metrics: Sequence[str] = ("accuracy",),
    metric_for_best_model: str | None = None,
    load_best_model_at_end: bool = False,
    max_length: int = 64,
    seed: int = 0,
    callbacks: Sequence = (),
    trust_remote_code: bool = False,
):
    """Fine-tune the base model with ``Trainer``, evaluating and saving every ``steps`` steps
    (``strategy="steps"``) or every epoch (``strategy="epoch"``).

    ``train`` and ``valid`` are ``(texts, label names)``. With ``save_tokenizer=False`` the texts
    are padded to ``max_length`` up front and the ``Trainer`` gets neither a ``processing_class``
    nor a tokenizer in its collator, so the checkpoints hold no tokenizer files: the usual
    notebook. ``trust_remote_code``: the base model's own code (``auto_map``) is the model
    trained. Returns the ``Trainer``.
    """
    trainer = _trainer(out_dir, base, train, valid, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                       strategy=strategy, steps=steps, save_tokenizer=save_tokenizer, save_total_limit=save_total_limit,
                       metrics=metrics, metric_for_best_model=metric_for_best_model,
                       load_best_model_at_end=load_best_model_at_end, max_length=max_length, seed=seed, data_seed=seed,
                       callbacks=callbacks, trust_remote_code=trust_remote_code)
    with threads_for(trainer.model):
        trainer.train()
    return trainer


# Below this many parameters, one thread trains fastest: measured on the example's runs (about
# 40k parameters) on 2 cores, 5.9 s with 1 thread against 6.0 s with 2 when idle, and 9.1 s
# against 30.0 s while two other processes kept the cores busy (the threads spin-wait for each
# other). Models of real size keep torch's default.
_TINY_PARAMETERS = 5_000_000


def new_example_folder(folder, folds: int | None = None, task: str | None = None) -> tuple[Path, Path]:
    """An example's folder (new, or empty) and its ``data/`` folder, made; ``--folds`` refused
    for the example of ``task`` (only the classification example has a K-fold form); transformers'
    progress bars ("Writing model shards" at every checkpoint) turned off."""
    import transformers

    from ensemble.core.errors import EnsembleError

    if folds is not None and task is not None:
        raise EnsembleError(f"--folds is for the classification example; drop it with --task {task}")
    transformers.logging.disable_progress_bar()
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise EnsembleError(f"{folder}: exists and is not empty; pass a new folder")
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    return folder, data


@contextlib.contextmanager
def threads_for(model):
    """One torch thread while training a tiny model (``_TINY_PARAMETERS``), then the previous count."""
    import torch

    if model is None or sum(p.numel() for p in model.parameters()) >= _TINY_PARAMETERS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _trainer(out_dir, base, train, valid, *, epochs, batch_size, learning_rate, strategy, steps, max_length, seed,
             data_seed, save_tokenizer=True, save_total_limit=None, metrics=("accuracy",), metric_for_best_model=None,
             load_best_model_at_end=False, callbacks=(), model_init=False, trust_remote_code=False):
    """The ``Trainer`` of :func:`train_run` and :func:`train_sweep`, not yet trained; with
    ``model_init``, it builds a fresh model from ``base`` for every trial of a search."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, trust_remote_code=trust_remote_code)
    label2id = {k: int(v) for k, v in model.config.label2id.items()}
    pad = not save_tokenizer
    train_ds = _encode(tokenizer, *train, label2id, max_length, pad)
    valid_ds = _encode(tokenizer, *valid, label2id, max_length, pad)
    every = {"eval_steps": steps, "save_steps": steps, "logging_steps": steps} if strategy == "steps" else {}
    args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64,
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        eval_strategy=strategy,
        save_strategy=strategy,
        logging_strategy=strategy,
        save_total_limit=save_total_limit,
        metric_for_best_model=metric_for_best_model,
        load_best_model_at_end=load_best_model_at_end,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=seed,
        data_seed=data_seed,
        **every,
    )
    trainer = Trainer(
        **({"model_init": lambda trial=None: AutoModelForSequenceClassification.from_pretrained(base)}
           if model_init else {"model": model}),
        args=args,
        train_dataset=train_ds,
        eval_dataset=valid_ds,
        data_collator=DataCollatorWithPadding(tokenizer) if save_tokenizer else None,
        compute_metrics=_compute_metrics(metrics),
        processing_class=tokenizer if save_tokenizer else None,
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)  # no log dicts on stdout; they are in trainer_state.json
    return trainer


def train_sweep(
    out_dir: str | os.PathLike,
    base: str | os.PathLike,
    train: tuple[Sequence[str], Sequence[str]],
    valid: tuple[Sequence[str], Sequence[str]],
    *,
    n_trials: int = 4,
    epochs: float = 2,
    steps: int = 3,
    batch_size: int = 32,
    learning_rate: tuple[float, float] = (3e-4, 3e-3),
    max_length: int = 64,
    hp_name: Callable | None = None,
    seed: int = 0,
):
    """A real ``Trainer.hyperparameter_search`` with the Optuna backend (``pip install optuna``)
    over ``base``: each trial samples a learning rate (log-uniform in ``learning_rate``) and a
    seed, evaluates and saves every ``steps`` steps, and writes ``out_dir/run-<trial number>/``
    (``hp_name(trial)`` when given). Returns the ``BestRun``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # the learning rate and seed given here are replaced by each trial's
    trainer = _trainer(out_dir, base, train, valid, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate[0],
                       strategy="steps", steps=steps, max_length=max_length, seed=seed, data_seed=None, model_init=True)

    def hp_space(trial):
        return {"learning_rate": trial.suggest_float("learning_rate", *learning_rate, log=True),
                "seed": trial.suggest_int("seed", 0, 1000)}

    with threads_for(trainer.model):  # the Trainer built one model from model_init already
        return trainer.hyperparameter_search(
            direction="maximize", backend="optuna", hp_space=hp_space, n_trials=n_trials, hp_name=hp_name,
            compute_objective=lambda m: m["eval_accuracy"], sampler=optuna.samplers.TPESampler(seed=seed))


# --------------------------------------------------------------------------- synthetic task

# Korean-looking sentences from templates: a subject, a topic word that carries the class, a
# neutral middle and an ending. Some topic words are shared between classes so that the task is
# not trivially separable, and labels are flipped at a small rate.
_SUBJECTS = ["이 영화", "오늘 경기", "그 배우", "새 앨범", "이번 회차", "그 식당", "이 드라마", "신곡", "감독", "작가"]
_MIDDLES = ["정말", "진짜", "너무", "완전", "생각보다", "역시", "솔직히", "그냥", "오랜만에", "다시 봐도"]
_ENDINGS = ["네요", "다", "어요", "습니다", "음", "ㅋㅋ", "ㅠㅠ", "...", "!", "요"]
_TOPICS = {
    "positive": ["재밌", "좋았", "감동적이", "최고였", "훌륭했", "신선했"],
    "negative": ["지루했", "별로였", "실망스러웠", "아쉬웠", "최악이었", "재미없었"],
    "neutral": ["평범했", "무난했", "그럭저럭이었", "보통이었", "괜찮았"],
    "question": ["언제 나오나", "어디서 보나", "누가 나오나", "몇 시에 하나"],
}


def synthetic_task(n: int, *, seed: int = 0, noise: float = 0.1,
                   priors: Sequence[float] = (0.4, 0.3, 0.2, 0.1)) -> tuple[list[str], list[str]]:
    """``n`` template sentences and their labels (class imbalance ``priors``, label noise)."""
    rng = random.Random(seed)
    classes = list(_TOPICS)
    texts, labels = [], []
    for _ in range(n):
        y = rng.choices(classes, weights=priors)[0]
        topic = rng.choice(_TOPICS[y] + (_TOPICS["neutral"][:1] if y != "neutral" else []))
        texts.append(f"{rng.choice(_SUBJECTS)} {rng.choice(_MIDDLES)} {topic}{rng.choice(_ENDINGS)}")
        labels.append(rng.choice(classes) if rng.random() < noise else y)
    return texts, labels


def synthetic_trials(n: int, trials: int, accuracy: float = 0.8, classes: int = 3, *, seed: int = 0):
    """Logits of ``trials`` sweep trials of equal true quality on ``n`` rows: each trial is right
    on a row with probability ``accuracy``, independently of the others, and otherwise predicts
    a random wrong class. Their validation scores differ only by sampling noise, so the best of
    them on validation is no better than any other on new rows.

    Returns ``(arrays, y)``: a list of ``trials`` float64 arrays of shape (n, classes), and the
    true classes. The predicted class's logit exceeds the others by an exponential margin, so
    the argmax is exactly the class drawn.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    arrays = []
    for _ in range(trials):
        right = rng.random(n) < accuracy
        wrong = (y + rng.integers(1, classes, n)) % classes
        pred = np.where(right, y, wrong)
        z = rng.normal(0.0, 1.0, (n, classes))
        rows = np.arange(n)
        z[rows, pred] = -np.inf
        z[rows, pred] = z.max(axis=1) + rng.exponential(1.5, n)
        arrays.append(z)
    return arrays, y


def _write_csv(path: Path, header: Sequence[str], rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


# the [data] keys both example projects end with (no braces: _FOLDS_PROJECT is a format string)
_DATA_TAIL = """\
sample_submission = "data/sample_submission.csv"
id = "id"
text = "text"
label = "label"
"""

_EXAMPLE_PROJECT = """\
# Made by `ensemble example`: what every ensemble command reads (flags override it).
[data]
valid = "data/valid.csv"
test = "data/test.csv"
""" + _DATA_TAIL + """\

# Trainer runs that `ensemble run` averages into weights/<name>-top<k> (best k by eval_accuracy,
# which the Trainer measured on data/eval.csv: checkpoints never chosen on the rows estimated on)
[runs]
bert-a = { path = "runs/bert-a", k = 3 }
bert-b = { path = "runs/bert-b", k = 3, tokenizer = "base" }   # its checkpoints hold no tokenizer
bert-c = { path = "runs/bert-c", k = 3 }                        # classes in another order

[vote]
weights = "auto"   # a fitted method only when its cross-validated gain over uniform is sure
adjust = "auto"    # class-prior adjustment (none, prior, fit) only when its cross-validated gain is sure
prior = "data/train.csv"   # the target class prior: the training file's label shares
"""


_FOLDS_PROJECT = """\
# Made by `ensemble example --folds {k}`: K-fold members (fold groups), fitted on out-of-fold rows.
[data]
train = "data/train.csv"
folds = "data/folds.csv"   # id,fold: fold model k never saw the rows of fold k (ensemble folds make)
valid = "data/valid.csv"   # an untouched holdout: scored, never fitted on
test = "data/test.csv"
""" + _DATA_TAIL + """\

# Each backbone trained {k} times; `ensemble run` averages each fold's best 2 checkpoints into
# weights/<name>-fold<k>-top2. The refits saw every training row and take their group's place on test.
[runs]
bert-a = {{ path = "runs/bert-a-fold{{fold}}", k = 2 }}
bert-b = {{ path = "runs/bert-b-fold{{fold}}", k = 2 }}
bert-a-full = {{ path = "runs/bert-a-full", k = 2, refit_of = "bert-a" }}
bert-b-full = {{ path = "runs/bert-b-full", k = 2, refit_of = "bert-b" }}

[vote]
weights = "auto"
"""


def _step_progress(bar):
    """A ``TrainerCallback`` that advances ``bar`` by one per optimizer step."""
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            bar.update(1)

    return StepProgress()


def make_example(folder: str | os.PathLike, *, seed: int = 0, progress: bool = False, folds: int | None = None) -> Path:
    """Write a small self-contained example: train/valid/test CSVs, a sample submission, three
    tiny ``Trainer`` runs under ``runs/`` (one whose checkpoints hold no tokenizer, one with the
    classes in another order) and ``ensemble.toml``. Each run is said in the log as it starts;
    ``progress`` shows a bar over every training step of the three (on stderr).

    With ``folds=K``: a K-fold example instead, two backbones trained K times each
    (``runs/bert-a-fold<k>``, fold k's rows held out, as ``data/folds.csv`` assigns them) and once
    on every training row (``runs/bert-a-full``, the refit), with an ``ensemble.toml`` that fits
    on the out-of-fold rows and keeps ``valid.csv`` as an untouched holdout."""
    from tqdm.auto import tqdm

    folder, data = new_example_folder(folder)
    train = synthetic_task(600, seed=seed)
    valid = synthetic_task(200, seed=seed + 1)
    test = synthetic_task(200, seed=seed + 2)
    # what the Trainer evaluates (and ranks the checkpoints) on: rows of its own, never valid.csv,
    # whose rows the headline is estimated on (checkpoints chosen there would make it optimistic)
    evaluation = synthetic_task(150, seed=seed + 3)
    if folds is not None:  # the holdout must be untouched: no text the fold models were trained on
        seen = set(train[0])
        valid = tuple(list(v) for v in zip(*[(t, y) for t, y in zip(*valid) if t not in seen]))
    _write_csv(data / "train.csv", ["id", "text", "label"], [(f"tr{i}", t, y) for i, (t, y) in enumerate(zip(*train))])
    _write_csv(data / "valid.csv", ["id", "text", "label"], [(f"va{i}", t, y) for i, (t, y) in enumerate(zip(*valid))])
    _write_csv(data / "test.csv", ["id", "text"], [(f"te{i}", t) for i, t in enumerate(test[0])])
    if folds is None:
        _write_csv(data / "eval.csv", ["id", "text", "label"],
                   [(f"ev{i}", t, y) for i, (t, y) in enumerate(zip(*evaluation))])
    _write_csv(data / "sample_submission.csv", ["id", "label"], [(f"te{i}", "positive") for i in range(len(test[0]))])
    labels = sorted(set(train[1]))
    if folds is not None:
        return _fold_example(folder, train, valid, labels, folds, seed, progress)
    make_base_model(folder / "base", train[0], labels, seed=seed)
    # bert-c's head lists the classes in another order: voting must align them by name
    make_base_model(folder / "base-c", train[0], labels[::-1], seed=seed + 2)
    runs = [("bert-a", "base", dict(learning_rate=5e-3, seed=seed)),
            ("bert-b", "base", dict(learning_rate=3e-3, seed=seed + 1, save_tokenizer=False)),
            ("bert-c", "base-c", dict(learning_rate=4e-3, seed=seed + 2))]
    epochs, batch_size = 6, 16
    steps = epochs * math.ceil(len(train[0]) / batch_size)  # per run, known before training
    with tqdm(total=steps * len(runs), desc="training", unit="step", disable=not progress, leave=False) as bar:
        for i, (name, base, kw) in enumerate(runs, 1):
            log.info("training runs/%s (%d of %d, %d steps)", name, i, len(runs), steps)
            train_run(folder / "runs" / name, folder / base, train, evaluation, epochs=epochs, steps=15,
                      batch_size=batch_size, callbacks=[_step_progress(bar)], **kw)
    (folder / "ensemble.toml").write_text(_EXAMPLE_PROJECT, encoding="utf-8")
    (folder / "README.txt").write_text(
        "Made by `ensemble example`. Run `ensemble run` here. runs/bert-b's checkpoints hold no tokenizer "
        "(it is in base/); runs/bert-c was trained with the classes in another order. The Trainer evaluated "
        "the checkpoints on data/eval.csv, never on data/valid.csv, where the ensemble is fitted and estimated.\n",
        encoding="utf-8",
    )
    log.info("example written (data, three Trainer runs, ensemble.toml); next: cd into it and ensemble run")
    return folder


def _fold_example(folder: Path, train, valid, labels, k: int, seed: int, progress: bool) -> Path:
    """The K-fold example of :func:`make_example`."""
    import numpy as np
    from tqdm.auto import tqdm

    from ensemble.core.errors import EnsembleError
    from ensemble.data.folds import make_folds

    if k < 2:
        raise EnsembleError(f"--folds {k}: K-fold needs 2 folds or more")
    fold = make_folds(folder / "data" / "train.csv", folder / "data" / "folds.csv", k, seed=seed).fold
    make_base_model(folder / "base", train[0], labels, seed=seed)
    runs = []
    for name, lr, s in (("bert-a", 5e-3, seed), ("bert-b", 3e-3, seed + 1)):
        for i in range(k):
            rows = np.flatnonzero(fold != i), np.flatnonzero(fold == i)
            part = [([train[0][j] for j in r], [train[1][j] for j in r]) for r in rows]
            runs.append((f"{name}-fold{i}", part[0], part[1], dict(learning_rate=lr, seed=s + 10 * i)))
        # the refit is evaluated on its own training rows, never on the holdout (valid.csv): the
        # checkpoints `ensemble run` averages are chosen without looking at it
        runs.append((f"{name}-full", train, train, dict(learning_rate=lr, seed=s)))
    epochs, batch_size = 4, 16
    total = sum(epochs * math.ceil(len(r[1][0]) / batch_size) for r in runs)
    with tqdm(total=total, desc="training", unit="step", disable=not progress, leave=False) as bar:
        for n, (name, tr, ev, kw) in enumerate(runs, 1):
            log.info("training runs/%s (%d of %d)", name, n, len(runs))
            train_run(folder / "runs" / name, folder / "base", tr, ev, epochs=epochs, steps=15, batch_size=batch_size,
                      callbacks=[_step_progress(bar)], **kw)
    (folder / "ensemble.toml").write_text(_FOLDS_PROJECT.format(k=k), encoding="utf-8")
    (folder / "README.txt").write_text(
        f"Made by `ensemble example --folds {k}`. Run `ensemble run` here: weights are fitted on the out-of-fold "
        "rows of data/train.csv, valid.csv is a holdout, and each refit (runs/*-full) replaces its fold group on test.\n",
        encoding="utf-8")
    log.info("K-fold example written (data, folds, fold runs and refits, ensemble.toml); next: cd into it and "
             "ensemble run")
    return folder
