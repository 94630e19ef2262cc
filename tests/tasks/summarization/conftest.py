"""Two tiny BARTs trained with the real ``Seq2SeqTrainer`` on a dialogue task, and their
generations over a labelled validation file and a test file, predicted once for the package's
tests."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main

NAMES = ["철수", "영희", "민수", "지영", "현우", "수진", "태민", "하늘"]
PLACES = ["시장", "학교", "공원", "병원", "식당", "도서관"]
ITEMS = ["사과", "책", "우산", "빵", "커피", "신발"]


def dialogue_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """(dialogue, summary) pairs: who asks whom to go where and buy what."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.sample(NAMES, 2)
        p, it = rng.choice(PLACES), rng.choice(ITEMS)
        rows.append((f"#Person1#: {b}야 {p}에 가서 {it} 사자\n#Person2#: 좋아 {a}야 같이 가자",
                     f"{a}와 {b}는 {p}에서 {it}를 산다"))
    return rows


@dataclass
class Summaries:
    root: Path
    models: dict
    data: dict
    columns: dict
    cache_dir: Path
    references: list


@pytest.fixture(scope="session")
def summaries(tmp_path_factory) -> Summaries:
    from tests.zoo import train_seq2seq

    root = tmp_path_factory.mktemp("summaries")
    train = dialogue_rows(200, 0)
    models = {}
    for seed in (0, 1):
        trainer = train_seq2seq(root / f"bart{seed}", [d for d, _ in train], [s for _, s in train], steps=10, epochs=3,
                                seed=seed)
        models[f"bart{seed}"] = Path(trainer.args.output_dir) / "checkpoint-39"
    valid, test = dialogue_rows(40, 1), dialogue_rows(12, 2)
    data = {"valid": root / "valid.csv", "test": root / "test.csv"}
    pd.DataFrame({"fname": [f"v{i}" for i in range(len(valid))], "dialogue": [d for d, _ in valid],
                  "summary": [s for _, s in valid]}).to_csv(data["valid"], index=False)
    pd.DataFrame({"fname": [f"t{i}" for i in range(len(test))], "dialogue": [d for d, _ in test]}).to_csv(
        data["test"], index=False)
    columns = {"id": "fname", "text": "dialogue", "label": "summary", "quoting": "csv", "label_if_present": True}
    cache_dir = root / "cache"
    ran = CliRunner().invoke(main, ["predict", *cli_args(models, data, cache_dir), "--device=cpu"],
                             catch_exceptions=False)
    assert ran.exit_code == 0, ran.output[-2000:]
    return Summaries(root, models, data, columns, cache_dir, [s for _, s in valid])


def cli_args(models, data, cache_dir, **extra) -> list[str]:
    """The arguments every command of these tests takes."""
    return [*[f"--model={n}={p}" for n, p in models.items()], *[f"--data={k}={v}" for k, v in data.items()],
            "--id=fname", "--text=dialogue", "--label=summary", "--quoting=csv", f"--cache-dir={cache_dir}",
            "--batch-size=8", *[f"--{k.replace('_', '-')}={v}" for k, v in extra.items()]]
