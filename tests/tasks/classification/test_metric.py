"""The competition's metric decides a classifier ensemble: ROC AUC and quadratic weighted kappa
against scikit-learn, the rank average, and a vote whose fitting, ``auto``, headline, interval,
holdout and submission follow ``metric`` (every metric x every source of weights)."""

from __future__ import annotations

import json
from html import escape as html_escape

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata
from sklearn.metrics import cohen_kappa_score, f1_score, log_loss, roc_auc_score

from ensemble.core.combination import combine, softmax
from ensemble.core.errors import EnsembleError
from ensemble.core.scores import CLASS_METRICS, qwk, resampled_metric, roc_auc

# metric -> scikit-learn's value of probabilities p (n, C) against y
REFERENCE = {
    "accuracy": lambda p, y: float(np.mean(p.argmax(1) == y)),
    "macro_f1": lambda p, y: f1_score(y, p.argmax(1), average="macro", labels=np.unique(np.r_[y, p.argmax(1)])),
    "log_loss": lambda p, y: log_loss(y, p, labels=range(p.shape[1])),
    "roc_auc": lambda p, y: roc_auc_score(y, p[:, 1]) if p.shape[1] == 2 else roc_auc_score(y, p, multi_class="ovr"),
    "qwk": lambda p, y: cohen_kappa_score(y, p.argmax(1), weights="quadratic", labels=range(p.shape[1])),
}


def _probs(rng, n: int, C: int, signal: float = 1.5):
    y = rng.integers(0, C, n)
    z = rng.normal(size=(n, C))
    z[np.arange(n), y] += signal
    return softmax(np.round(z, 1)), y  # rounded: ties, which ROC AUC counts half


@pytest.mark.parametrize("C", [2, 3, 6])
@pytest.mark.parametrize("metric", list(CLASS_METRICS))
def test_every_metric_and_its_resamples_equal_scikit_learn(metric, C):
    rng = np.random.default_rng(C)
    p, y = _probs(rng, 300, C)
    idx = rng.integers(0, 300, (7, 300))
    batched = resampled_metric(metric, p, y, idx)
    assert batched.shape == (7,)
    for b, rows in enumerate(idx):
        assert batched[b] == pytest.approx(REFERENCE[metric](p[rows], y[rows]), abs=1e-12)
    assert {"roc_auc": roc_auc, "qwk": qwk}.get(metric, lambda p, y: REFERENCE[metric](p, y))(p, y) == pytest.approx(
        REFERENCE[metric](p, y))


def test_roc_auc_is_undefined_on_one_class_and_counts_only_classes_it_can_score():
    p = softmax(np.random.default_rng(0).normal(size=(5, 2)))
    assert np.isnan(roc_auc(p, np.zeros(5, dtype=int)))
    # three classes, one absent: the mean over the two that have positives and negatives
    rng = np.random.default_rng(1)
    p3, y3 = _probs(rng, 200, 3)
    y3[y3 == 2] = 0
    expect = np.mean([roc_auc_score(y3 == c, p3[:, c]) for c in (0, 1)])
    assert roc_auc(p3, y3) == pytest.approx(expect)


def test_the_rank_average_is_the_mean_of_each_members_ranks_and_ignores_their_calibration():
    """rank: the weighted mean of each member's ranks per class column, minus one half, over n
    (scipy's average ranks; two classes' rows still sum to 1); a member recalibrated by any increasing map leaves its AUC and the ensemble's alone,
    where the probability average moves."""
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n)
    z = [rng.normal(size=(n, 2)) + np.eye(2)[y] * s for s in (1.0, 0.6, 0.3)]
    w = np.array([0.5, 0.3, 0.2])
    expect = (sum(wi * rankdata(softmax(a), axis=0) for wi, a in zip(w, z)) - 0.5) / n
    assert np.allclose(combine(z, w, "rank"), expect) and np.allclose(expect.sum(axis=1), 1.0)
    squashed = list(z)
    squashed[2] = z[2] * 8.0  # over-confident: the same order of rows, other probabilities
    assert roc_auc(combine(squashed, w, "rank"), y) == pytest.approx(roc_auc(combine(z, w, "rank"), y))
    assert roc_auc(combine(squashed, w, "prob"), y) != pytest.approx(roc_auc(combine(z, w, "prob"), y))


