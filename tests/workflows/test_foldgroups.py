"""Fold groups as members: 3 tiny BERTs trained with the real ``Trainer``, model k without the rows of
fold k (on the example's template sentences with label noise: the Korean slice's 192 rows are too
few for a model this small to beat the majority class, and degenerate models would test little). Their out-of-fold logits are each fold model's own forward pass on its held-out rows, their
test probabilities the mean of the fold models', weights and estimates are fitted on the OOF rows
with the training folds as the cross-validation's folds, and every bad input is one stderr line."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main

from ..workflows.test_vote import _permute_labels

K = 3


@pytest.fixture(scope="module")
def kfold(tmp_path_factory):
    """``bert-fold{k}/model`` for k = 0, 1, 2 (and ``perm-fold{k}``, the same models with their
    classes in another order), ``bert-full/model`` trained on every training row, train.csv with
    folds.csv, test.csv and valid.csv, and the logits cached."""
    from ensemble.cli.example import make_base_model, synthetic_task, train_run
    from ensemble.data.folds import make_folds

    root = tmp_path_factory.mktemp("kfold")
    texts, labels = synthetic_task(192, seed=5, noise=0.15)
    vtexts, vlabels = synthetic_task(120, seed=6, noise=0.15)
    make_base_model(root / "base", texts + vtexts, sorted(set(labels)), seed=0)
    pd.DataFrame({"id": [f"r{i:03d}" for i in range(192)], "text": texts, "label": labels}).to_csv(
        root / "train.csv", index=False)
    pd.DataFrame({"id": [f"t{i:02d}" for i in range(40)], "text": vtexts[:40]}).to_csv(root / "test.csv", index=False)
    pd.DataFrame({"id": [f"v{i:02d}" for i in range(80)], "text": vtexts[40:], "label": vlabels[40:]}).to_csv(
        root / "valid.csv", index=False)
    folds = make_folds(root / "train.csv", root / "folds.csv", K, seed=0).fold
    for k in range(K):
        inside, out = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        trainer = train_run(root / f"bert-fold{k}", root / "base", ([texts[i] for i in inside], [labels[i] for i in inside]),
                            ([texts[i] for i in out], [labels[i] for i in out]), epochs=20, steps=40, learning_rate=3e-3, seed=10 + k)
        trainer.save_model(str(root / f"bert-fold{k}" / "model"))
        shutil.copytree(root / f"bert-fold{k}" / "model", root / f"perm-fold{k}" / "model")
        _permute_labels(root / f"perm-fold{k}" / "model", [1, 2, 3, 0])
    trainer = train_run(root / "bert-full", root / "base", (texts, labels), (vtexts, vlabels), epochs=20, steps=60,
                        learning_rate=3e-3, seed=20)
    trainer.save_model(str(root / "bert-full" / "model"))
    result = _cli(root, "predict", "--model", f"bert={root}/bert-fold{{fold}}/model", "--model", f"full={root}/bert-full/model",
                  "--model", f"perm={root}/perm-fold{{fold}}/model", *_data(root), "--data", f"valid={root}/valid.csv",
                  "--folds", str(root / "folds.csv"))
    assert result.exit_code == 0, result.output
    return root


def _data(root):
    return ["--data", f"train={root}/train.csv", "--data", f"test={root}/test.csv", "--cache-dir", str(root / "cache")]


def _cli(root, *args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _in_empty_folder(tmp_path, *args, write: dict | None = None):
    """Run the CLI in a new folder (holding only the files of ``write``, name -> text); return the
    result and every other file there afterwards: what the command wrote."""
    cwd = Path(tempfile.mkdtemp(dir=tmp_path))
    for name, text in (write or {}).items():
        (cwd / name).write_text(text, encoding="utf-8")
    here = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, [str(a) for a in args])
    finally:
        os.chdir(here)
    return result, {str(p.relative_to(cwd)): p for p in sorted(cwd.rglob("*"))
                    if p.is_file() and str(p.relative_to(cwd)) not in (write or {})}


def _forward(folder, texts):
    """The model's own forward pass, one unpadded text at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        out = [model(**tok(t, return_tensors="pt", truncation=True,
                           max_length=model.config.max_position_embeddings)).logits[0].float().numpy() for t in texts]
    return np.stack(out), [model.config.id2label[i] for i in range(len(out[0]))]


