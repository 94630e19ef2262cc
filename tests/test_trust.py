"""The outputs, labels and folds used are the ones asked for: cache entries of the settings in
force, members marked optimistic left out of the vote as of the report, class indices that do
not depend on the order of the members, headers and digests that catch an edit."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main
from ensemble.core.errors import EnsembleError
from ensemble.inference.cache import OutputCache

from .workflows.test_vote import project as project  # noqa: F401  (the fixture world reads)


@pytest.fixture(scope="module")
def world(project):
    """test_cli_vote's project: bert, perm (bert with its classes in another order) and early, 40
    labelled validation rows and 24 test rows, every member's logits cached."""
    return project


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _models(root, *names):
    return [x for n in names for x in ("--model", f"{n}={root / n}")]


def _data(root):
    return ["--data", f"valid={root / 'valid.csv'}", "--data", f"test={root / 'test.csv'}"]


@contextlib.contextmanager
def _said(caplog):
    """caplog's handler on the package's logger (the CLI's set-up stops it propagating)."""
    logger = logging.getLogger("ensemble")
    logger.addHandler(caplog.handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)


def _copy_cache(world, tmp_path) -> Path:
    shutil.copytree(world / "cache", tmp_path / "cache")
    return tmp_path / "cache"


# ---------------------------------------------------------------- the settings in force
def test_an_experiment_with_other_settings_is_never_read_as_the_default(world, tmp_path, monkeypatch):
    """``predict --max-length 4`` as an experiment writes the newest entry; vote, report, gather
    and run read the entry of the settings in force, say which they read, and prune removes the
    experiment's."""
    from ensemble import gather

    cache = _copy_cache(world, tmp_path)
    members = {"bert": world / "bert", "early": world / "early"}
    data = {"valid": world / "valid.csv", "test": world / "test.csv"}
    default = gather(members, data, cache_dir=cache)
    result = _cli("predict", *_models(world, "bert", "early"), *_data(world), "--max-length", 4, "--cache-dir", cache,
                  "-q")
    assert result.exit_code == 0, result.output
    assert len(OutputCache(cache).entries()) == 3 * 2 + 2 * 2  # the experiment's four beside the defaults
    again = gather(members, data, cache_dir=cache)
    for a, b in zip(again.arrays, default.arrays):
        np.testing.assert_array_equal(a, b)
    short = gather(members, data, cache_dir=cache, inference={"max_length": 4})
    assert not np.allclose(short.arrays[0], default.arrays[0])
    assert {lg.meta["settings"]["max_tokens"] for lg in short.logits} == {4}

    monkeypatch.chdir(tmp_path)
    vote = _cli("vote", *_models(world, "bert", "early"), *_data(world), "--cache-dir", cache, "--weights", "uniform",
                "--out", tmp_path / "s.csv")
    assert vote.exit_code == 0, vote.output
    sidecar = json.loads((tmp_path / "s.csv.json").read_text())
    assert sidecar["inference"]["requested"]["max_length"] is None
    assert {s["max_tokens"] for s in sidecar["inference"]["members"].values()} == {128}
    vote4 = _cli("vote", *_models(world, "bert", "early"), *_data(world), "--cache-dir", cache, "--weights", "uniform",
                 "--max-length", 4, "--out", tmp_path / "s4.csv")
    assert vote4.exit_code == 0, vote4.output
    assert json.loads((tmp_path / "s4.csv.json").read_text())["inference"]["requested"]["max_length"] == 4
    rep = _cli("report", *_models(world, "bert", "early"), *_data(world), "--cache-dir", cache, "--json")
    assert rep.exit_code == 0, rep.output
    assert {s["max_tokens"] for s in json.loads(rep.stdout)["inference"]["members"].values()} == {128}

    # asked for settings nothing was predicted with: one line naming what is cached
    missing = _cli("vote", *_models(world, "bert", "early"), *_data(world), "--cache-dir", cache, "--batch-size", 7,
                   "--out", tmp_path / "s7.csv")
    assert missing.exit_code == 1 and missing.stderr.count("\n") == 1
    assert "has no cached logits for" in missing.stderr and "entries of other settings: " in missing.stderr

    pruned = _cli("cache", "prune", *_models(world, "bert", "early"), *_data(world), "--cache-dir", cache)
    assert pruned.exit_code == 0 and "(bert/valid, other inference settings)" in pruned.stdout
    left = OutputCache(cache).entries()
    assert len(left) == 4 and {json.loads(e.metadata["settings"])["max_tokens"] for e in left} == {128}