def test_acc_and_best_weights_score_members_by_the_metric():
    """"acc" weights are each member's metric (the inverse of its log loss), "best" the member best
    by it: a member best by accuracy but worst by log loss is picked by accuracy and not by log
    loss."""
    from ensemble.tasks.classification.weighting import fit_weights

    rng = np.random.default_rng(4)
    n = 300
    y = rng.integers(0, 2, n)
    sure = np.where(rng.permutation(n) >= 45, y, 1 - y)  # right on 85% of the rows, and certain when wrong
    honest = np.where(rng.permutation(n) >= 75, y, 1 - y)  # right on 75%, never sure
    a = np.log(np.clip(np.eye(2)[sure] * 0.999 + 0.0005, 1e-9, None))
    b = np.log(np.eye(2)[honest] * 0.6 + 0.2)
    arrays = [a, b]
    for metric in CLASS_METRICS:
        values = np.array([REFERENCE[metric](softmax(x), y) for x in arrays])
        w = fit_weights(arrays, y, "acc", member_metric=metric).weights
        expect = 1 / values if metric == "log_loss" else np.maximum(values, 0)
        assert np.allclose(w, expect / expect.sum()), metric
        best = fit_weights(arrays, y, "best", member_metric=metric).weights
        pick = int(np.argmin(values) if metric == "log_loss" else np.argmax(values))
        assert best[pick] == 1.0, metric
    assert fit_weights(arrays, y, "best").weights[0] == 1.0  # accuracy: the sure one
    assert fit_weights(arrays, y, "best", member_metric="log_loss").weights[1] == 1.0
    with pytest.raises(EnsembleError, match="member_metric must be one of"):
        fit_weights(arrays, y, "acc", member_metric="f1")


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    from tests.synthetic_members import make_members

    root = tmp_path_factory.mktemp("metric")
    members, data, cache_dir, labels = make_members(root, valid_rows=200, test_rows=50, models=3, classes=2, seed=2,
                                                    strength=1.2)
    return root, members, data, cache_dir, labels


def _valid_arrays(members, data, cache_dir, labels):
    from ensemble.workflows.gather import gather

    al = gather(members, data, "valid", cache_dir=cache_dir)
    return al.arrays, al.y


SOURCES = ["auto", "uniform", "acc", "fixed", "file"]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("metric", list(CLASS_METRICS))
def test_the_vote_follows_the_metric_for_every_source_of_weights(binary, tmp_path, metric, source):
    """Every metric x every source of weights: the sidecar records the metric; ``auto`` and
    uniform put their headline in it, with the figure scikit-learn gives (uniform: on the
    validation rows, where nothing is fitted; auto: the cross-validated one of its choice) inside
    its interval; a method given by hand names the metric and says it is not estimated; a
    metric scored on probabilities submits the positive class's probability in the sample's one
    column."""
    from ensemble import vote

    root, members, data, cache_dir, labels = binary
    sample = tmp_path / "sample.csv"
    ids = pd.read_csv(data["test"])["id"]
    pd.DataFrame({"id": ids, "label": 0}).to_csv(sample, index=False)
    kw = dict(cache_dir=cache_dir, metric=metric, sample_submission=sample, weights_dir=tmp_path / "w",
              submissions_dir=tmp_path / "s")
    weights = {"fixed": "0.5,0.3,0.2", "file": None}.get(source, source)
    if source == "file":
        fitted = vote(members, data, "acc", **kw)
        weights = json.loads(open(fitted.attrs["path"] + ".json").read())["weights_file"]
    sub = vote(members, data, weights, **kw)
    side = json.loads(open(sub.attrs["path"] + ".json").read())
    head = side["headline"]
    if source != "file":
        assert side["procedure"]["metric"] == metric
    if source in ("auto", "uniform"):
        assert head["metric"] == metric
        assert head["low"] <= head["estimate"] <= head["high"]
        if head["method"] == "uniform":
            arrays, y = _valid_arrays(members, data, cache_dir, labels)
            assert head["estimate"] == pytest.approx(REFERENCE[metric](combine(arrays), y))
        else:
            assert head["estimate"] == pytest.approx(side["auto"]["candidates"][head["method"]]["cross_validated"][metric])
    elif source == "acc":
        assert head["metric"] == metric and "not estimated" in head["note"]
    if metric in ("log_loss", "roc_auc"):  # the positive class's probability, in [0, 1], not a label
        p = sub.attrs["weights"].predict_proba(_test_arrays(members, data, cache_dir))[:, 1]
        written = pd.read_csv(sub.attrs["path"]).set_index("id").loc[ids, "label"].to_numpy()  # test-file order
        assert written.dtype.kind == "f" and np.allclose(written, p)
    else:
        assert set(pd.read_csv(sub.attrs["path"])["label"]) <= {0, 1}  # the sample's integers: class indices