def sidecar_digest(files):
    return json.loads(files["submissions/x-acc.csv.json"].read_text())["fitted_on"]["folds_digest"]


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_oof_logits_are_each_fold_models_forward_pass_and_test_is_the_fold_mean(kfold):
    from ensemble.workflows.gather import gather

    members = {"bert": f"{kfold}/bert-fold{{fold}}/model"}
    data = {"train": kfold / "train.csv", "test": kfold / "test.csv"}
    oof = gather(members, data, "train", cache_dir=kfold / "cache", folds=kfold / "folds.csv")
    train = pd.read_csv(kfold / "train.csv")
    fold = pd.read_csv(kfold / "folds.csv").set_index("id").loc[train["id"], "fold"].to_numpy()
    assert list(oof.ids) == list(train["id"]) and sorted(set(fold)) == list(range(K))
    test = pd.read_csv(kfold / "test.csv")
    probs = []
    for k in range(K):
        rows = np.flatnonzero(fold == k)
        ref, labels = _forward(kfold / f"bert-fold{k}" / "model", train["text"].iloc[rows].tolist())
        assert tuple(labels) == oof.labels
        np.testing.assert_allclose(oof.arrays[0][rows], ref, atol=1e-4)
        probs.append(_softmax(_forward(kfold / f"bert-fold{k}" / "model", test["text"].tolist())[0]))
    np.testing.assert_array_equal(oof.y, [oof.labels.index(c) for c in train["label"]])
    # the fold models differ, so the mean is not any one of them
    assert np.abs(probs[0] - probs[1]).max() > 1e-3
    te = gather(members, data, "test", cache_dir=kfold / "cache", folds=kfold / "folds.csv")
    np.testing.assert_allclose(_softmax(te.arrays[0]), np.mean(probs, axis=0), atol=1e-5)


def test_vote_fits_on_out_of_fold_rows_and_a_permuted_group_votes_alike(kfold, tmp_path):
    from ensemble.tasks.classification.weighting import fit_weights
    from ensemble.workflows.gather import gather

    def vote(model, *extra):
        return _in_empty_folder(tmp_path, "vote", "--model", f"{model}={kfold}/{model}-fold{{fold}}/model",
                                "--model", f"b={kfold}/bert-fold{{fold}}/model", *_data(kfold), "--folds",
                                kfold / "folds.csv", "--proba", "-q", *extra)

    result, files = vote("bert", "--weights", "acc", "--name", "x")
    assert result.exit_code == 0, result.output
    perm, perm_files = vote("perm", "--weights", "acc", "--name", "x")
    assert perm.exit_code == 0, perm.output
    a, b = (pd.read_csv(f["submissions/x-acc.csv"]) for f in (files, perm_files))
    pd.testing.assert_frame_equal(a, b[a.columns], atol=1e-6)  # proba columns in the first member's class order
    # acc weights are the members' out-of-fold accuracies, fitted on all 192 training rows
    al = gather({"bert": f"{kfold}/bert-fold{{fold}}/model", "b": f"{kfold}/bert-fold{{fold}}/model"},
                {"train": kfold / "train.csv"}, "train", cache_dir=kfold / "cache", folds=kfold / "folds.csv")
    expected = fit_weights(al.arrays, al.y, "acc")
    saved = json.loads(files["weights/x-acc.json"].read_text())
    np.testing.assert_allclose([m["weight"] for m in saved["models"]], expected.weights, atol=1e-9)
    assert saved["meta"]["fitted_on"]["folds_digest"] == sidecar_digest(files)
    sidecar = json.loads(files["submissions/x-acc.csv.json"].read_text())
    assert sidecar["fitted_on"]["kind"] == "out-of-fold" and sidecar["fitted_on"]["k"] == K
    assert sidecar["valid"]["rows"] == 192 and sidecar["fitted_on"]["fold_groups"]["bert"][2].endswith("bert-fold2/model")
    # the saved weights are reused with these folds only
    again, _ = vote("bert", "--weights", files["weights/x-acc.json"])
    assert again.exit_code == 0, again.output
    # a class-prior adjustment is fitted on the OOF rows too, and auto estimates it on the training folds
    from ensemble.tasks.classification.procedure import AdjustMethod

    adjusted, adj_files = vote("bert", "--weights", "acc", "--adjust", "fit", "--name", "x")
    assert adjusted.exit_code == 0, adjusted.output
    offsets = json.loads(adj_files["weights/x-acc-fit.json"].read_text())["adjustment"]["offsets"]
    own = AdjustMethod("fit").fit(expected.predict_proba(al.arrays), al.y, labels=al.labels)
    np.testing.assert_allclose(offsets, own.offsets, atol=1e-9)
    auto, auto_files = vote("bert", "--weights", "acc", "--adjust", "auto", "--name", "x")
    assert auto.exit_code == 0, auto.output
    candidates = json.loads(next(f for n, f in auto_files.items() if n.endswith(".csv.json")).read_text())
    assert set(candidates["adjust_auto"]["candidates"]) == {"fit"}