def test_run_predicts_what_its_settings_ask_for(world, tmp_path, monkeypatch):
    """A project whose cache holds only an experiment's entries is not up to date; [predict]
    max_length makes the experiment's settings the project's."""
    project = tmp_path / "p"
    project.mkdir()
    for n in ("bert", "early"):
        shutil.copytree(world / n, project / n)
    toml = (f'[data]\nvalid = "{world / "valid.csv"}"\ntest = "{world / "test.csv"}"\n\n'
            '[models]\nbert = "bert"\nearly = "early"\n\n[vote]\nweights = "uniform"\n')
    (project / "ensemble.toml").write_text(toml)
    monkeypatch.chdir(project)
    result = _cli("predict", "--max-length", 4, "-q")
    assert result.exit_code == 0, result.output
    first = _cli("run")
    assert first.exit_code == 0, first.output
    assert "predict: 4 computed, 0 up to date in the cache" in first.stdout
    (project / "ensemble.toml").write_text(toml + "\n[predict]\nmax_length = 4\n")
    second = _cli("run")
    assert second.exit_code == 0, second.output
    assert "predict: all 4 (model, split) logits up to date" in second.stdout and "vote: up to date" not in second.stdout
    bad = toml + "\n[predict]\nmax_length = 0\n"
    (project / "ensemble.toml").write_text(bad)
    refused = _cli("run")
    assert refused.exit_code == 1 and "[predict] max_length: max_length must be a positive integer" in refused.stderr


# ---------------------------------------------------------------- trained_on_valid in the vote
def test_a_member_trained_on_valid_leaves_the_vote_as_it_leaves_the_report(world, tmp_path):
    from ensemble.workflows.report import report
    from ensemble.workflows.vote import vote

    members = {"bert": world / "bert", "early": world / "early", "perm": world / "perm"}
    data = {"valid": world / "valid.csv", "test": world / "test.csv"}
    frame = vote(members, data, "uniform", cache_dir=world / "cache", trained_on_valid=["early"],
                 out=tmp_path / "s.csv", weights_dir=tmp_path / "w")
    fitted = frame.attrs["weights"]
    assert fitted.models == ("bert", "perm")
    rep = report(members, {"valid": data["valid"]}, cache_dir=world / "cache", trained_on_valid=["early"])
    assert rep.excluded == ["early"] and rep.weights["uniform"] == {"bert": 0.5, "perm": 0.5}
    kept = vote(members, data, "uniform", cache_dir=world / "cache", trained_on_valid=["early"],
                include_optimistic=True, out=tmp_path / "k.csv", weights_dir=tmp_path / "w")
    assert kept.attrs["weights"].models == ("bert", "early", "perm")
    fixed = vote(members, data, "1,1,1", cache_dir=world / "cache", trained_on_valid=["early"], out=tmp_path / "f.csv")
    assert fixed.attrs["weights"].models == ("bert", "early", "perm")  # weights given by hand keep every member
    with pytest.raises(EnsembleError, match=r"trained_on_valid: 'nope' is not a member"):
        vote(members, data, "uniform", cache_dir=world / "cache", trained_on_valid=["nope"], out=tmp_path / "x.csv")


def test_run_leaves_a_trained_on_valid_member_out_and_revotes_when_the_flag_changes(world, tmp_path, monkeypatch):
    project = tmp_path / "p"
    project.mkdir()
    for n in ("bert", "early"):
        shutil.copytree(world / n, project / n)
    shutil.copytree(world / "cache", project / ".ensemble" / "cache")
    toml = (f'[data]\nvalid = "{world / "valid.csv"}"\ntest = "{world / "test.csv"}"\n\n'
            '[models]\nbert = "bert"\nearly = {{ path = "early", trained_on_valid = {} }}\n\n[vote]\nweights = "optimize"\n')
    (project / "ensemble.toml").write_text(toml.format("false"))
    monkeypatch.chdir(project)
    assert _cli("run").exit_code == 0
    (project / "ensemble.toml").write_text(toml.format("true"))
    result = _cli("run")
    assert result.exit_code == 0, result.output
    assert "vote: up to date" not in result.stdout
    sidecar = json.loads(next((project / "submissions").glob("*.csv.json")).read_text())
    assert set(sidecar["weights"]) == {"bert"}


