"""Greedy soup and --k auto against a plain torch re-implementation of the same procedures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.averaging.build import average_checkpoints
from ensemble.averaging.checkpoints import rank_run
from ensemble.averaging.manifest import MANIFEST_NAME
from ensemble.cli.main import main
from ensemble.core.errors import EnsembleError


@pytest.fixture(scope="module")
def holdout(runs, tmp_path_factory):
    path = tmp_path_factory.mktemp("holdout") / "valid.csv"
    pd.DataFrame({"id": range(len(runs.valid_texts)), "text": runs.valid_texts,
                  "label": runs.valid_labels}).to_csv(path, index=False)
    return path


class Reference:
    """Averages state dicts with torch and scores them with the model's own forward pass."""

    def __init__(self, runs):
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.ranked = rank_run(runs.tok).ranked
        self.states = [load_file(str(c.path / "model.safetensors")) for c in self.ranked]
        self.model = AutoModelForSequenceClassification.from_pretrained(self.ranked[0].path).eval()
        tok = AutoTokenizer.from_pretrained(self.ranked[0].path)
        self.enc = tok(runs.valid_texts, padding=True, return_tensors="pt")
        label2id = self.model.config.label2id
        self.y = torch.tensor([label2id[v] for v in runs.valid_labels])

    def average(self, idx):
        return {k: sum(self.states[i][k].double() for i in idx) / len(idx) for k in self.states[0]}

    def accuracy(self, idx) -> float:
        import torch

        self.model.load_state_dict({k: v.float() for k, v in self.average(idx).items()}, strict=False)
        with torch.no_grad():
            pred = self.model(**self.enc).logits.argmax(-1)
        return float((pred == self.y).double().mean())


@pytest.fixture(scope="module")
def reference(runs):
    return Reference(runs)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_greedy_soup_matches_reference(runs, holdout, reference, tmp_path):
    out = average_checkpoints(runs.tok, method="greedy", holdout=holdout, out=tmp_path / "soup", progress=False)
    # reference: metric order, join when the held-out accuracy does not drop
    soup, best, trials = [0], reference.accuracy([0]), []
    trials.append(best)
    for i in range(1, len(reference.ranked)):
        acc = reference.accuracy(soup + [i])
        trials.append(acc)
        if acc >= best:
            soup, best = soup + [i], acc
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["method"] == "greedy" and manifest["selected_on_holdout"] is True
    assert [c["step"] for c in manifest["checkpoints"]] == [reference.ranked[i].step for i in soup]
    assert [t["holdout_accuracy"] for t in manifest["search"]] == pytest.approx(trials)
    assert [t["accepted"] for t in manifest["search"]] == [i in soup for i in range(len(reference.ranked))]
    assert manifest["holdout"]["rows"] == len(runs.valid_texts) and manifest["holdout"]["score"] == pytest.approx(best)
    assert len(manifest["holdout"]["data_digest"]) == 64
    got, want = _weights(out), reference.average(soup)
    for k in want:
        np.testing.assert_allclose(got[k].double().numpy(), want[k].numpy(), atol=1e-6)


def test_k_auto_and_k_list_pick_the_best_top_k(runs, holdout, reference, tmp_path):
    scores = {k: reference.accuracy(list(range(k))) for k in range(1, len(reference.ranked) + 1)}
    best_k = max(scores, key=lambda k: (scores[k], k))  # ties: the larger K
    out = average_checkpoints(runs.tok, k="auto", holdout=holdout, out=tmp_path / "auto", progress=False)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["k"] == best_k and manifest["method"] == "uniform" and manifest["selected_on_holdout"]
    assert {t["k"]: t["holdout_accuracy"] for t in manifest["search"]} == pytest.approx(scores)

    out = average_checkpoints(runs.tok, k=(2, 3), holdout=holdout, out=tmp_path / "list", progress=False)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert [t["k"] for t in manifest["search"]] == [2, 3]
    assert manifest["k"] == max((2, 3), key=lambda k: (scores[k], k))


def test_plain_k_records_no_holdout(runs, tmp_path):
    manifest = json.loads((average_checkpoints(runs.tok, k=2, out=tmp_path / "a", progress=False)
                           / MANIFEST_NAME).read_text())
    assert manifest["selected_on_holdout"] is False and manifest["holdout"] is None


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "greedy"}, r"method=greedy needs holdout"),  # the library names its keywords
    ({"k": "auto"}, r"k=auto needs holdout"),
    ({"k": 2, "holdout": "HOLDOUT"}, r"holdout is used only by method=greedy and k=auto"),
    ({"k": "2,99", "holdout": "HOLDOUT"}, r"k=99 but only 6 checkpoints have the metric"),
    ({"k": "two"}, r"k must be a number, 'auto' or a list like 2,3,4"),
    ({"method": "soup"}, r"method must be one of uniform, greedy; got 'soup'"),
])
def test_bad_search_arguments(runs, holdout, tmp_path, kwargs, message):
    kwargs = {k: (holdout if v == "HOLDOUT" else v) for k, v in kwargs.items()}
    with pytest.raises(EnsembleError, match=message):
        average_checkpoints(runs.tok, out=tmp_path / "x", progress=False, **kwargs)
    assert not (tmp_path / "x").exists()


def test_cli_greedy_and_unlabelled_holdout(runs, holdout, tmp_path):
    out = tmp_path / "soup"
    result = CliRunner().invoke(main, ["avg-ckpt", str(runs.tok), "--method", "greedy", "--holdout", str(holdout),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out) and "greedy soup:" in result.stdout
    unlabelled = tmp_path / "test.csv"
    pd.read_csv(holdout).drop(columns="label").to_csv(unlabelled, index=False)
    bad = CliRunner().invoke(main, ["avg-ckpt", str(runs.tok), "--k", "auto", "--holdout", str(unlabelled),
                                    "--out", str(tmp_path / "y")])
    assert bad.exit_code == 1 and "test.csv: no label column 'label'" in bad.stderr
    assert bad.stderr.count("\n") == 1 and not (tmp_path / "y").exists()