def test_auto_and_report_cross_validate_on_the_training_folds(kfold, tmp_path):
    from ensemble.workflows.report import report

    members = {"bert": f"{kfold}/bert-fold{{fold}}/model", "perm": f"{kfold}/perm-fold{{fold}}/model"}
    data = {"train": kfold / "train.csv", "valid": kfold / "valid.csv"}
    rep = report(members, data, folds=kfold / "folds.csv", cache_dir=kfold / "cache", methods=["acc", "optimize"],
                 adjust="none")
    assert rep.rows == 192 and rep.out_of_fold["k"] == K
    assert {e.folds for e in rep.estimates.values()} == {K} and {e.repeats for e in rep.estimates.values()} == {1}
    # the holdout scores each fold group as its fold mean, untouched by any fit
    assert rep.holdout["rows"] == 80 and set(rep.holdout["accuracy"]) >= {"bert", "perm", "uniform", "acc"}
    assert rep.holdout["accuracy"]["bert"] == rep.holdout["accuracy"]["perm"]
    valid = pd.read_csv(kfold / "valid.csv")
    forwards = [_forward(kfold / f"bert-fold{k}" / "model", valid["text"].tolist()) for k in range(K)]
    fold_mean = np.mean([_softmax(z) for z, _ in forwards], axis=0)
    expected = np.mean(np.array(forwards[0][1])[fold_mean.argmax(axis=1)] == valid["label"].to_numpy())
    assert rep.holdout_table().loc["bert", "holdout accuracy"] == pytest.approx(expected)
    train = pd.read_csv(kfold / "train.csv")
    majority = train["label"].value_counts(normalize=True).max()
    assert rep.table.loc["bert", "accuracy"] > majority + 0.03, rep.to_text()  # fold models that learned something
    assert rep.table.loc["bert", "accuracy"] == rep.table.loc["perm", "accuracy"]
    text = rep.to_text()
    print(text)
    assert text.startswith("submission: uniform, accuracy ") and "(on the holdout)" in text.splitlines()[0]
    assert "out-of-fold: 192 training rows" in text and "holdout" in text
    result = _cli(kfold, "report", "--model", members["bert"].join(["bert=", ""]), *_data(kfold), "--folds",
                  kfold / "folds.csv", "--json", "--methods", "acc", "--adjust", "none")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["out_of_fold"]["rows"] == 192


@pytest.mark.parametrize("case", ["missing_fold", "no_folds", "mixed", "different_k", "folds_id", "folds_changed",
                                  "no_train", "train_id", "empty_fold"])
def test_errors_are_one_line_and_write_nothing(kfold, tmp_path, case):
    group = f"bert={kfold}/bert-fold{{fold}}/model"
    folds = kfold / "folds.csv"
    args = ["--model", group]
    data = _data(kfold)
    expect = {
        "missing_fold": "fold 2 of member gone",
        "no_folds": "is a fold group; pass --folds FILE",
        "mixed": "plain is a model and bert is a fold group: they have no training rows in common",
        "different_k": "but the folds file has 3 folds",
        "folds_id": "not in the training split",
        "folds_changed": "no cached logits",
        "no_train": "pass --data train=PATH",
        "train_id": "id(s) of the training split have no fold, e.g. 'r",
        "empty_fold": "fold 1 has no rows",
    }[case]
    if case == "missing_fold":
        gone = tmp_path / "gone"
        for k in range(2):
            shutil.copytree(kfold / f"bert-fold{k}" / "model", gone / f"f{k}")
        args = ["--model", f"gone={gone}/f{{fold}}"]
    elif case == "no_folds":
        folds = None
    elif case == "mixed":  # without a validation split: no rows in common
        args += ["--model", f"plain={kfold}/bert-fold0/model"]
    elif case == "different_k":
        args += ["--model", f"two={kfold}/bert-fold0/model,{kfold}/bert-fold1/model"]
    elif case in ("folds_id", "folds_changed", "train_id", "empty_fold"):
        frame = pd.read_csv(kfold / "folds.csv")
        if case == "folds_id":
            frame.loc[len(frame)] = ["stranger", 0]
        elif case == "train_id":
            frame = frame.iloc[1:]
        elif case == "empty_fold":
            frame["fold"] = frame["fold"].replace(1, 2)
        else:
            frame["fold"] = (frame["fold"] + 1) % K  # another assignment of the same rows
        folds = tmp_path / "folds.csv"
        frame.to_csv(folds, index=False)
    elif case == "no_train":
        data = data[2:]
    write = None
    if case == "different_k":  # a list of folders comes from ensemble.toml, and from the API
        from ensemble.core.errors import EnsembleError
        from ensemble.workflows.vote import vote

        with pytest.raises(EnsembleError, match=expect):
            vote({"bert": f"{kfold}/bert-fold{{fold}}/model", "two": [kfold / "bert-fold0/model", kfold / "bert-fold1/model"]},
                 {"train": kfold / "train.csv", "test": kfold / "test.csv"}, "acc", cache_dir=kfold / "cache",
                 folds=folds, weights_dir=tmp_path / "w", submissions_dir=tmp_path / "s")
        assert not (tmp_path / "w").exists() and not (tmp_path / "s").exists()
        args = []
        write = {"ensemble.toml": f'[data]\ntrain = "{kfold}/train.csv"\ntest = "{kfold}/test.csv"\n'
                                  f'folds = "{kfold}/folds.csv"\n\n[models]\nbert = "{kfold}/bert-fold{{fold}}/model"\n'
                                  f'two = ["{kfold}/bert-fold0/model", "{kfold}/bert-fold1/model"]\n'}
        data, folds = data[4:], None  # the project's data and folds; the logit cache as before
    result, files = _in_empty_folder(tmp_path, "vote", *args, *data, *(["--folds", folds] if folds else []),
                                     "--weights", "acc", write=write)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], result.stderr
    assert files == {}