# ---------------------------------------------------------------- integer labels
def test_integer_labels_never_depend_on_the_order_of_the_members(world, tmp_path):
    """Labels 0..C-1 with members whose class orders differ: mapped through the first member's
    id2label they would change with the listing order; refused, and read through class_order."""
    from ensemble import gather

    names = json.loads((world / "bert" / "config.json").read_text())["id2label"]
    order = [names[str(i)] for i in range(len(names))]
    valid = pd.read_csv(world / "valid.csv")
    valid["label"] = [order.index(v) for v in valid["label"]]
    valid.to_csv(tmp_path / "valid.csv", index=False)
    data = {"valid": tmp_path / "valid.csv"}
    shutil.copytree(world / "cache", tmp_path / "cache")
    for members in ({"bert": world / "bert", "perm": world / "perm"}, {"perm": world / "perm", "bert": world / "bert"}):
        with pytest.raises(EnsembleError, match=r"its labels are class indices, but the members number their classes "
                                                 r"differently .*pass class_order="):
            gather(members, data, cache_dir=world / "cache")
    named = gather({"bert": world / "bert", "perm": world / "perm"}, {"valid": world / "valid.csv"},
                   cache_dir=world / "cache")
    for members in ({"bert": world / "bert", "perm": world / "perm"}, {"perm": world / "perm", "bert": world / "bert"}):
        al = gather(members, data, cache_dir=world / "cache", class_order=",".join(order))
        assert [al.labels[i] for i in al.y] == [named.labels[i] for i in named.y]
    with pytest.raises(EnsembleError, match=r"class_order x,y does not name the members' classes"):
        gather({"bert": world / "bert"}, data, cache_dir=world / "cache", class_order="x,y")
    # one member (or members that agree): its own order, as before
    al = gather({"bert": world / "bert"}, data, cache_dir=world / "cache")
    assert [al.labels[i] for i in al.y] == list(pd.read_csv(world / "valid.csv")["label"])


# ---------------------------------------------------------------- headers and digests
def test_a_class_name_swapped_in_a_cache_header_is_a_damaged_entry(world, tmp_path):
    from ensemble import gather

    cache = _copy_cache(world, tmp_path)
    entry = next(e for e in OutputCache(cache).entries() if e.metadata["model"] == "bert" and e.metadata["split"] == "valid")
    labels = json.loads(entry.metadata["labels"])
    raw = entry.path.read_bytes()
    swapped = json.dumps(json.dumps([labels[1], labels[0], *labels[2:]]))[1:-1].encode()
    original = json.dumps(json.dumps(labels))[1:-1].encode()
    assert original in raw and len(swapped) == len(original)
    entry.path.write_bytes(raw.replace(original, swapped, 1))
    with pytest.raises(EnsembleError, match=r"a damaged entry was removed: .*header checksum mismatch"):
        gather({"bert": world / "bert"}, {"valid": world / "valid.csv"}, cache_dir=cache)


def test_an_edit_in_place_with_its_mtime_set_back_is_rehashed(tmp_path):
    from ensemble.io.hashing import DigestMemo, file_digest

    path = tmp_path / "model.safetensors"
    path.write_bytes(b"a" * 1000)
    old = 10**18
    os.utime(path, ns=(old, old))
    memo = DigestMemo(tmp_path / "digests.sqlite")
    import time

    time.sleep(2.1)  # past the racy window of the ctime too
    first = memo.digest(path)
    with open(path, "r+b") as f:  # the same size, the mtime set back: only the ctime moved
        f.write(b"b")
    os.utime(path, ns=(old, old))
    assert memo.digest(path) == file_digest(path) != first


