"""`ensemble example --task ner`, then `ensemble run`, as a new user types them: three tiny token
classifiers over two tokenizers (one with its tags in another order) averaged, predicted on
characters, voted and reported, the headline first, the submission in the sample's format, and a
second run up to date. The example's data: template sentences whose entities are where the
templates put them."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from ensemble.cli.entities_example import ner_task
from ensemble.cli.main import main


def test_template_entities_are_where_the_templates_put_them():
    texts, spans = ner_task(50, seed=3)
    assert len(texts) == len(spans) == 50 and any(spans)
    for text, row in zip(texts, spans):
        for a, b, kind in row:
            assert 0 <= a < b <= len(text) and text[a:b] == text[a:b].strip() and kind in ("PS", "LC", "OG", "DT")
    unseen, unseen_spans = ner_task(200, seed=0)
    names = {t[a:b] for t, row in zip(*ner_task(200, seed=0, seen=True)) for a, b, _ in row}
    assert {t[a:b] for t, row in zip(unseen, unseen_spans) for a, b, _ in row} - names  # names training never saw


def test_the_ner_example_runs(tmp_path):
    folder = tmp_path / "ner"
    made = CliRunner().invoke(main, ["example", str(folder), "--task", "ner"])
    assert made.exit_code == 0, made.output
    assert 'task = "entities"' in (folder / "ensemble.toml").read_text()
    config = json.loads(next((folder / "runs" / "tag-reordered").glob("checkpoint-*/config.json")).read_text())
    assert config["id2label"]["1"].startswith("I-")  # its tags in another order
    run = CliRunner().invoke(main, ["run", "--project", str(folder / "ensemble.toml")])
    assert run.exit_code == 0, run.output[-3000:]
    lines = run.stdout.splitlines()
    headline = next(line for line in lines if line.startswith("submission "))
    assert ", f1 " in headline and "on unseen data (cross-validated" in headline
    assert run.stdout.count(headline) == 1
    written = pd.read_csv(folder / "submissions" / json.loads(
        (folder / "submissions" / "latest.json").read_text())["submission"])
    sample = pd.read_csv(folder / "data" / "sample_submission.csv")
    assert list(written.columns) == list(sample.columns) and written["id"].tolist() == sample["id"].tolist()
    test = pd.read_csv(folder / "data" / "test.csv")
    for text, cell in zip(test["text"], written["entities"]):
        for a, b, kind in json.loads(cell):
            assert 0 <= a < b <= len(text) and text[a:b].strip() == text[a:b]
    assert sum(len(json.loads(c)) for c in written["entities"]) > 50  # it finds entities
    again = CliRunner().invoke(main, ["run", "--project", str(folder / "ensemble.toml")])
    assert again.exit_code == 0 and "vote: up to date" in again.output