def test_a_refit_takes_its_groups_place_on_test_with_its_weight(kfold, tmp_path):
    from ensemble.workflows.gather import gather

    def vote(*extra):
        return _in_empty_folder(tmp_path, "vote", "--model", f"bert={kfold}/bert-fold{{fold}}/model",
                                "--model", f"b={kfold}/perm-fold{{fold}}/model", *_data(kfold), "--folds",
                                kfold / "folds.csv", "--proba", "--weights", "0.7,0.3", "-q", "--name", "x", *extra)

    plain, plain_files = vote()
    assert plain.exit_code == 0, plain.output
    result, files = vote("--model", f"full={kfold}/bert-full/model", "--refit", "full=bert")
    assert result.exit_code == 0, result.output
    got = pd.read_csv(files["submissions/x-fixed.csv"])
    test = pd.read_csv(kfold / "test.csv")
    full, labels = _forward(kfold / "bert-full" / "model", test["text"].tolist())
    perm = gather({"b": f"{kfold}/perm-fold{{fold}}/model"}, {"train": kfold / "train.csv", "test": kfold / "test.csv"},
                  "test", cache_dir=kfold / "cache", folds=kfold / "folds.csv", )
    perm_p = _softmax(perm.arrays[0])[:, [perm.labels.index(c) for c in labels]]
    expected = 0.7 * _softmax(full) + 0.3 * perm_p
    np.testing.assert_allclose(got[labels].to_numpy(), expected, atol=1e-5)
    before = pd.read_csv(plain_files["submissions/x-fixed.csv"])
    assert not np.allclose(before[labels].to_numpy(), got[labels].to_numpy(), atol=1e-3)  # the refit made a difference
    sidecar = json.loads(files["submissions/x-fixed.csv.json"].read_text())
    assert sidecar["refit"]["bert"]["model"] == "full" and list(sidecar["weights"]) == ["bert", "b"]
    # the report names it, scores it on the holdout only
    rep = _cli(kfold, "report", "--model", f"bert={kfold}/bert-fold{{fold}}/model", "--model",
               f"full={kfold}/bert-full/model", "--refit", "full=bert", *_data(kfold), "--data",
               f"valid={kfold}/valid.csv", "--folds", kfold / "folds.csv", "--json", "--methods", "acc", "--adjust", "none")
    assert rep.exit_code == 0, rep.output
    doc = json.loads(rep.stdout)
    assert "full" not in doc["table"] and doc["out_of_fold"]["refit"] == {"bert": "full"}
    valid = pd.read_csv(kfold / "valid.csv")
    holdout_full = _softmax(_forward(kfold / "bert-full" / "model", valid["text"].tolist())[0]).argmax(axis=1)
    assert doc["holdout"]["accuracy"]["full"] == pytest.approx(np.mean(np.array(labels)[holdout_full] == valid["label"]))


@pytest.mark.parametrize("refit, expect", [("full=nope", "'nope' is not a fold group"),
                                           ("ghost=bert", "--refit ghost=bert: 'ghost' is not a member"),
                                           ("bert=full", "bert is a fold group"), ("full", "write --refit NAME=GROUP")])
def test_bad_refits_are_one_line_errors(kfold, tmp_path, refit, expect):
    result, files = _in_empty_folder(tmp_path, "vote", "--model", f"bert={kfold}/bert-fold{{fold}}/model", "--model",
                                     f"full={kfold}/bert-full/model", "--refit", refit, *_data(kfold), "--folds",
                                     kfold / "folds.csv", "--weights", "acc")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], result.stderr
    assert files == {}