def test_predict_proba_refuses_nan_as_fit_weights_does():
    from ensemble.tasks.classification.weighting import fit_weights

    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(20, 3)) for _ in range(2)]
    w = fit_weights(arrays, rng.integers(0, 3, 20), "uniform")
    arrays[1][3, 1] = np.nan
    with pytest.raises(EnsembleError, match=r"logits of .* hold NaN or infinite values"):
        w.predict_proba(arrays)


# ---------------------------------------------------------------- K-fold leakage
from .workflows.test_foldgroups import K  # noqa: E402
from .workflows.test_foldgroups import kfold as kfold  # noqa: E402,F401  (the fixture: K fold runs, a refit, cached logits)


def _fold_vote(kfold, tmp_path, *models, extra=()):
    from .workflows.test_foldgroups import _data, _in_empty_folder

    argv = ["vote", *[x for m in models for x in ("--model", m)], *_data(kfold), "--folds", kfold / "folds.csv",
            "--weights", "uniform", *extra]
    return _in_empty_folder(tmp_path, *map(str, argv))


def test_one_model_as_every_fold_model_is_refused(kfold, tmp_path):
    for k in range(K):
        shutil.copytree(kfold / "bert-full" / "model", tmp_path / f"full-fold{k}")
    result, files = _fold_vote(kfold, tmp_path, f"bert={tmp_path}/full-fold{{fold}}")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert "member bert: fold models 0 and 1 are the same model" in result.stderr and files == {}
    listed = [str(kfold / "bert-fold0" / "model")] * K
    from ensemble.workflows.members import resolve_members

    with pytest.raises(EnsembleError, match=r"listed as folds 0 and 1 of member bert"):
        resolve_members({"bert": listed}, K)


def test_fold_models_out_of_order_or_beyond_k_are_refused(kfold, tmp_path):
    from ensemble.workflows.members import resolve_members

    order = [kfold / f"bert-fold{k}" / "model" for k in (1, 0, 2)]
    with pytest.raises(EnsembleError, match=r"bert-fold1/model: its name says fold 1 but it is fold 0 of member bert"):
        resolve_members({"bert": order}, K)
    for k in range(K + 1):  # a fold K beside a folds file of K folds
        shutil.copytree(kfold / f"bert-fold{min(k, K - 1)}" / "model", tmp_path / f"x-fold{k}")
    with pytest.raises(EnsembleError, match=rf"x-fold{K}: a fold {K} of member bert exists, but the folds file has {K} "
                                            rf"folds"):
        resolve_members({"bert": f"{tmp_path}/x-fold{{fold}}"}, K)


