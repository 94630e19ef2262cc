"""With fold groups and a holdout, the holdout decides: a constructed case where the choice on
the out-of-fold rows and the choice on the holdout differ, and report and vote follow the
holdout alike."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd

from tests.conftest import edit_config
from tests.workflows.test_foldgroups import K, _cli, _data
from tests.workflows.test_foldgroups import kfold as kfold  # noqa: F401  (the fixture: K fold models, cached logits)


def _scrambled(kfold, tmp_path):
    """A second fold group: the same fold models with their class names shifted by one (head rows
    unchanged), so it names every prediction wrongly, and its logits ten times as large, so it
    dominates a uniform mean of probabilities: a poor member on the out-of-fold rows, and a
    uniform ensemble as poor as it."""
    from safetensors.torch import load_file, save_file

    for k in range(K):
        dst = tmp_path / f"scram-fold{k}" / "model"
        shutil.copytree(kfold / f"bert-fold{k}" / "model", dst)
        sd = load_file(str(dst / "model.safetensors"))
        for key in ("classifier.weight", "classifier.bias"):
            sd[key] = (sd[key] * 10).contiguous()
        save_file(sd, str(dst / "model.safetensors"), metadata={"format": "pt"})
        cfg = json.loads((dst / "config.json").read_text())
        names = [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
        shifted = names[1:] + names[:1]
        edit_config(dst, id2label={str(i): c for i, c in enumerate(shifted)}, label2id={c: i for i, c in enumerate(shifted)})
    return f"{tmp_path}/scram-fold{{fold}}/model"


def test_auto_follows_the_holdout_in_report_and_vote(kfold, tmp_path):
    from ensemble import gather, report, vote

    scram = _scrambled(kfold, tmp_path)
    members = {"bert": f"{kfold}/bert-fold{{fold}}/model", "scram": scram}
    # the holdout's labels are what the scrambled group predicts: on it, that member is right
    valid = pd.read_csv(kfold / "valid.csv")
    result = _cli(kfold, "predict", "--model", f"scram={scram}", *_data(kfold), "--data", f"valid={kfold}/valid.csv",
                  "--folds", kfold / "folds.csv")
    assert result.exit_code == 0, result.output
    al = gather({"scram": scram}, {"train": kfold / "train.csv", "valid": kfold / "valid.csv"}, "valid",
                folds=kfold / "folds.csv", cache_dir=kfold / "cache")
    valid["label"] = np.array(al.labels)[al.arrays[0].argmax(axis=1)]
    valid.to_csv(tmp_path / "holdout.csv", index=False)
    data = {"train": kfold / "train.csv", "valid": tmp_path / "holdout.csv", "test": kfold / "test.csv"}
    # the cache keys hold the data's content: the relabelled holdout has the same ids and texts
    rep = report(members, data, folds=kfold / "folds.csv", cache_dir=kfold / "cache", methods=["acc", "optimize"],
                 adjust="none")
    h = rep.holdout
    assert h["oof_choice"] in ("acc", "optimize"), rep.to_text()  # on the OOF rows, leaning on bert is a sure gain
    assert rep.choice == h["choice"] == "uniform" != h["oof_choice"]  # on the holdout, it is not
    assert rep.reason == h["reason"] and "on the holdout (80 rows)" in rep.reason
    assert h["scores"]["scram"]["score"] == 1.0 and h["decided_on"] == "fold means"
    head = rep.headline  # the headline says what decided, and scores what is submitted there
    assert head["of"] == "holdout" and head["method"] == "uniform"
    assert head["estimate"] == h["scores"]["uniform"]["score"] and (head["low"], head["high"]) == (
        h["scores"]["uniform"]["low"], h["scores"]["uniform"]["high"])
    assert rep.to_text().splitlines()[0].startswith(f"submission: uniform, accuracy {head['estimate']:.4f} [")
    frame = vote(members, data, "auto", folds=kfold / "folds.csv", cache_dir=kfold / "cache", out=tmp_path / "s.csv")
    auto = frame.attrs["weights"].meta["auto"]
    assert frame.attrs["weights"].method == "uniform" and auto["chosen"] == "uniform"
    assert auto["holdout"]["oof_choice"] == h["oof_choice"] and auto["reason"] == rep.reason
    assert frame.attrs["headline"]["of"] == "holdout" and frame.attrs["headline"]["estimate"] == head["estimate"]