def test_the_kfold_example_runs_end_to_end_and_then_is_up_to_date(tmp_path, monkeypatch):
    """``ensemble example --folds 3``: two backbones x 3 fold runs and a refit each; ``ensemble run``
    averages each fold run, predicts each fold model's held-out rows, fits on the OOF rows and
    submits with the refits in their groups' places; a second run recomputes nothing; ``predict``,
    ``vote`` and ``report`` read the project's folds with no other argument."""
    from ensemble.workflows.gather import gather

    folder = tmp_path / "kfold"
    made = CliRunner().invoke(main, ["example", str(folder), "--folds", "3", "-q"])
    assert made.exit_code == 0, made.output
    assert sorted(p.name for p in (folder / "runs").iterdir()) == [
        "bert-a-fold0", "bert-a-fold1", "bert-a-fold2", "bert-a-full", "bert-b-fold0", "bert-b-fold1", "bert-b-fold2",
        "bert-b-full"]
    monkeypatch.chdir(folder)
    first = CliRunner().invoke(main, ["run"])
    assert first.exit_code == 0, first.output
    # 6 fold models x (held-out rows, valid, test) + 2 refits x (valid, test)
    assert "predict: 22 computed" in first.stdout, first.stdout
    assert (folder / "weights" / "bert-a-fold2-top2" / "model.safetensors").is_file()
    submission = Path(first.stdout.strip().splitlines()[-1])
    sidecar = json.loads(submission.with_name(submission.name + ".json").read_text())
    assert sidecar["fitted_on"]["k"] == 3 and set(sidecar["refit"]) == {"bert-a", "bert-b"}
    assert sidecar["refit"]["bert-b"]["model"] == "bert-b-full"
    # the holdout decides whether the refits or the fold means are submitted, and the report says which
    used = all(r.get("used", True) for r in sidecar["refit"].values())
    said = "refit: bert-a-full takes the place of bert-a" if used else "refit: bert-a-full is NOT submitted"
    assert "out-of-fold: 600 training rows" in first.stdout and said in first.stdout
    # the submission's probabilities are the refits' (or the fold means') where the weights are the groups'
    weights = sidecar["weights"]
    test = {"train": folder / "data/train.csv", "test": folder / "data/test.csv"}
    if used:
        refits = gather({"bert-a-full": folder / "weights/bert-a-full-top2",
                         "bert-b-full": folder / "weights/bert-b-full-top2"}, test, "test",
                        cache_dir=folder / ".ensemble/cache")
    else:
        refits = gather({g: str(folder / f"weights/{g}-fold{{fold}}-top2") for g in ("bert-a", "bert-b")}, test, "test",
                        cache_dir=folder / ".ensemble/cache", folds=folder / "data/folds.csv")
    if sidecar["method"] in ("uniform", "acc", "optimize", "select"):
        mixed = weights["bert-a"] * _softmax(refits.arrays[0]) + weights["bert-b"] * _softmax(refits.arrays[1])
        got = pd.read_csv(submission)
        ids = list(refits.ids)
        order = [ids.index(i) for i in got["id"]]
        assert list(np.array(refits.labels)[mixed.argmax(axis=1)][order]) == got["label"].tolist()
    second = CliRunner().invoke(main, ["run"])
    assert second.exit_code == 0, second.output
    for line in ("average bert-a: up to date", "predict: all 22 (model, split) logits up to date", "vote: up to date",
                 "report: up to date"):
        assert line in second.stdout, second.stdout
    assert "0 computed, 22 from the cache" in CliRunner().invoke(main, ["predict"]).stdout
    # cache prune keeps every fold model's held-out rows; with other folds they are no current data
    assert "0 to remove, 22 kept" in CliRunner().invoke(main, ["cache", "prune", "--dry-run"]).stdout
    rotated = pd.read_csv(folder / "data/folds.csv").assign(fold=lambda f: (f["fold"] + 1) % 3)
    rotated.to_csv(tmp_path / "rotated.csv", index=False)
    pruned = CliRunner().invoke(main, ["cache", "prune", "--dry-run", "--folds", str(tmp_path / "rotated.csv")]).stdout
    assert "6 to remove, 16 kept" in pruned, pruned
    rep = CliRunner().invoke(main, ["report", "--methods", "acc", "--json"])
    assert rep.exit_code == 0 and json.loads(rep.stdout)["out_of_fold"]["refit"] == {"bert-a": "bert-a-full",
                                                                                     "bert-b": "bert-b-full"}
    # ensemble init finds the same fold groups, their refits and the folds file
    from ensemble.cli.project import load_project

    (folder / "ensemble.toml").rename(folder / "example.toml")
    assert CliRunner().invoke(main, ["init", str(folder)]).exit_code == 0
    found, made = load_project(folder / "ensemble.toml"), load_project(folder / "example.toml")
    assert {n: (str(r.path), r.refit_of) for n, r in found.runs.items()} == {
        n: (str(r.path), r.refit_of) for n, r in made.runs.items()}
    assert found.folds == made.folds and found.data["train"] == made.data["train"] and found.refit == made.refit