def _test_arrays(members, data, cache_dir):
    from ensemble.workflows.gather import gather

    return gather(members, data, "test", cache_dir=cache_dir).arrays


def test_a_rank_average_vote_writes_each_test_rows_rank_score(binary, tmp_path):
    """combine="rank" with metric roc_auc: the submission's column is the weighted mean of the
    members' ranks of the test rows (over n), and its headline is ROC AUC."""
    from ensemble import vote

    root, members, data, cache_dir, labels = binary
    sample = tmp_path / "sample.csv"
    pd.DataFrame({"id": pd.read_csv(data["test"])["id"], "label": 0.5}).to_csv(sample, index=False)
    sub = vote(members, data, "uniform", combine="rank", metric="roc_auc", cache_dir=cache_dir,
               sample_submission=sample, out=tmp_path / "r.csv", weights_dir=tmp_path / "w")
    arrays = _test_arrays(members, data, cache_dir)
    n = len(arrays[0])
    expect = (np.mean([rankdata(softmax(a)[:, 1]) for a in arrays], axis=0) - 0.5) / n
    assert np.allclose(pd.read_csv(tmp_path / "r.csv")["label"].to_numpy(), expect)
    assert sub.attrs["headline"]["metric"] == "roc_auc"


@pytest.mark.parametrize("options,expect", [
    (dict(metric="pearson"), "a classifiers' ensemble is decided by one of accuracy, macro_f1, log_loss, roc_auc, qwk"),
    (dict(combine="rank"), "combine=rank averages the members' orders of the rows"),
    (dict(combine="rank", metric="roc_auc", calibrate=True), "calibrate"),
    (dict(metric="roc_auc", adjust="fit"), "fits class offsets for accuracy or macro_f1"),
])
def test_options_the_metric_rules_out_are_refused_before_anything_is_read(binary, tmp_path, options, expect):
    from ensemble import vote

    root, members, data, cache_dir, labels = binary
    with pytest.raises(EnsembleError) as e:
        vote(members, {"test": tmp_path / "missing.csv", "valid": tmp_path / "missing.csv"}, "uniform",
             cache_dir=cache_dir, out=tmp_path / "x.csv", **options)
    assert expect in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "x.csv").exists()


def test_a_probability_metric_over_many_classes_needs_a_column_per_class(tmp_path):
    from ensemble.tasks.classification.task import make_submission

    sample = tmp_path / "sample.csv"
    pd.DataFrame({"id": ["a", "b"], "label": ["x", "y"]}).to_csv(sample, index=False)
    p = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    with pytest.raises(EnsembleError, match=r"sample.csv: one column \('label'\) for 3 classes"):
        make_submission(["a", "b"], p, ["x", "y", "z"], sample_submission=sample, probabilities=True)
    frame = make_submission(["a", "b"], p, ["x", "y", "z"], probabilities=True)  # no sample: a column per class
    assert list(frame.columns) == ["id", "label", "x", "y", "z"] and list(frame["label"]) == ["z", "x"]


