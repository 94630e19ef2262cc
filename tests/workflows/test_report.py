"""ensemble report and vote --weights auto on cached logits of real tiny models."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.averaging.build import average_checkpoints
from ensemble.cli.main import main
from ensemble.inference.cache import OutputCache
from ensemble.workflows.report import report


@pytest.fixture(scope="module")
def project(runs, tmp_path_factory):
    """Two checkpoints, and a greedy soup chosen on the very validation file of the report."""
    root = tmp_path_factory.mktemp("report")
    shutil.copytree(runs.tok / "checkpoint-18", root / "late")
    shutil.copytree(runs.tok / "checkpoint-6", root / "early")
    pd.DataFrame({"id": [f"v{i}" for i in range(len(runs.valid_texts))], "text": runs.valid_texts,
                  "label": runs.valid_labels}).to_csv(root / "valid.csv", index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(10)], "text": runs.valid_texts[:10]}).to_csv(root / "test.csv", index=False)
    average_checkpoints(runs.tok, method="greedy", holdout=root / "valid.csv", out=root / "soup", progress=False)
    models = {"late": root / "late", "early": root / "early", "soup": root / "soup"}
    args = ["predict", *[x for n, p in models.items() for x in ("--model", f"{n}={p}")],
            "--data", f"valid={root / 'valid.csv'}", "--data", f"test={root / 'test.csv'}", "--cache-dir", str(root / "cache"), "-q"]
    assert CliRunner().invoke(main, args).exit_code == 0
    return root, models


def _cached_probs(root, model):
    cache = OutputCache(root / "cache")
    e = next(e for e in cache.entries() if e.metadata["model"] == model and e.metadata["split"] == "valid")
    lg = cache.get(e.key)
    z = lg.values.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    return lg, p / p.sum(1, keepdims=True)


def test_report_table_against_the_cached_logits(project):
    root, models = project
    rep = report(models, {"valid": root / "valid.csv"}, cache_dir=root / "cache", methods=["acc", "optimize"], repeats=1)
    t = rep.table
    # two fitted members: "best" is estimated, "best3" is not (needs more than 3)
    assert list(t.index) == ["late", "early", "soup", "uniform", "acc", "optimize", "best"]
    labels = pd.read_csv(root / "valid.csv")["label"].tolist()
    preds = {}
    for m in ("late", "early", "soup"):
        lg, p = _cached_probs(root, m)
        y = np.array([lg.labels.index(v) for v in labels])
        preds[m] = np.array(lg.labels)[p.argmax(1)]
        assert t.loc[m, "accuracy"] == pytest.approx(np.mean(p.argmax(1) == y))
        assert t.loc[m, "acc_low"] < t.loc[m, "accuracy"] < t.loc[m, "acc_high"] or t.loc[m, "accuracy"] in (0, 1)
    # the soup was chosen on this validation file: marked and left out of weight fitting
    assert "chosen on this validation split" in t.loc["soup", "note"] and rep.excluded == ["soup"]
    assert set(rep.weights["acc"]) == {"late", "early"}
    assert t.loc["uniform", "cv_accuracy"] == t.loc["uniform", "accuracy"]
    for m in ("acc", "optimize"):
        assert t.loc[m, "gain_low"] <= t.loc[m, "gain"] <= t.loc[m, "gain_high"]
    names = ["late", "early", "soup"]
    dis = np.array([[np.mean(preds[a] != preds[b]) for b in names] for a in names])
    np.testing.assert_allclose(rep.disagreement.to_numpy(), dis)
    errors = np.stack([(preds[m] != np.array(labels)).astype(float) for m in names])
    np.testing.assert_allclose(rep.error_correlation.to_numpy(), np.nan_to_num(np.corrcoef(errors)), atol=1e-12)
    # the choice follows the rule: the best fitted method by cross-validated accuracy, kept only on a sure gain
    best_fit = max(("acc", "optimize"), key=lambda m: rep.estimates[m].cross_validated["accuracy"])
    expected = best_fit if rep.estimates[best_fit].gain_interval["accuracy"][0] > 0 else "uniform"
    assert rep.choice == expected and rep.reason.startswith(expected)
    # the winner's curse row: its apparent score is the best fitted member's validation accuracy
    best = max(("late", "early"), key=lambda m: (t.loc[m, "accuracy"], -t.loc[m, "log_loss"]))
    assert t.loc["best", "kind"] == "selection" and t.loc["best", "accuracy"] == pytest.approx(t.loc[best, "accuracy"])
    assert rep.winners_curse["best_member"] == best and rep.winners_curse["members"] == 2
    assert rep.winners_curse["cv_best"] == pytest.approx(t.loc["best", "cv_accuracy"])
    assert "winner's curse" in rep.to_text()
    html = rep._repr_html_()
    assert "<table" in html and "late" in html


def test_report_cli_text_json_html(project, tmp_path):
    root, models = project
    base = ["report", *[x for n, p in models.items() for x in ("--model", f"{n}={p}")],
            "--data", f"valid={root / 'valid.csv'}", "--cache-dir", str(root / "cache"), "--methods", "acc,select",
            "--repeats", "1"]
    text = CliRunner().invoke(main, [*base, "--html", str(tmp_path / "r.html"), "--trained-on-valid", "early"])
    assert text.exit_code == 0, text.output
    assert "auto -> " in text.stdout and "note: early: trained on the validation rows" in text.stdout
    assert "early is left out of weight fitting" in text.stdout
    page = (tmp_path / "r.html").read_text()
    assert page.count("<img") == 4 and "data:image/png;base64," in page
    out = CliRunner().invoke(main, [*base, "--json", "--include-optimistic"])
    doc = json.loads(out.stdout)
    assert set(doc["table"]) == {"late", "early", "soup", "uniform", "acc", "select", "best"}
    assert doc["winners_curse"]["members"] == 3  # --include-optimistic: the soup is a candidate too
    assert doc["excluded_from_fitting"] == [] and doc["auto"]["reason"].startswith(doc["auto"]["choice"])
    bad = CliRunner().invoke(main, [*base, "--trained-on-valid", "nope"])
    assert bad.exit_code == 1 and "--trained-on-valid 'nope' is not a --model name" in bad.stderr


def test_vote_auto_records_the_choice(project, tmp_path, monkeypatch):
    root, models = project
    monkeypatch.chdir(tmp_path)
    args = ["vote", "--model", f"late={models['late']}", "--model", f"early={models['early']}",
            "--data", f"valid={root / 'valid.csv'}", "--data", f"test={root / 'test.csv'}",
            "--cache-dir", str(root / "cache"), "--weights", "auto"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "auto -> " in result.stdout
    saved = json.loads(next((tmp_path / "weights").glob("*.json")).read_text())
    auto = saved["meta"]["auto"]
    assert auto["chosen"] == saved["method"] and auto["reason"].startswith(saved["method"])
    assert set(auto["candidates"]) == {"acc", "optimize", "select", "stack"}


def test_report_class_priors_section(project):
    root, models = project
    rep = report(models, {"valid": root / "valid.csv"}, cache_dir=root / "cache", methods=["uniform"], repeats=1,
                 prior="uniform")
    a = rep.adjust
    assert rep.choice == "uniform" and a["method"] == "uniform" and set(a["kinds"]) == {"prior", "fit"}
    labels = pd.read_csv(root / "valid.csv")["label"].tolist()
    probs = []
    for m in ("late", "early"):  # the soup is left out of fitting
        lg, p = _cached_probs(root, m)
        probs.append(pd.DataFrame(p, columns=lg.labels)[a["classes"]].to_numpy())
    pred = np.mean(probs, axis=0).argmax(1)
    y = np.array([a["classes"].index(v) for v in labels])
    # uniform fits nothing: its out-of-fold predictions are its predictions, recall by class
    for c in range(len(a["classes"])):
        assert a["recall_before"][c] == pytest.approx(np.mean(pred[y == c] == c))
    np.testing.assert_allclose(a["target_prior"], 1 / len(a["classes"]))
    assert a["validation_prior"] == pytest.approx(list(np.bincount(y) / len(y)))
    text = rep.to_text()
    assert "per-class recall" in text and "adjust auto -> " in text and "under the target prior" in text
    assert a["choice"] in ("none", "prior", "fit")
    page = rep.to_html(figures=False)
    assert "<h2>Class priors</h2>" in page and "recall: fit" in page and "target share" in page
    none = report(models, {"valid": root / "valid.csv"}, cache_dir=root / "cache", methods=["uniform"], repeats=1,
                  adjust="none")
    assert none.adjust == {} and "class priors" not in none.to_text()