def test_fold_groups_beside_a_model_are_fitted_on_the_validation_rows_as_fold_means(kfold, tmp_path):
    """A model trained without the validation rows and a fold group have those rows in common:
    every weight is fitted there, the group as its fold mean, and the outputs say so."""
    from ensemble.tasks.classification.weighting import fit_weights
    from ensemble.workflows.gather import gather

    members = {"bert": f"{kfold}/bert-fold{{fold}}/model", "plain": kfold / "bert-full" / "model"}
    result, files = _in_empty_folder(tmp_path, "vote", *[x for m, p in members.items() for x in ("--model", f"{m}={p}")],
                                     *_data(kfold), "--data", f"valid={kfold}/valid.csv", "--folds",
                                     kfold / "folds.csv", "--weights", "optimize", "--name", "m")
    assert result.exit_code == 0, result.output
    assert "every weight is fitted and estimated on the rows of valid" in result.stdout
    al = gather(members, {"train": kfold / "train.csv", "valid": kfold / "valid.csv"}, "valid",
                cache_dir=kfold / "cache", folds=kfold / "folds.csv")
    expected = fit_weights(al.arrays, al.y, "optimize", seed=0)
    saved = json.loads(files["weights/m-optimize.json"].read_text())
    np.testing.assert_allclose([m["weight"] for m in saved["models"]], expected.weights, atol=1e-6)
    assert saved["meta"]["fitted_on"]["kind"] == "validation" and list(saved["meta"]["fitted_on"]["fold_groups"]) == ["bert"]
    assert saved["meta"]["valid"]["rows"] == 80
    rep = _cli(kfold, "report", *[x for m, p in members.items() for x in ("--model", f"{m}={p}")], *_data(kfold),
               "--data", f"valid={kfold}/valid.csv", "--folds", kfold / "folds.csv", "--json", "--methods", "acc",
               "--adjust", "none")
    assert rep.exit_code == 0, rep.output
    doc = json.loads(rep.stdout)
    assert doc["rows"] == 80 and doc["out_of_fold"] == {} and "the mean of its 3 fold models" in doc["table"]["bert"]["note"]


def test_with_refits_and_no_holdout_no_figure_is_called_what_is_submitted(kfold, tmp_path):
    """The refits are submitted in their groups' places; the out-of-fold figures are the fold
    groups': the report's and the vote's headline say so, and the fold mean is not called what is
    submitted."""
    from ensemble import report, vote

    members = {"bert": f"{kfold}/bert-fold{{fold}}/model", "b": f"{kfold}/perm-fold{{fold}}/model",
               "full": f"{kfold}/bert-full/model"}
    data = {"train": kfold / "train.csv", "test": kfold / "test.csv"}
    rep = report(members, data, cache_dir=kfold / "cache", folds=kfold / "folds.csv", refit={"full": "bert"},
                 methods=["acc"], adjust="none")
    head = rep.headline
    assert head["of"] == "out-of-fold" and "not of what is submitted: the refits (full for bert)" in head["note"]
    text = rep.to_text()
    assert "not of what is submitted" in text.splitlines()[0]
    assert "(what is submitted)" not in text
    sub = vote(members, data, "auto", cache_dir=kfold / "cache", folds=kfold / "folds.csv", refit={"full": "bert"},
               out=tmp_path / "s.csv", weights_dir=tmp_path / "w")
    assert "not of what is submitted" in sub.attrs["headline"]["note"]
    plain = report({k: v for k, v in members.items() if k != "full"}, data, cache_dir=kfold / "cache",
                   folds=kfold / "folds.csv", methods=["acc"], adjust="none")
    assert "note" not in plain.headline or "submitted" not in (plain.headline.get("note") or "")


@pytest.mark.parametrize("edit", ["a row moved to another fold", "two rows swapped", "old sidecar, a row moved"])
def test_a_folds_file_edited_after_it_was_made_is_refused(kfold, tmp_path, edit):
    """The fold models were trained on the folds the file held when it was made: an edit since
    (its sidecar says what it was) would score out-of-fold rows with models that saw them."""
    from ensemble import report
    from ensemble.core.errors import EnsembleError

    folds = pd.read_csv(kfold / "folds.csv")
    side = json.loads((kfold / "folds.csv.json").read_text())
    first = int(folds.loc[0, "fold"])
    other = int(np.flatnonzero(folds["fold"].to_numpy() != first)[0])
    if edit == "two rows swapped":  # rows per fold unchanged: only the file's digest sees it
        folds.loc[0, "fold"], folds.loc[other, "fold"] = folds.loc[other, "fold"], first
    else:
        folds.loc[0, "fold"] = (first + 1) % K
    if edit.startswith("old sidecar"):  # written before the digest was recorded: rows per fold decide
        side.pop("folds_file_blake3")
    folds.to_csv(tmp_path / "folds.csv", index=False)
    (tmp_path / "folds.csv.json").write_text(json.dumps(side))
    with pytest.raises(EnsembleError) as e:
        report({"bert": f"{kfold}/bert-fold{{fold}}/model"}, {"train": kfold / "train.csv"},
               cache_dir=kfold / "cache", folds=tmp_path / "folds.csv", adjust="none")
    assert str(tmp_path / "folds.csv") in str(e.value) and "edited since it was made" in str(e.value)


