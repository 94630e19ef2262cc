"""Regression and multi-label members end to end: real tiny Trainer runs (a sentence-pair
regressor on KLUE-STS, a multi-target regressor, multi-label taggers on the Korean hate-speech
comments with one member's labels in another order), predicted through the CLI, voted and
reported; every figure against an independent reference (the model's own forward pass, numpy,
scipy, scikit-learn)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main
from ensemble.cli.columns_example import train_value_run

DATA = Path(__file__).resolve().parents[1] / "data"
HATE_LABELS = ("gender", "other_bias", "offensive", "hate")


def _write(path: Path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _last_checkpoint(run: Path) -> Path:
    return max(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def _forward(folder: Path, texts) -> np.ndarray:
    """The model's own outputs, one row at a time (no batching, no padding)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for i in range(len(texts[0])):
            enc = tok(*[[t[i]] for t in texts], return_tensors="pt", truncation=True, max_length=128)
            out.append(model(**enc).logits[0].numpy())
    return np.asarray(out, dtype=np.float64)


@pytest.fixture(scope="module")
def sts(tmp_path_factory):
    """Two single-target and two three-target regressors trained on 300 KLUE-STS pairs; the
    three-target ones: one names its targets, one does not (matched by position)."""
    root = tmp_path_factory.mktemp("sts")
    with open(DATA / "klue-sts" / "sts-pairs.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    train, valid, test = rows[:300], rows[300:440], rows[440:]
    cols = ["id", "sentence1", "sentence2", "score", "real_score", "spread"]
    _write(root / "valid.csv", cols, [[r[c] for c in cols] for r in valid])
    _write(root / "test.csv", cols[:3], [[r[c] for c in cols[:3]] for r in test])
    _write(root / "sample.csv", ["id", "score"], [[r["id"], "0"] for r in test])
    pairs = lambda rs: ([r["sentence1"] for r in rs], [r["sentence2"] for r in rs])  # noqa: E731
    targets = lambda rs, names: np.array([[float(r[n]) for n in names] for r in rs])  # noqa: E731
    vocab = [t for r in train for t in (r["sentence1"], r["sentence2"])]
    members = {}
    for name, names, head, seed in (("one-a", ["score"], ["score"], 0), ("one-b", ["score"], None, 1),
                                    ("three-a", ["score", "real_score", "spread"],
                                     ["score", "real_score", "spread"], 2),
                                    ("three-b", ["score", "real_score", "spread"], None, 3)):
        train_value_run(root / name, pairs(train), targets(train, names), problem_type="regression", names=head,
                        valid_texts=pairs(valid), valid_targets=targets(valid, names), vocab_texts=vocab, seed=seed,
                        epochs=4, steps=50, learning_rate=6e-3)
        members[name] = _last_checkpoint(root / name)
    return root, members, pairs(valid), targets(valid, ["score", "real_score", "spread"]), pairs(test)


def _predict(root, members, *extra):
    args = ["predict", "--data", f"valid={root / 'valid.csv'}", "--data", f"test={root / 'test.csv'}",
            "--cache-dir", str(root / "cache"), *extra]
    for n, p in members.items():
        args += ["--model", f"{n}={p}"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output


def test_sentence_pair_regressor_is_voted_as_the_mean_of_its_forward_passes(sts, tmp_path):
    from scipy.stats import pearsonr, spearmanr

    from ensemble import gather, report, vote

    root, members, valid_texts, y, test_texts = sts
    one = {n: members[n] for n in ("one-a", "one-b")}
    _predict(root, one, "--text", "sentence1", "--text", "sentence2", "--label", "score")
    data = {"valid": root / "valid.csv", "test": root / "test.csv"}
    columns = {"text": ["sentence1", "sentence2"], "label": "score"}
    frame = vote(one, data, "uniform", cache_dir=root / "cache", columns=columns, submissions_dir=tmp_path,
                 sample_submission=root / "sample.csv")
    forward = np.mean([_forward(p, test_texts) for p in one.values()], axis=0)  # numpy mean of the models' own
    assert list(frame.columns) == ["id", "score"]
    np.testing.assert_allclose(frame["score"].to_numpy(dtype=float), forward[:, 0], atol=1e-4)
    assert frame["score"].std() > 0  # a regression head read as one class would submit a constant
    rep = report(one, data, cache_dir=root / "cache", columns=columns)
    assert rep.task == "regression" and rep.metric == "pearson"
    cached = gather(one, {"valid": root / "valid.csv"}, cache_dir=root / "cache", columns=columns)
    for i, (n, p) in enumerate(one.items()):
        np.testing.assert_allclose(cached.arrays[i][:, 0], _forward(p, valid_texts)[:, 0], atol=1e-5)
        own = cached.arrays[i][:, 0].astype(np.float64)
        assert rep.members[n]["pearson"] == pytest.approx(pearsonr(own, y[:, 0])[0], abs=1e-4)
        assert rep.members[n]["spearman"] == pytest.approx(spearmanr(own, y[:, 0])[0], abs=1e-3)
        assert rep.members[n]["rmse"] == pytest.approx(np.sqrt(np.mean((own - y[:, 0]) ** 2)), abs=1e-4)
    uniform = rep.estimates["uniform"]
    mean_valid = np.mean([a[:, 0].astype(np.float64) for a in cached.arrays], axis=0)
    assert uniform.apparent["pearson"] == pytest.approx(pearsonr(mean_valid, y[:, 0])[0], abs=1e-4)
    assert rep.headline["metric"] == "pearson" and "pearson" in rep.to_text().splitlines()[0]
    assert "<img" in rep.to_html()  # the predicted-versus-true scatter


def test_vote_auto_says_the_cross_validated_pearson(sts, tmp_path):
    root, members, *_ = sts
    one = {n: members[n] for n in ("one-a", "one-b")}
    _predict(root, one, "--text", "sentence1", "--text", "sentence2", "--label", "score")
    args = ["vote", "--data", f"valid={root / 'valid.csv'}", "--data", f"test={root / 'test.csv'}", "--text",
            "sentence1", "--text", "sentence2", "--label", "score", "--cache-dir", str(root / "cache"),
            "--weights", "auto", "--out", str(tmp_path / "sub.csv")]
    for n, p in one.items():
        args += ["--model", f"{n}={p}"]
    handler = _Capture()
    logging.getLogger("ensemble").addHandler(handler)
    try:
        r = CliRunner().invoke(main, args)
    finally:
        logging.getLogger("ensemble").removeHandler(handler)
    assert r.exit_code == 0, r.output
    said = "\n".join(handler.lines) + r.output
    assert "cross-validated pearson 0." in said or "cross-validated pearson -0." in said
    sidecar = json.loads((tmp_path / "sub.csv.json").read_text())
    assert sidecar["task"] == "regression" and sidecar["headline"]["metric"] == "pearson"


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_several_targets_match_by_name_or_by_the_mapping_said_once(sts, tmp_path):
    from ensemble import report, vote
    from ensemble.core.errors import EnsembleError

    root, members, valid_texts, y, test_texts = sts
    three = {n: members[n] for n in ("three-a", "three-b")}
    label = "score,real_score,spread"
    _predict(root, three, "--text", "sentence1", "--text", "sentence2", "--label", label)
    data = {"valid": root / "valid.csv", "test": root / "test.csv"}
    columns = {"text": ["sentence1", "sentence2"], "label": ["score", "real_score", "spread"]}
    said = {"three-b": ["score", "real_score", "spread"]}
    kw = dict(cache_dir=root / "cache", submissions_dir=tmp_path, weights_dir=tmp_path)
    # three-b's head says LABEL_0..2: by position, reordering the label columns would move its outputs
    with pytest.raises(EnsembleError, match=r"three-b does not name its outputs .*outputs=\{'three-b'"):
        vote(three, data, "optimize", columns=columns, **kw)
    for bad, why in (({"three-b": ["score", "spread"]}, "each of its 3 outputs once"),
                     ({"three-a": ["spread", "score", "real_score"], **said}, "contradicts its head"),
                     ({"three-b": ["score", "real_score", "nope"]}, "'nope', which is not a label column"),
                     ({"three-c": ["score"], **said}, "'three-c', which is not a member")):
        with pytest.raises(EnsembleError, match=why):
            vote(three, data, "uniform", columns=columns, outputs=bad, **kw)
    frame = vote(three, data, "optimize", columns=columns, outputs=said, **kw)
    assert list(frame.columns) == ["id", "score", "real_score", "spread"]
    # the mapping said once, names decide: the label columns listed in another order move nothing
    shuffled = {**columns, "label": ["spread", "score", "real_score"]}
    again = vote(three, data, "optimize", columns=shuffled, outputs=said, **{**kw, "name": "shuffled"})
    np.testing.assert_allclose(again[["score", "real_score", "spread"]].to_numpy(dtype=float),
                               frame[["score", "real_score", "spread"]].to_numpy(dtype=float), atol=1e-9)
    w = frame.attrs["weights"]
    assert w.weights.shape == (2, 3) and np.allclose(w.weights.sum(axis=0), 1) and (w.weights >= 0).all()
    # the weights per target, applied to each model's own forward pass
    outs = [_forward(p, test_texts) for p in three.values()]
    expected = sum(w.weights[i] * outs[i] for i in range(2))
    np.testing.assert_allclose(frame[["score", "real_score", "spread"]].to_numpy(dtype=float), expected, atol=1e-4)
    rep = report(three, data, cache_dir=root / "cache", columns=columns, methods=["stack"], outputs=said)
    assert rep.metric == "mcrmse"
    own = [_forward(p, valid_texts) for p in three.values()]
    mcrmse = np.mean(np.sqrt(np.mean((np.mean(own, axis=0) - y) ** 2, axis=0)))
    assert rep.estimates["uniform"].apparent["mcrmse"] == pytest.approx(mcrmse, abs=1e-4)
    # the stack is scikit-learn's ridge per target on the members' outputs
    from sklearn.linear_model import RidgeCV

    from ensemble import gather

    stack = rep.estimates["stack"].weights
    cached = [a.astype(np.float64) for a in gather(three, {"valid": root / "valid.csv"}, cache_dir=root / "cache",
                                                   columns=columns, outputs=said).arrays]
    stacked = stack.combined(cached)
    for j in range(3):
        X = np.stack([o[:, j] for o in cached], axis=1)
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X, y[:, j])
        np.testing.assert_allclose(stacked[:, j], ridge.predict(X), atol=1e-6)


# ---------------------------------------------------------------------- multi-label


@pytest.fixture(scope="module")
def tags(tmp_path_factory):
    """Two multi-label taggers on the Korean hate-speech comments (gender, other bias, offensive,
    hate), the second trained with its labels in reversed order."""
    root = tmp_path_factory.mktemp("tags")
    with open(DATA / "korean-hate-speech" / "train-sample.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))

    def labels(r):
        return [float(r["contain_gender_bias"] == "True"), float(r["bias"] == "others"),
                float(r["hate"] == "offensive"), float(r["hate"] == "hate")]

    train, valid, test = rows[:150], rows[150:216], rows[216:]
    _write(root / "valid.csv", ["id", "text", *HATE_LABELS],
           [[f"v{i}", r["comments"], *map(int, labels(r))] for i, r in enumerate(valid)])
    _write(root / "test.csv", ["id", "text"], [[f"t{i}", r["comments"]] for i, r in enumerate(test)])
    _write(root / "joined.csv", ["id", "text", "labels"],
           [[f"v{i}", r["comments"], ",".join(n for n, v in zip(HATE_LABELS, labels(r)) if v)]
            for i, r in enumerate(valid)])
    texts = lambda rs: ([r["comments"] for r in rs],)  # noqa: E731
    y_train, y_valid = np.array([labels(r) for r in train]), np.array([labels(r) for r in valid])
    members = {}
    for name, order, seed in (("tag-a", [0, 1, 2, 3], 0), ("tag-b", [3, 2, 1, 0], 1)):
        train_value_run(root / name, texts(train), y_train[:, order], problem_type="multi_label_classification",
                        names=[HATE_LABELS[j] for j in order], valid_texts=texts(valid),
                        valid_targets=y_valid[:, order], vocab_texts=texts(train)[0], seed=seed, epochs=3, steps=30)
        members[name] = _last_checkpoint(root / name)
    return root, members, texts(valid), y_valid, texts(test)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_multilabel_members_vote_as_if_their_labels_agreed(tags, tmp_path):
    from sklearn.metrics import f1_score

    from ensemble import report, vote

    root, members, valid_texts, y, test_texts = tags
    _predict(root, members, "--label", ",".join(HATE_LABELS))
    data = {"valid": root / "valid.csv", "test": root / "test.csv"}
    columns = {"label": list(HATE_LABELS)}
    frame = vote(members, data, "uniform", cache_dir=root / "cache", columns=columns, submissions_dir=tmp_path,
                 proba=True, threshold=0.3)
    # tag-b's outputs are in reversed order: aligned by name, the mean of the sigmoids
    a = _sigmoid(_forward(members["tag-a"], test_texts))
    b = _sigmoid(_forward(members["tag-b"], test_texts))[:, ::-1]
    np.testing.assert_allclose(frame[list(HATE_LABELS)].to_numpy(dtype=float), (a + b) / 2, atol=1e-5)
    decided = vote(members, data, "uniform", cache_dir=root / "cache", columns=columns, submissions_dir=tmp_path,
                   threshold=0.3, name="decided")
    np.testing.assert_array_equal(decided[list(HATE_LABELS)].to_numpy(dtype=int), ((a + b) / 2 >= 0.3).astype(int))
    rep = report(members, data, cache_dir=root / "cache", columns=columns)
    assert rep.task == "multi_label" and rep.metric == "f1_micro"
    va = _sigmoid(_forward(members["tag-a"], valid_texts))
    assert rep.members["tag-a"]["f1_micro"] == pytest.approx(f1_score(y, va >= 0.5, average="micro", zero_division=0))
    assert rep.members["tag-a"]["f1_macro"] == pytest.approx(f1_score(y, va >= 0.5, average="macro", zero_division=0))
    e = rep.estimates["uniform"]
    for avg in ("micro", "macro", "samples"):  # the out-of-fold decisions, scored as scikit-learn scores them
        assert rep.estimates["uniform"].oof.shape == y.shape
        assert f1_score(y, e.oof, average=avg, zero_division=0) == pytest.approx(
            np.mean([f1_score(y, e.oof, average=avg, zero_division=0)]))
    assert e.cross_validated["f1_micro"] <= e.apparent["f1_micro"] + 0.05


def test_joined_labels_read_as_the_same_truth(tags):
    from ensemble import gather

    root, members, _, y, _ = tags
    _predict(root, members, "--label", ",".join(HATE_LABELS))
    cols = gather(members, {"valid": root / "valid.csv"}, cache_dir=root / "cache",
                  columns={"label": list(HATE_LABELS)})
    joined = gather(members, {"valid": root / "joined.csv"}, cache_dir=root / "cache",
                    columns={"label": "labels", "label_sep": ","})
    np.testing.assert_array_equal(cols.y, y)
    np.testing.assert_array_equal(joined.y[:, [joined.labels.index(n) for n in HATE_LABELS]], y)


# ---------------------------------------------------------------------- fold groups and refits


@pytest.fixture(scope="module")
def sts_folds(tmp_path_factory):
    """Two fold groups of single-target regressors (3 folds of 240 KLUE-STS pairs), a full-data
    refit of the first, a 100-pair holdout and a test split."""
    import shutil

    root = tmp_path_factory.mktemp("sts-folds")
    with open(DATA / "klue-sts" / "sts-pairs.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    train, valid, test = rows[:240], rows[240:340], rows[340:400]
    cols = ["id", "sentence1", "sentence2", "score"]
    _write(root / "train.csv", cols, [[r[c] for c in cols] for r in train])
    _write(root / "valid.csv", cols, [[r[c] for c in cols] for r in valid])
    _write(root / "test.csv", cols[:3], [[r[c] for c in cols[:3]] for r in test])
    fold = np.arange(len(train)) % 3
    _write(root / "folds.csv", ["id", "fold"], [[r["id"], int(k)] for r, k in zip(train, fold)])
    pairs = lambda rs: ([r["sentence1"] for r in rs], [r["sentence2"] for r in rs])  # noqa: E731
    y = lambda rs: np.array([[float(r["score"])] for r in rs])  # noqa: E731
    vocab = [t for r in rows for t in (r["sentence1"], r["sentence2"])]
    for g, seed in (("a", 0), ("b", 10)):
        for k in range(3):
            part = [r for r, f in zip(train, fold) if f != k]
            held = [r for r, f in zip(train, fold) if f == k]
            train_value_run(root / "runs" / f"{g}-fold{k}", pairs(part), y(part), problem_type="regression",
                            names=["score"], valid_texts=pairs(held), valid_targets=y(held), vocab_texts=vocab,
                            seed=seed + k, epochs=2, steps=40, learning_rate=5e-3)
            shutil.copytree(_last_checkpoint(root / "runs" / f"{g}-fold{k}"), root / f"{g}-fold{k}")
    train_value_run(root / "runs" / "a-full", pairs(train), y(train), problem_type="regression", names=["score"],
                    valid_texts=pairs(valid), valid_targets=y(valid), vocab_texts=vocab, seed=99, epochs=2, steps=40,
                    learning_rate=5e-3)
    shutil.copytree(_last_checkpoint(root / "runs" / "a-full"), root / "a-full")
    members = {"a": str(root / "a-fold{fold}"), "b": str(root / "b-fold{fold}"), "a_full": str(root / "a-full")}
    args = ["predict", "--data", f"train={root / 'train.csv'}", "--data", f"valid={root / 'valid.csv'}", "--data",
            f"test={root / 'test.csv'}", "--folds", str(root / "folds.csv"), "--text", "sentence1", "--text",
            "sentence2", "--label", "score", "--cache-dir", str(root / "cache")]
    for n, p in members.items():
        args += ["--model", f"{n}={p}"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return root, members, train, fold, pairs(train), pairs(test)


def test_fold_groups_give_out_of_fold_outputs_and_plain_means_on_test(sts_folds, tmp_path):
    from ensemble import gather, report, vote

    root, members, train, fold, train_texts, test_texts = sts_folds
    groups = {n: members[n] for n in ("a", "b")}
    data = {"train": root / "train.csv", "valid": root / "valid.csv", "test": root / "test.csv"}
    columns = {"text": ["sentence1", "sentence2"], "label": "score"}
    oof = gather(groups, data, "train", folds=root / "folds.csv", cache_dir=root / "cache", columns=columns)
    for k in range(3):  # each row's output comes from the fold model that never saw it
        rows = np.flatnonzero(fold == k)
        own = _forward(root / f"a-fold{k}", tuple([t[i] for i in rows] for t in train_texts))
        np.testing.assert_allclose(oof.arrays[0][rows], own, atol=1e-4)
    on_test = gather(groups, data, "test", folds=root / "folds.csv", cache_dir=root / "cache", columns=columns)
    mean = np.mean([_forward(root / f"a-fold{k}", test_texts) for k in range(3)], axis=0)
    np.testing.assert_allclose(on_test.arrays[0], mean, atol=1e-4)  # the mean of the outputs: never a softmax
    rep = report(groups, data, folds=root / "folds.csv", cache_dir=root / "cache", columns=columns)
    assert rep.where == "out-of-fold" and rep.rows == len(train) and rep.holdout["rows"] == 100
    assert rep.headline["of"] == "holdout" and rep.choice in rep.estimates
    # the vote chooses as the report does: on the holdout, every candidate fitted on the OOF rows
    auto = vote(groups, data, "auto", folds=root / "folds.csv", cache_dir=root / "cache", columns=columns,
                submissions_dir=tmp_path / "auto", weights_dir=tmp_path / "w")
    assert auto.attrs["headline"]["of"] == "holdout" and auto.attrs["headline"]["method"] == rep.choice
    assert auto.attrs["headline"]["estimate"] == pytest.approx(rep.headline["estimate"])
    # a refit takes its group's place on test, with the group's weight
    frame = vote(members, data, "uniform", folds=root / "folds.csv", refit={"a_full": "a"}, cache_dir=root / "cache",
                 columns=columns, submissions_dir=tmp_path)
    b_mean = np.mean([_forward(root / f"b-fold{k}", test_texts) for k in range(3)], axis=0)
    refit = _forward(root / "a-full", test_texts)
    np.testing.assert_allclose(frame["score"].to_numpy(dtype=float), ((refit + b_mean) / 2)[:, 0], atol=1e-4)
    sidecar = json.loads((Path(frame.attrs["path"]).with_name(Path(frame.attrs["path"]).name + ".json")).read_text())
    assert sidecar["task"] == "regression"


def test_a_weights_file_is_reused_and_checked(sts, tmp_path):
    from ensemble import vote
    from ensemble.core.errors import EnsembleError

    root, members, *_ = sts
    three = {n: members[n] for n in ("three-a", "three-b")}
    _predict(root, three, "--text", "sentence1", "--text", "sentence2", "--label", "score,real_score,spread")
    data = {"valid": root / "valid.csv", "test": root / "test.csv"}
    columns = {"text": ["sentence1", "sentence2"], "label": ["score", "real_score", "spread"]}
    said = {"three-b": ["score", "real_score", "spread"]}
    first = vote(three, data, "select", cache_dir=root / "cache", columns=columns, submissions_dir=tmp_path / "a",
                 weights_dir=tmp_path / "w", outputs=said)
    path = tmp_path / "w" / "ensemble-select.json"
    again = vote(three, data, str(path), cache_dir=root / "cache", columns=columns, submissions_dir=tmp_path / "b",
                 outputs=said)
    assert again.drop(columns="id").equals(first.drop(columns="id"))
    # the mapping is part of what the weights were fitted on: another one is refused, never applied
    with pytest.raises(EnsembleError, match="stale: three-b's outputs were named score, real_score, spread when"):
        vote(three, data, str(path), cache_dir=root / "cache", columns=columns, submissions_dir=tmp_path / "d",
             outputs={"three-b": ["real_score", "score", "spread"]})
    edited = root / "valid-edited.csv"
    text = (root / "valid.csv").read_text(encoding="utf-8").splitlines()
    head, row = text[0], text[1].rsplit(",", 1)
    edited.write_text("\n".join([head, f"{row[0]},{float(row[1]) + 1}", *text[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(EnsembleError, match="stale: the labels of"):  # refitted on other labels: refused
        vote(three, {**data, "valid": edited}, str(path), cache_dir=root / "cache", columns=columns,
             submissions_dir=tmp_path / "c", outputs=said)


def test_a_task_said_by_the_user_reads_a_head_saved_without_its_problem_type(tags, tmp_path):
    import shutil

    from ensemble import vote
    from ensemble.core.errors import EnsembleError

    root, members, _, _, _ = tags
    bare = tmp_path / "bare"
    shutil.copytree(members["tag-a"], bare)
    config = json.loads((bare / "config.json").read_text())
    config.pop("problem_type")  # trained with BCE by hand: config.json says a single-label classifier
    (bare / "config.json").write_text(json.dumps(config))
    data = {"valid": root / "valid.csv", "test": root / "test.csv"}
    columns = {"label": list(HATE_LABELS)}
    cache = tmp_path / "cache"
    args = ["predict", "--model", f"bare={bare}", "--data", f"valid={data['valid']}", "--data", f"test={data['test']}",
            "--label", ",".join(HATE_LABELS), "--cache-dir", str(cache)]
    refused = CliRunner().invoke(main, args)  # read as a classifier, its 0/1 label columns do not fit
    assert refused.exit_code == 1
    done = CliRunner().invoke(main, [*args, "--task", "multi_label"])
    assert done.exit_code == 0, done.output
    said = vote({"bare": bare}, data, "uniform", task="multi_label", cache_dir=cache, columns=columns, proba=True,
                submissions_dir=tmp_path / "s", threshold=0.5)
    _predict(root, {"tag-a": members["tag-a"]}, "--label", ",".join(HATE_LABELS))
    own = vote({"tag-a": members["tag-a"]}, data, "uniform", cache_dir=root / "cache", columns=columns, proba=True,
               submissions_dir=tmp_path / "o", threshold=0.5)
    np.testing.assert_allclose(said[list(HATE_LABELS)].to_numpy(float), own[list(HATE_LABELS)].to_numpy(float),
                               atol=1e-6)
    with pytest.raises(EnsembleError, match="task must be one of classification, regression, multi_label, entities, "
                                            "summarization; got 'translation'"):
        vote({"bare": bare}, data, task="translation", cache_dir=cache, columns=columns)
    with pytest.raises(EnsembleError, match="the generation forward runs sequence-to-sequence generation"):
        vote({"bare": bare}, data, task="summarization", cache_dir=cache, columns=columns)
    with pytest.raises(EnsembleError, match="ForTokenClassification"):  # a sequence head is no entities member
        vote({"bare": bare}, data, task="ner", cache_dir=cache, columns=columns)


def test_clipping_keeps_outputs_in_the_training_labels_range(sts, tmp_path):
    from ensemble import vote

    root, members, *_ = sts
    one = {n: members[n] for n in ("one-a", "one-b")}
    _predict(root, one, "--text", "sentence1", "--text", "sentence2", "--label", "score")
    with open(DATA / "klue-sts" / "sts-pairs.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:300]
    # a training file whose labels span less than the members' outputs do: clipped to [2, 3]
    _write(tmp_path / "train.csv", ["id", "sentence1", "sentence2", "score"],
           [[r["id"], r["sentence1"], r["sentence2"], min(max(float(r["score"]), 2.0), 3.0)] for r in rows])
    data = {"train": tmp_path / "train.csv", "valid": root / "valid.csv", "test": root / "test.csv"}
    columns = {"text": ["sentence1", "sentence2"], "label": "score"}
    plain = vote(one, data, "uniform", cache_dir=root / "cache", columns=columns, submissions_dir=tmp_path / "a")
    clipped = vote(one, data, "uniform", cache_dir=root / "cache", columns=columns, submissions_dir=tmp_path / "b",
                   clip=True)
    w = clipped.attrs["weights"]
    assert [float(w.clip[0][0]), float(w.clip[1][0])] == [2.0, 3.0]
    np.testing.assert_allclose(clipped["score"], np.clip(plain["score"], 2.0, 3.0))
    # without a training file: the range of the rows the weights are fitted on
    valid = vote(one, {k: v for k, v in data.items() if k != "train"}, "uniform", cache_dir=root / "cache",
                 columns=columns, submissions_dir=tmp_path / "c", clip=True).attrs["weights"]
    y = np.array([float(r["score"]) for r in csv.DictReader(open(root / "valid.csv", encoding="utf-8"))])
    assert [float(valid.clip[0][0]), float(valid.clip[1][0])] == [y.min(), y.max()]


def test_without_a_holdout_the_fold_means_squared_error_is_decomposed(sts_folds):
    from ensemble import report

    root, members, train, fold, train_texts, test_texts = sts_folds
    groups = {n: members[n] for n in ("a", "b")}
    data = {"train": root / "train.csv", "test": root / "test.csv"}  # no holdout
    columns = {"text": ["sentence1", "sentence2"], "label": "score"}
    rep = report(groups, data, folds=root / "folds.csv", cache_dir=root / "cache", columns=columns,
                 methods=["score"])
    f = rep.fold_mean
    e = rep.estimates[rep.choice]
    y = np.array([[float(r["score"])] for r in train])
    # the fold-k ensemble from each fold model's own forward pass on the test rows
    fold_preds = [e.weights.combined([_forward(root / f"{g}-fold{k}", test_texts) for g in ("a", "b")])
                  for k in range(3)]
    q = np.asarray(fold_preds)
    expected = np.mean((e.oof - y) ** 2) - np.mean((q - q.mean(axis=0)) ** 2)
    assert f["mse"][0] == pytest.approx(expected, abs=1e-6) and f["rmse"][0] == pytest.approx(np.sqrt(expected))
    assert f["mse"][0] <= f["oof_mse"][0]  # the fold mean is at least as good as one fold model on average
    assert "fold mean of" in rep.to_text() and rep.to_dict()["fold_mean"]["method"] == rep.choice


def test_a_holdout_made_of_training_rows_is_not_called_untouched(sts_folds, tmp_path):
    """The column tasks' holdout has the overlap check classification's has: 100 training pairs
    given as the holdout, their spacing and case changed, are counted, and the headline of the
    report and of the vote says the holdout is NOT untouched."""
    from ensemble import report, vote

    root, members, train, fold, train_texts, test_texts = sts_folds
    rows = [[r["id"] + "-h", "  " + r["sentence1"].upper() + " ", r["sentence2"].replace(" ", "  "), r["score"]]
            for r in train[:100]]
    _write(tmp_path / "valid.csv", ["id", "sentence1", "sentence2", "score"], rows)
    groups = {n: members[n] for n in ("a", "b")}
    data = {"train": root / "train.csv", "valid": tmp_path / "valid.csv", "test": root / "test.csv"}
    columns = {"text": ["sentence1", "sentence2"], "label": "score"}
    args = ["predict", "--data", f"valid={tmp_path / 'valid.csv'}", "--folds", str(root / "folds.csv"), "--data",
            f"train={root / 'train.csv'}", "--text", "sentence1", "--text", "sentence2", "--label", "score",
            "--cache-dir", str(root / "cache"), "-q", *[x for n, p in groups.items() for x in ("--model", f"{n}={p}")]]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    rep = report(groups, data, folds=root / "folds.csv", cache_dir=root / "cache", columns=columns)
    assert rep.holdout["overlap"] == 100
    assert "NOT untouched: 100 of its rows are also training rows" in rep.to_text().splitlines()[0]
    auto = vote(groups, data, "auto", folds=root / "folds.csv", cache_dir=root / "cache", columns=columns,
                out=tmp_path / "s.csv", weights_dir=tmp_path / "w")
    assert auto.attrs["headline"]["of"] == "holdout" and "NOT untouched" in auto.attrs["headline"]["note"]


def test_with_refits_and_no_holdout_the_headline_says_its_figure_is_not_of_the_submission(sts_folds, tmp_path):
    from ensemble import report, vote

    root, members, train, fold, train_texts, test_texts = sts_folds
    data = {"train": root / "train.csv", "test": root / "test.csv"}
    columns = {"text": ["sentence1", "sentence2"], "label": "score"}
    rep = report(members, data, folds=root / "folds.csv", refit={"a_full": "a"}, cache_dir=root / "cache",
                 columns=columns)
    assert rep.headline["of"] == "out-of-fold" and "not of what is submitted" in rep.headline["note"]
    assert "(what is submitted;" not in rep.to_text()
    sub = vote(members, data, "auto", folds=root / "folds.csv", refit={"a_full": "a"}, cache_dir=root / "cache",
               columns=columns, out=tmp_path / "s.csv", weights_dir=tmp_path / "w")
    assert "not of what is submitted" in (sub.attrs["headline"].get("note") or "")


def test_the_column_leaderboard_shows_the_holdout_figures_the_headline_uses(sts_folds):
    from ensemble import report

    root, members, train, fold, train_texts, test_texts = sts_folds
    groups = {n: members[n] for n in ("a", "b")}
    data = {"train": root / "train.csv", "valid": root / "valid.csv"}
    rep = report(groups, data, folds=root / "folds.csv", cache_dir=root / "cache",
                 columns={"text": ["sentence1", "sentence2"], "label": "score"})
    board = rep.leaderboard()
    assert rep.headline["of"] == "holdout" and set(board["of"]) == {"holdout"}
    assert board.loc[rep.choice, "honest"] == pytest.approx(rep.headline["estimate"])
    for m, e in rep.estimates.items():  # optimism: apparent minus the same rows' out-of-fold figure
        assert board.loc[m, "optimism"] == pytest.approx(e.apparent[rep.metric] - e.cross_validated[rep.metric])
    assert set(board["auto"]) <= {"candidate", "not considered"}


def test_with_a_holdout_refits_and_fold_means_are_both_candidates(sts_folds, tmp_path):
    from ensemble import report, vote

    root, members, train, fold, train_texts, test_texts = sts_folds
    data = {"train": root / "train.csv", "valid": root / "valid.csv", "test": root / "test.csv"}
    columns = {"text": ["sentence1", "sentence2"], "label": "score"}
    where = dict(folds=root / "folds.csv", refit={"a_full": "a"}, cache_dir=root / "cache", columns=columns)
    rep = report(members, data, check_shift=False, **where)
    h = rep.holdout
    assert "uniform" in h["scores"] and "uniform with refits" in h["scores"] and h["decided_on"] in ("refits", "fold means")
    key = rep.choice + (" with refits" if h["decided_on"] == "refits" else "")
    assert rep.headline["estimate"] == pytest.approx(h["scores"][key]["score"])
    assert "between the fold means and the refits" in rep.to_text()
    sub = vote(members, data, "auto", out=tmp_path / "s.csv", weights_dir=tmp_path / "w", **where)
    assert sub.attrs["headline"]["estimate"] == pytest.approx(rep.headline["estimate"])
    side = json.loads((tmp_path / "s.csv.json").read_text())
    b_mean = np.mean([_forward(root / f"b-fold{k}", test_texts) for k in range(3)], axis=0)
    a = (_forward(root / "a-full", test_texts) if h["decided_on"] == "refits"
         else np.mean([_forward(root / f"a-fold{k}", test_texts) for k in range(3)], axis=0))
    assert side["refit"]["a"].get("used", True) == (h["decided_on"] == "refits")
    if rep.choice == "uniform":  # what was submitted: the refit, or group a's fold mean, beside b's
        np.testing.assert_allclose(sub["score"].to_numpy(dtype=float), ((a + b_mean) / 2)[:, 0], atol=1e-4)
