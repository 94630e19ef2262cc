"""Session fixtures: tiny BERT runs trained with the real Trainer on real Korean comments.

Built once per test session (about 15 s on 2 CPU cores). Tests must not modify them: copy a run
(``copy_run``) before changing files in it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The slice of real Korean comments the fixtures train on ships with the tests (SOURCE.md and the
# CC BY-SA 4.0 licence beside it): the suite runs from a clone alone.
DATA = Path(__file__).resolve().parent / "data" / "korean-hate-speech"
SAMPLE = DATA / "train-sample.tsv"


def require(condition: bool, why: str) -> None:
    """Skip a test whose requirement is missing, except under CI (``CI`` set), where a skipped
    test would pass for a run one: there it fails, naming what is missing."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (tests are never skipped under CI)", pytrace=False)
    pytest.skip(why)


@dataclass(frozen=True)
class Runs:
    base: Path       # base model folder: config, weights, tokenizer
    tok: Path        # run whose checkpoints hold the tokenizer; eval/save every 3 of 18 steps
    notok: Path      # run without tokenizer files; per epoch, save_total_limit=3, only eval_f1
    valid_texts: list
    valid_labels: list


def load_korean(n_train: int = 192, n_valid: int = 64):
    import pandas as pd

    require(SAMPLE.is_file(), f"{SAMPLE} not found: it ships with the repository; restore it with git checkout")
    df = pd.read_csv(SAMPLE, sep="\t")
    if n_train + n_valid > len(df):
        raise ValueError(f"{SAMPLE} has {len(df)} rows; asked for {n_train + n_valid}")
    df = df.iloc[:n_train + n_valid]  # the rows train.tsv.sample(n=n_train + n_valid, random_state=0) picks
    texts, labels = df["comments"].tolist(), df["hate"].tolist()
    return (texts[:n_train], labels[:n_train]), (texts[n_train:], labels[n_train:])


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Runs:
    from ensemble.cli.example import make_base_model, train_run

    root = tmp_path_factory.mktemp("runs")
    train, valid = load_korean()
    make_base_model(root / "base", train[0] + valid[0], sorted(set(train[1])), seed=0)
    # 18 steps, evaluated and saved every 3: transformers 4.x evaluates only on the schedule, so
    # the schedule must divide the run for every checkpoint to have metrics in both versions.
    train_run(root / "tok", root / "base", train, valid, epochs=3, steps=3, seed=1)
    train_run(root / "notok", root / "base", train, valid, epochs=5, strategy="epoch", seed=2,
              save_tokenizer=False, save_total_limit=3, metrics=("f1",), metric_for_best_model="f1",
              load_best_model_at_end=True)
    return Runs(root / "base", root / "tok", root / "notok", valid[0], valid[1])


DROP = object()


def edit_config(checkpoint: Path, **changes) -> None:
    """Rewrite a checkpoint's config.json with ``changes``; a value of ``DROP`` removes the key."""
    path = checkpoint / "config.json"
    cfg = json.loads(path.read_text())
    for key, value in changes.items():
        if value is DROP:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    path.write_text(json.dumps(cfg))


@pytest.fixture
def copy_run(tmp_path):
    """Copy a fixture run into this test's folder, so the test may change its files."""

    def copy(src: Path, name: str | None = None) -> Path:
        dst = tmp_path / (name or src.name)
        shutil.copytree(src, dst)
        return dst

    return copy


def run_sweep(out_dir: Path, base: Path, train, valid, *, n_trials: int = 4, epochs: float = 2, hp_name=None):
    """A real ``Trainer.hyperparameter_search`` (Optuna) over the tiny base model, evaluated and
    saved every 3 steps: ``out_dir/run-<n>/checkpoint-N``. Returns the ``BestRun``."""
    from ensemble.cli.example import train_sweep

    return train_sweep(out_dir, base, train, valid, n_trials=n_trials, epochs=epochs, steps=3, hp_name=hp_name)


@dataclass(frozen=True)
class SweepRun:
    folder: Path
    best_run: object
    valid_texts: list
    valid_labels: list


@pytest.fixture(scope="session")
def sweep(runs, tmp_path_factory) -> SweepRun:
    """4 Optuna trials of 2 epochs (12 steps, 4 checkpoints each) over the runs fixture's base model."""
    root = tmp_path_factory.mktemp("sweep")
    train, valid = load_korean()
    best = run_sweep(root / "hp", runs.base, train, valid)
    return SweepRun(root / "hp", best, valid[0], valid[1])