def test_fold_folders_averaged_from_another_folds_run_are_refused(kfold, tmp_path):
    from ensemble import gather
    from ensemble.core.errors import EnsembleError

    for k in range(K):  # each fold's folder says it was averaged from the next fold's run
        shutil.copytree(kfold / f"bert-fold{k}" / "model", tmp_path / f"avg-fold{k}")
        (tmp_path / f"avg-fold{k}" / "ensemble_manifest.json").write_text(
            json.dumps({"schema": "ensemble.average/1", "run": f"../../runs/bert-fold{(k + 1) % K}"}))
    with pytest.raises(EnsembleError) as e:
        gather({"bert": f"{tmp_path}/avg-fold{{fold}}"}, {"train": kfold / "train.csv"}, "train",
               cache_dir=kfold / "cache", folds=kfold / "folds.csv")
    assert "fold 1's run, but it stands for fold 0 of member bert" in str(e.value)


def test_the_leaderboard_says_what_each_figure_is_of_and_subtracts_like_from_like(kfold):
    """With a holdout deciding, honest figures are the holdout's; optimism is the apparent score
    minus the same out-of-fold rows' cross-validated one (never minus a holdout figure); a method
    auto does not choose among (best) is marked so."""
    from ensemble import report

    rep = report({"bert": f"{kfold}/bert-fold{{fold}}/model", "b": f"{kfold}/perm-fold{{fold}}/model"},
                 {"train": kfold / "train.csv", "valid": kfold / "valid.csv"}, cache_dir=kfold / "cache",
                 folds=kfold / "folds.csv", adjust="none", check_shift=False)
    board = rep.leaderboard()
    assert set(board["of"]) == {"holdout"}
    cv = rep.table.loc[board.index, "cv_accuracy"]
    assert (board["optimism"] - (board["apparent"] - cv)).abs().max() < 1e-12
    assert board.loc["best", "auto"] == "not considered" and board.loc["uniform", "auto"] == "candidate"
    assert "not considered" in rep.to_text()


def test_with_a_holdout_the_refits_are_submitted_only_when_they_win_there(kfold, tmp_path):
    """Fold means and refits are both candidates on the holdout, under one sure-gain rule over
    uniform on the fold means; the report says what the refits did there, and the vote submits
    what won: with the fold means winning, its submission is the vote without the refit."""
    from ensemble import report, vote

    groups = {"bert": f"{kfold}/bert-fold{{fold}}/model", "b": f"{kfold}/perm-fold{{fold}}/model"}
    members = {**groups, "full": f"{kfold}/bert-full/model"}
    data = {"train": kfold / "train.csv", "valid": kfold / "valid.csv", "test": kfold / "test.csv"}
    where = dict(cache_dir=kfold / "cache", folds=kfold / "folds.csv")
    rep = report(members, data, refit={"full": "bert"}, adjust="none", check_shift=False, **where)
    h = rep.holdout
    for m in ("uniform", rep.choice):
        assert m in h["scores"] and f"{m} with refits" in h["scores"]
    assert h["refits_gain"] == pytest.approx(h["scores"][f"{rep.choice} with refits"]["score"]
                                             - h["scores"][rep.choice]["score"])
    sub = vote(members, data, "auto", refit={"full": "bert"}, adjust="none", out=tmp_path / "s.csv",
               weights_dir=tmp_path / "w", **where)
    side = json.loads((tmp_path / "s.csv.json").read_text())
    assert side["method"].split("-")[0] == rep.choice
    if h["decided_on"] == "fold means":
        assert side["refit"]["bert"]["used"] is False and "is NOT submitted" in rep.to_text()
        plain = vote(groups, data, "auto", adjust="none", out=tmp_path / "p.csv", weights_dir=tmp_path / "w2", **where)
        pd.testing.assert_frame_equal(sub.reset_index(drop=True), plain.reset_index(drop=True))
    else:
        assert side["refit"]["bert"].get("used", True) and "takes the place of bert" in rep.to_text()


