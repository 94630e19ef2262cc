"""Fold groups without a holdout: the fold mean's Brier score decomposed, against an independent
computation from each fold model's own cached test logits."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.core.combination import softmax
from ensemble.estimates.decomposition import brier_rows

from tests.workflows.test_foldgroups import K
from tests.workflows.test_foldgroups import kfold as kfold  # noqa: F401  (the fixture: K fold models, cached logits)


def test_the_fold_mean_is_estimated_from_the_oof_and_test_rows(kfold):
    from ensemble import gather, load_split, predict_logits, report

    members = {"bert": f"{kfold}/bert-fold{{fold}}/model"}
    data = {"train": kfold / "train.csv", "test": kfold / "test.csv"}
    rep = report(members, data, folds=kfold / "folds.csv", cache_dir=kfold / "cache", methods=["acc"], adjust="none")
    f = rep.out_of_fold["fold_mean"]
    assert f["method"] == rep.choice == "uniform"
    # independently: each fold model's test probabilities from its own cache entry
    test = load_split(kfold / "test.csv", name="test")
    q = [softmax(predict_logits(kfold / f"bert-fold{k}" / "model", test, cache=kfold / "cache", progress=False).values)
         for k in range(K)]
    amb = float(np.mean([((p - np.mean(q, axis=0)) ** 2).sum(axis=1) for p in q]))
    oof = gather(members, data, "train", folds=kfold / "folds.csv", cache_dir=kfold / "cache")
    oof_brier = float(brier_rows(softmax(oof.arrays[0]), oof.y).mean())
    b = f["brier"]
    assert b["ambiguity"] == pytest.approx(amb, rel=1e-5) and b["oof_brier"] == pytest.approx(oof_brier, rel=1e-6)
    assert b["estimate"] == pytest.approx(oof_brier - amb, rel=1e-5) and b["test_rows"] == len(test)
    assert f["oof_accuracy"] == pytest.approx(rep.table.loc["uniform", "accuracy"])
    assert "the fold mean of uniform (what is submitted)" in rep.to_text()
    assert rep.to_dict()["out_of_fold"]["fold_mean"]["brier"]["estimate"] == pytest.approx(b["estimate"])