def test_a_fold_model_far_above_its_logged_eval_accuracy_is_said(kfold, tmp_path, caplog):
    """Fold model k's checkpoint logged its eval_accuracy on fold k's rows; scoring far above it
    there means it saw them."""
    from .workflows.test_foldgroups import _data

    for k in range(K):
        ck = sorted((kfold / f"bert-fold{k}").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
        shutil.copytree(ck, tmp_path / f"ck-fold{k}")
        state = json.loads((ck / "trainer_state.json").read_text())
        for e in state["log_history"]:
            if "eval_accuracy" in e:
                e["eval_accuracy"] = 0.25 if k == 1 else e["eval_accuracy"]
        (tmp_path / f"ck-fold{k}" / "trainer_state.json").write_text(json.dumps(state))
    predict = _cli("predict", "--model", f"ck={tmp_path}/ck-fold{{fold}}", *_data(kfold), "--folds", kfold / "folds.csv",
                   "-q")
    assert predict.exit_code == 0, predict.output
    from ensemble import gather

    with _said(caplog):
        gather({"ck": f"{tmp_path}/ck-fold{{fold}}"}, {"train": kfold / "train.csv"}, "train",
               cache_dir=kfold / "cache", folds=kfold / "folds.csv")
    said = [r.getMessage() for r in caplog.records if "far above the eval_accuracy" in r.getMessage()]
    assert len(said) == 1 and "fold model 1" in said[0] and "0.250 its run logged" in said[0]


def test_a_holdout_that_overlaps_the_training_rows_is_not_called_untouched(kfold, tmp_path, caplog):
    from ensemble.workflows.report import report

    valid = pd.read_csv(kfold / "valid.csv")
    train = pd.read_csv(kfold / "train.csv")
    valid.loc[:9, "text"] = train["text"][:10].to_numpy()
    valid.to_csv(tmp_path / "valid.csv", index=False)
    predict = _cli("predict", "--model", f"bert={kfold}/bert-fold{{fold}}/model", "--data", f"valid={tmp_path / 'valid.csv'}",
                   "--data", f"train={kfold / 'train.csv'}", "--folds", kfold / "folds.csv", "--cache-dir",
                   kfold / "cache", "-q")
    assert predict.exit_code == 0, predict.output
    import logging

    said = []  # the package's logger (a CLI command above made it stop propagating to caplog)
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logging.getLogger("ensemble").addHandler(handler)
    try:
        rep = report({"bert": f"{kfold}/bert-fold{{fold}}/model"},
                     {"train": kfold / "train.csv", "valid": tmp_path / "valid.csv"}, cache_dir=kfold / "cache",
                     folds=kfold / "folds.csv", adjust="none")
    finally:
        logging.getLogger("ensemble").removeHandler(handler)
    overlap = len(set(valid["text"]) & set(train["text"]))
    assert overlap >= 10 and rep.holdout["overlap"] == sum(t in set(train["text"]) for t in valid["text"])
    assert f"NOT untouched: {rep.holdout['overlap']} of its rows are also training rows" in rep.to_text()
    assert sum("it is not an untouched holdout" in m for m in said) == 1  # said once, by the report
    from ensemble.workflows.vote import vote

    frame = vote({"bert": f"{kfold}/bert-fold{{fold}}/model"}, {"train": kfold / "train.csv", "valid": tmp_path / "valid.csv",
                 "test": kfold / "test.csv"}, "auto", cache_dir=kfold / "cache", folds=kfold / "folds.csv",
                 out=tmp_path / "s.csv")
    note = f"the holdout is NOT untouched: {rep.holdout['overlap']} of its rows are also training rows"
    assert frame.attrs["headline"]["of"] == "holdout" and frame.attrs["headline"]["note"] == note  # the vote says it there
    clean = report({"bert": f"{kfold}/bert-fold{{fold}}/model"}, {"train": kfold / "train.csv", "valid": kfold / "valid.csv"},
                   cache_dir=kfold / "cache", folds=kfold / "folds.csv", adjust="none")
    base = pd.read_csv(kfold / "valid.csv")  # template sentences: a few repeat a training row as they are
    assert clean.holdout["overlap"] == sum(t in set(train["text"]) for t in base["text"]) < rep.holdout["overlap"]
    (tmp_path / "unique.csv").write_text(base[~base["text"].isin(train["text"])].to_csv(index=False))
    predict = _cli("predict", "--model", f"bert={kfold}/bert-fold{{fold}}/model", "--data", f"valid={tmp_path / 'unique.csv'}",
                   "--data", f"train={kfold / 'train.csv'}", "--folds", kfold / "folds.csv", "--cache-dir",
                   kfold / "cache", "-q")
    assert predict.exit_code == 0, predict.output
    unique = report({"bert": f"{kfold}/bert-fold{{fold}}/model"}, {"train": kfold / "train.csv",
                    "valid": tmp_path / "unique.csv"}, cache_dir=kfold / "cache", folds=kfold / "folds.csv", adjust="none")
    assert unique.holdout["overlap"] == 0 and "untouched by every fit" in unique.to_text()


def test_a_folds_file_whose_training_file_changed_is_said(kfold, tmp_path):
    shutil.copy(kfold / "folds.csv", tmp_path / "folds.csv")
    shutil.copy(kfold / "folds.csv.json", tmp_path / "folds.csv.json")
    train = pd.read_csv(kfold / "train.csv")
    train.loc[0, "text"] = "changed"
    train.to_csv(tmp_path / "train.csv", index=False)
    result = _cli("folds", "show", tmp_path / "train.csv", "--folds", tmp_path / "folds.csv")
    assert result.exit_code == 0 and "changed since" in result.stderr and "remake the folds" in result.stderr
    same = _cli("folds", "show", kfold / "train.csv", "--folds", kfold / "folds.csv")
    assert same.exit_code == 0 and "changed since" not in same.stderr
    meta = json.loads((tmp_path / "folds.csv.json").read_text())
    meta["k"] = K + 1
    (tmp_path / "folds.csv.json").write_text(json.dumps(meta))
    other_k = _cli("folds", "show", kfold / "train.csv", "--folds", tmp_path / "folds.csv")
    assert other_k.exit_code == 1 and f"says it was made with k={K + 1}" in other_k.stderr


# ---------------------------------------------------------------- rough edges, one test each
def test_library_arguments_of_the_wrong_type_are_one_line_errors(world, tmp_path):
    from ensemble.averaging.build import average_checkpoints
    from ensemble.workflows.report import report
    from ensemble.workflows.vote import vote

    members = {"bert": world / "bert", "early": world / "early"}
    data = {"valid": world / "valid.csv", "test": world / "test.csv"}
    for weights in (123, None):
        with pytest.raises(EnsembleError, match=r"weights must be auto, one of .*; got (int 123|NoneType None)"):
            vote(members, data, weights, cache_dir=world / "cache", out=tmp_path / "s.csv")
    for weights in ([1, 3], np.array([1.0, 3.0])):  # a sequence of numbers is fixed weights
        frame = vote(members, data, weights, cache_dir=world / "cache", out=tmp_path / "s.csv")
        np.testing.assert_allclose(frame.attrs["weights"].weights, [0.25, 0.75])
    with pytest.raises(EnsembleError, match=r"got 3 weights, 2 models"):
        vote(members, data, [1, 2, 3], cache_dir=world / "cache", out=tmp_path / "s.csv")
    with pytest.raises(EnsembleError, match=r"data must map split names to data files"):
        vote(members, str(world / "valid.csv"), cache_dir=world / "cache")
    rep = report(members, str(world / "valid.csv"), cache_dir=world / "cache", adjust="none")  # one file: valid
    assert rep.rows == 40
    for folds in (0, 1, True):
        with pytest.raises(EnsembleError, match=r"folds must be 2 or more"):
            report(members, {"valid": world / "valid.csv"}, cache_dir=world / "cache", folds=folds)
    with pytest.raises(EnsembleError, match=r"k must be a number, 'auto' or a list like 2,3,4; got True"):
        average_checkpoints(world / "bert", k=True, out=tmp_path / "avg")
    with pytest.raises(EnsembleError, match=r"weights as large as 1e\+308 overflow"):
        vote(members, data, "1e308,1e308", cache_dir=world / "cache", out=tmp_path / "s.csv")


def test_accuracy_weights_to_a_huge_power_favour_the_best_instead_of_failing():
    from ensemble.tasks.classification.weighting import fit_weights

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    good = np.eye(3)[y] * 3 + rng.normal(size=(200, 3))
    weak = rng.normal(size=(200, 3))
    w = fit_weights([good, weak], y, "acc", acc_power=1e6)
    np.testing.assert_allclose(w.weights, [1.0, 0.0])


def test_an_interval_below_zero_is_called_a_sure_loss():
    from ensemble.estimates.resampling import interval_words

    assert interval_words(-0.19, -0.075) == "an interval below zero: a sure loss"
    assert interval_words(-0.02, 0.03) == "an interval that does not exclude zero"


def test_nfd_labels_are_the_classes_of_their_nfc_twins():
    import unicodedata

    from ensemble.core.combination import class_lookup

    nfc = ["혐오", "없음"]
    idx, bad = class_lookup([unicodedata.normalize("NFD", "없음"), "혐오"], nfc)
    assert bad is None and idx.tolist() == [1, 0]


def test_a_member_listed_twice_under_two_names_is_said(world, tmp_path, caplog):
    shutil.copytree(world / "bert", tmp_path / "twin")
    from ensemble.workflows.gather import CachedOutputs

    with _said(caplog):
        CachedOutputs({"bert": world / "bert", "twin": tmp_path / "twin"}, world / "cache").warn_duplicates()
    assert any("bert and twin are the same model" in r.getMessage() for r in caplog.records)


def test_a_closed_pipe_ends_the_listing_quietly(world, tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(f"{sys.executable} -m ensemble cache ls --cache-dir {world / 'cache'} | head -1", shell=True,
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr and "Logging error" not in proc.stderr, \
        proc.stderr


def test_the_page_draws_hangul_names_without_glyph_warnings(world, tmp_path, recwarn):
    from ensemble.workflows.report import report

    shutil.copytree(world / "bert", tmp_path / "버트")
    cache = _copy_cache(world, tmp_path)
    result = _cli("predict", "--model", f"버트={tmp_path / '버트'}", "--data", f"valid={world / 'valid.csv'}",
                  "--cache-dir", cache, "-q")
    assert result.exit_code == 0, result.output
    rep = report({"버트": tmp_path / "버트", "early": world / "early"}, {"valid": world / "valid.csv"}, cache_dir=cache,
                 adjust="none")
    assert "<img" in rep.to_html()
    assert not [w for w in recwarn if "Glyph" in str(w.message)]
    assert not [w for w in recwarn if "ConvergenceWarning" in type(w.message).__name__]


def test_run_with_a_report_that_fails_leaves_no_submission(tmp_path, monkeypatch):
    """300 classes over 200 validation rows: the report cannot cross-validate; the run used to
    write its submission and run.json first."""
    from .synthetic_members import make_members

    members, data, cache, labels = make_members(tmp_path, valid_rows=200, test_rows=20, models=2, classes=300)
    (tmp_path / "ensemble.toml").write_text('[data]\nvalid = "data/valid.csv"\ntest = "data/test.csv"\n\n[models]\n'
                                            + "".join(f'{n} = "models/{n}"\n' for n in members))
    monkeypatch.chdir(tmp_path)
    result = _cli("run", "--weights", "uniform")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert not (tmp_path / "submissions").exists() and not (tmp_path / ".ensemble" / "run.json").exists()
    assert not (tmp_path / "report.html").exists()


def test_messages_name_the_fix_of_the_face_the_user_is_in(world, runs, tmp_path, monkeypatch):
    from ensemble.averaging.build import average_checkpoints
    from ensemble.workflows.vote import vote

    with pytest.raises(EnsembleError, match=r"k=50 but only 6 checkpoint\(s\) logged eval_accuracy; pass k=6 or less"):
        average_checkpoints(runs.tok, k=50, out=tmp_path / "avg")
    with pytest.raises(EnsembleError, match=r"refit=\{'ghost': 'bert'\}: 'ghost' is not a member"):
        vote({"bert": world / "bert"}, {"test": world / "test.csv"}, cache_dir=world / "cache", refit={"ghost": "bert"})
    project = tmp_path / "p"
    project.mkdir()
    shutil.copytree(world / "cache", project / ".ensemble" / "cache")
    base = (f'[data]\nvalid = "{world / "valid.csv"}"\ntest = "{world / "test.csv"}"\n\n'
            f'[models]\nbert = "{world / "bert"}"\nearly = "{world / "early"}"\n\n[vote]\n')
    monkeypatch.chdir(project)
    (project / "ensemble.toml").write_text(base + 'weights = "uniform"\nadjust = "prior"\n')
    result = _cli("run")
    assert result.exit_code == 1 and 'set prior = "FILE" in [vote] of' in result.stderr and "--prior" not in \
        result.stderr, result.stderr
    (project / "ensemble.toml").write_text(base + 'weights = "stack"\n')
    result = _cli("run")
    assert result.exit_code == 0, result.output
    assert "vote: stack, a stacker over bert, early (no weight per member)" in result.stdout
    assert not [ln for ln in result.stdout.splitlines() if ln.startswith("vote: stack") and "=0.000" in ln]


def test_init_gives_each_fold_group_its_own_k(tmp_path):
    from ensemble.cli.init import init_project

    config = json.dumps({"architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b"}})
    for name, k in (("bert", 5), ("roberta", 4)):
        for i in range(k):
            ck = tmp_path / "runs" / f"{name}-fold{i}" / "checkpoint-2"
            ck.mkdir(parents=True)
            (ck / "config.json").write_text(config)
    text = init_project(tmp_path).read_text()
    assert "fitted on the training file's out-of-fold rows: bert (5 folds), roberta (4 folds)" in text
    assert "keep those of one K" in text