@pytest.mark.parametrize("metric", ["log_loss", "roc_auc"])
def test_the_holdout_chooses_by_the_competitions_metric(kfold, tmp_path, metric):
    """With fold groups and a holdout, the vote's holdout scores every candidate in the metric
    (each equal to scikit-learn's on the fold means' probabilities there) and its headline is the
    chosen candidate's holdout figure in it."""
    from sklearn.metrics import log_loss, roc_auc_score

    from ensemble import vote
    from ensemble.workflows.gather import gather

    groups = {"bert": f"{kfold}/bert-fold{{fold}}/model", "b": f"{kfold}/perm-fold{{fold}}/model"}
    data = {"train": kfold / "train.csv", "valid": kfold / "valid.csv", "test": kfold / "test.csv"}
    where = dict(cache_dir=kfold / "cache", folds=kfold / "folds.csv")
    vote(groups, data, "auto", metric=metric, out=tmp_path / "s.csv", weights_dir=tmp_path / "w", **where)
    side = json.loads((tmp_path / "s.csv.json").read_text())
    h, head = side["auto"]["holdout"], side["headline"]
    assert h["metric"] == metric and head["metric"] == metric and head["of"] == "holdout"
    assert head["estimate"] == pytest.approx(h["scores"][head["method"].split("-")[0]]["score"])
    al = gather(groups, data, "valid", **where)
    p = np.mean([_softmax(a) for a in al.arrays], axis=0)  # uniform over the fold means
    ref = log_loss(al.y, p, labels=range(p.shape[1])) if metric == "log_loss" else roc_auc_score(
        al.y, p, multi_class="ovr")
    assert h["scores"]["uniform"]["score"] == pytest.approx(ref)
    if metric == "log_loss":  # what the refits did, positive when they helped: a loss went down
        from ensemble import report

        rep = report({**groups, "full": f"{kfold}/bert-full/model"}, data, refit={"full": "bert"}, metric=metric,
                     adjust="none", check_shift=False, methods=["acc"], **where)
        c, s = rep.holdout["choice"], rep.holdout["scores"]
        assert rep.holdout["refits_gain"] == pytest.approx(s[c]["score"] - s[c + " with refits"]["score"])
        # a scikit-learn scorer's name is compared by auto; the holdout decides by accuracy then
        scorer = report(groups, data, metric="balanced_accuracy", adjust="none", check_shift=False,
                        methods=["acc"], **where)
        assert scorer.holdout["metric"] == "accuracy"


def test_ragged_outputs_out_of_fold_and_their_fold_mean(tmp_path):
    """Per-unit outputs (a row of units each): fold model k's rows, its tags in any order, put
    back in the training split's row order by the task's alignment; and on another split the mean
    of each unit over the fold models."""
    from ensemble.core.outputs import Ragged
    from ensemble.data.splits import load_split
    from ensemble.tasks import task_named
    from ensemble.workflows.foldgroups import fold_mean, open_training_folds, out_of_fold

    rng = np.random.default_rng(0)
    tags = ("O", "B-X", "I-X")
    n = 9
    pd.DataFrame({"id": [f"r{i}" for i in range(n)], "text": ["abc"] * n}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"id": [f"r{i}" for i in range(n)], "fold": [i % 3 for i in range(n)]}).to_csv(tmp_path / "folds.csv",
                                                                                              index=False)
    training = open_training_folds(load_split(tmp_path / "train.csv"), tmp_path / "folds.csv")
    lengths = rng.integers(0, 4, size=n)
    full = [rng.dirichlet(np.ones(3), size=m) for m in lengths]  # each row's units, in tags' order
    parts = []
    for k in range(3):
        rows = training.rows(k)[::-1]  # a fold model's rows in an order of its own
        order = [2, 0, 1] if k == 1 else [0, 1, 2]
        values = np.concatenate([full[r][:, order] for r in rows])
        offsets = np.concatenate([[0], np.cumsum(lengths[rows])])
        parts.append(Ragged(np.array([f"r{r}" for r in rows]), values, offsets, tuple(tags[j] for j in order),
                            f"g-fold{k}"))
    entities = task_named("entities")
    oof = out_of_fold(parts, training, "g", entities)
    assert list(oof.ids) == [f"r{i}" for i in range(n)] and tuple(oof.labels) == tags
    for i in range(n):
        np.testing.assert_allclose(oof.values[oof.offsets[i]:oof.offsets[i + 1]], full[i])
    same_rows = [Ragged(np.array([f"r{i}" for i in range(n)]), np.concatenate(full) * s, np.concatenate(
        [[0], np.cumsum(lengths)]), tags, f"g-fold{k}") for k, s in enumerate((0.5, 1.0, 1.5))]
    mean = fold_mean(same_rows, "g", entities)
    np.testing.assert_allclose(mean.values, np.concatenate(full))