def test_the_report_puts_its_leaderboard_and_headline_in_the_metric(binary):
    """The report's headline, leaderboard and table follow the metric: ROC AUC columns, each
    method's cross-validated ROC AUC with its interval as the honest figure, optimism apparent
    minus that; for log loss, best (lowest) first."""
    from ensemble import report

    root, members, data, cache_dir, labels = binary
    rep = report(members, data, cache_dir=cache_dir, metric="roc_auc", methods=["acc", "optimize"], adjust="none",
                 check_shift=False)
    assert rep.headline["metric"] == "roc_auc"
    board = rep.leaderboard()
    t = rep.table
    for name in board.index:
        assert board.loc[name, "honest"] == pytest.approx(t.loc[name, "cv_roc_auc"])
        assert board.loc[name, "low"] <= board.loc[name, "honest"] <= board.loc[name, "high"]
        assert board.loc[name, "optimism"] == pytest.approx(t.loc[name, "roc_auc"] - t.loc[name, "cv_roc_auc"])
    assert t.loc["optimize", "cv_roc_auc"] == pytest.approx(rep.estimates["optimize"].cross_validated["roc_auc"])
    text = rep.to_text()
    assert "ROC AUC" in text and "gain in ROC AUC vs uniform" in text and "scores 0." in text
    assert rep.winners_curse["metric"] == "roc_auc"  # the best member is picked, and scored, in it
    page = rep.to_html()
    assert "cv ROC AUC" in page and "<img alt='Scores'" in page and html_escape(rep.reason) in page
    assert "gain in ROC AUC vs uniform" in page and "is the cross-validated ROC AUC over uniform" in page
    assert not rep.adjust  # a class-prior adjustment is fitted for accuracy or macro-F1: not offered here
    lossy = report(members, data, cache_dir=cache_dir, metric="log_loss", methods=["acc", "optimize"], adjust="none",
                   check_shift=False)
    honest = lossy.leaderboard()["honest"].to_numpy()
    assert lossy.headline["metric"] == "log_loss" and np.all(np.diff(honest) >= 0)


def test_a_rank_average_is_cross_validated_against_uniform_ranked_alike():
    """Ranks are of the rows combined together: out of fold, each fold's rows are ranked among
    themselves, and so is uniform, the baseline; equal weights then gain exactly nothing."""
    from ensemble.tasks.classification.estimate import cross_validate

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    z = [rng.normal(size=(300, 2)) + np.eye(2)[y] * s for s in (1.0, 0.8, 0.5)]
    e = cross_validate(z, y, "acc", combine="rank", acc_power=0, metrics=("roc_auc",))
    assert e.gain_vs_uniform["roc_auc"] == 0.0 and e.gain_interval["roc_auc"] == (0.0, 0.0)


def test_a_weights_file_or_procedure_cannot_slip_past_the_metric(binary, tmp_path):
    """A weights file fitted as a rank average is refused for a metric scored on labels, as
    combine="rank" given would be, and the sidecar records the combination the file applied; a
    procedure cannot carry its own member metric (the vote's metric= is the one)."""
    from ensemble import vote
    from ensemble.tasks.classification.procedure import Procedure

    root, members, data, cache_dir, labels = binary
    kw = dict(cache_dir=cache_dir, weights_dir=tmp_path / "w", submissions_dir=tmp_path / "s")
    ranked = vote(members, data, "acc", combine="rank", metric="roc_auc", **kw)
    side = json.loads(open(ranked.attrs["path"] + ".json").read())
    assert side["procedure"]["combine"] == "rank"
    with pytest.raises(EnsembleError, match=r"fitted with combine=rank: .*combine.*rank.* averages"):
        vote(members, data, side["weights_file"], metric="qwk", **kw)
    again = vote(members, data, side["weights_file"], metric="roc_auc", **kw)
    assert json.loads(open(again.attrs["path"] + ".json").read())["procedure"]["combine"] == "rank"
    with pytest.raises(EnsembleError, match="member_metric"):
        vote(members, data, Procedure.of("acc", member_metric="log_loss"), **kw)
