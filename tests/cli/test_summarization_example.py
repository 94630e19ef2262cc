"""`ensemble example --task summarization`'s files, as a user finds them: AI Stages' columns, tiny
BART and T5 runs trained with the real Seq2SeqTrainer over two tokenizers, whose checkpoints load
with the Auto classes and generate, and the project file. The example's data: template dialogues
whose summaries name what the dialogue says."""

from __future__ import annotations

import json
import tomllib

import pandas as pd
import pytest

from ensemble.cli.summarization_example import (dialogue_task, make_summarization_example, rouge1,
                                                train_summary_tokenizers)
from ensemble.core.errors import EnsembleError

RUNS = ("bart-chars", "bart-chars-b", "t5-pieces")


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example, built once (three tiny runs, about 20 s on two cores)."""
    return make_summarization_example(tmp_path_factory.mktemp("summarization") / "dialogues")


def _checkpoints(run):
    return sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def test_template_summaries_name_what_the_dialogue_says():
    from ensemble.cli.summarization_example import _SLOTS

    values = [v for pool in _SLOTS.values() for v in pool]
    dialogues, summaries = dialogue_task(80, seed=3)
    assert len(dialogues) == len(summaries) == 80
    for d, s in zip(dialogues, summaries):
        assert d.startswith("#Person1#: ") and "\n#Person2#: " in d and "{" not in d + s
        assert len(d.split()) <= 60 and len(s.split()) <= 16
        named = [v for v in values if v in s]
        assert named and all(v in d for v in named), (d, s)  # the places, things, times and names said
    seen = {w for d in dialogue_task(300, seed=0, seen=True)[0] for w in d.split()}
    assert {w for d in dialogue_task(300, seed=1)[0] for w in d.split()} - seen  # words training never saw


def test_particles_follow_the_last_syllable():
    dialogues, summaries = dialogue_task(300, seed=5)
    text = " ".join(summaries)
    assert "책을" in text or "빵을" in text
    assert "사과를" in text or "우유를" in text
    assert "책를" not in text and "사과을" not in text


def test_tokenizers_decode_what_they_encode():
    texts, summaries = dialogue_task(60, seed=2)
    tokenizers = train_summary_tokenizers([*texts, *summaries])
    chars, pieces = tokenizers["chars"], tokenizers["pieces"]
    assert chars.is_fast and pieces.is_fast and chars.get_vocab() != pieces.get_vocab()
    assert "#Person1#" in chars.get_vocab()
    for tok in (chars, pieces):
        for s in summaries[:10]:
            assert tok.decode(tok(s)["input_ids"], skip_special_tokens=True) == s


def test_rouge1_counts_shared_words():
    assert rouge1(["a b c"], ["a b c"]) == 1.0
    assert rouge1(["x y"], ["a b"]) == 0.0
    assert rouge1(["a a b"], ["a b b"]) == pytest.approx(2 / 3)


def test_the_data_has_ai_stages_columns(example):
    data = example / "data"
    train, valid = pd.read_csv(data / "train.csv"), pd.read_csv(data / "valid.csv")
    test, sample = pd.read_csv(data / "test.csv"), pd.read_csv(data / "sample_submission.csv")
    assert list(train.columns) == list(valid.columns) == ["fname", "dialogue", "summary"]
    assert list(test.columns) == ["fname", "dialogue"] and list(sample.columns) == ["fname", "summary"]
    assert sample["fname"].tolist() == test["fname"].tolist() and valid["fname"].is_unique
    assert valid["dialogue"].str.contains("\n#Person2#: ").all()
    seen = set(" ".join(train["dialogue"]).split())
    assert set(" ".join(valid["dialogue"]).split()) - seen  # places and things the runs never saw


def test_each_run_saves_ranked_checkpoints(example):
    for name in RUNS:
        checkpoints = _checkpoints(example / "runs" / name)
        assert len(checkpoints) >= 2, name
        for ckpt in checkpoints:
            for f in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                      "trainer_state.json"):
                assert (ckpt / f).is_file(), (ckpt, f)
        logged = [h for h in json.loads((checkpoints[-1] / "trainer_state.json").read_text())["log_history"]
                  if "eval_loss" in h]
        assert len(logged) >= 2 and all(0 <= h["eval_rouge1"] <= 1 for h in logged)
        generation = json.loads((checkpoints[-1] / "generation_config.json").read_text())
        assert generation["num_beams"] == 2 and generation["no_repeat_ngram_size"] == 2


def test_checkpoints_load_and_summarize(example):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from ensemble.cli.example import threads_for

    valid = pd.read_csv(example / "data" / "valid.csv")
    vocabs, scores = {}, {}
    for name in RUNS:
        for ckpt in _checkpoints(example / "runs" / name):
            tok = AutoTokenizer.from_pretrained(ckpt)
            model = AutoModelForSeq2SeqLM.from_pretrained(ckpt).eval()
            batch = tok(valid["dialogue"][:16].tolist(), return_tensors="pt", padding=True)
            with torch.no_grad(), threads_for(model):  # one thread: two spin-wait on a busy machine
                out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            texts = tok.batch_decode(out, skip_special_tokens=True)
            assert all(t.strip() for t in texts), (ckpt, texts)
        vocabs[name], scores[name] = tok.get_vocab(), rouge1(texts, valid["summary"][:16].tolist())
    assert vocabs["bart-chars"] == vocabs["bart-chars-b"] != vocabs["t5-pieces"]  # two tokenizers
    assert type(model).__name__.startswith("T5")
    assert min(scores.values()) > 0.4, scores  # they learned the summaries' shape and some of their words


def test_the_project_file(example):
    project = tomllib.loads((example / "ensemble.toml").read_text(encoding="utf-8"))
    assert project["data"]["task"] == "summarization" and project["data"]["id"] == "fname"
    assert (project["data"]["text"], project["data"]["label"]) == ("dialogue", "summary")
    assert set(project["runs"]) == set(RUNS)
    for run in project["runs"].values():
        assert (example / run["path"]).is_dir()
        assert (example / project["data"]["valid"]).is_file()


def test_the_example_wants_a_new_folder(example):
    with pytest.raises(EnsembleError, match="not empty"):
        make_summarization_example(example)
    with pytest.raises(EnsembleError, match="--folds"):
        make_summarization_example(example.parent / "other", folds=5)


def test_ensemble_run_on_the_example(example):
    """``ensemble run`` averages the three runs, predicts, votes by MBR and reports: the submission
    follows the sample (fname,summary), and the report scores every member and rule out of fold."""
    import contextlib

    from click.testing import CliRunner

    from ensemble.cli.main import main

    with contextlib.chdir(example):
        ran = CliRunner().invoke(main, ["run"], catch_exceptions=False)
    assert ran.exit_code == 0, ran.output[-3000:]
    side = json.loads(next((example / "submissions").glob("ensemble-*.csv.json")).read_text(encoding="utf-8"))
    sub = pd.read_csv(example / side["headline"]["submission"] if (example / side["headline"]["submission"]).exists()
                      else example / "submissions" / side["headline"]["submission"], keep_default_na=False)
    sample = pd.read_csv(example / "data" / "sample_submission.csv", keep_default_na=False)
    assert list(sub.columns) == ["fname", "summary"] and sub["fname"].tolist() == sample["fname"].tolist()
    assert (sub["summary"].str.len() > 0).all()
    assert side["task"] == "summarization" and side["auto"]["chosen"] == side["method"]
    assert set(side["weights"]) == set(RUNS)  # [runs] members, each its top-2 average
    page = (example / "report.html").read_text(encoding="utf-8")
    assert "oracle" in page and "uniform" in page
