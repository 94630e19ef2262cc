"""Many classes: costs linear in the classes (against direct computations), estimates stored and
shared between report and vote, progress on a terminal only, and output that stays readable.

The members are synthetic (tests/synthetic_members.py): model folders that ensemble opens and
their logits in the cache, 77 classes, no training.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ensemble.tasks.classification.offsets import _cut_macro_f1, _moved, _top2
from ensemble.tasks.classification.weighting import STACK_FULL_CLASSES, fit_weights
from ensemble.tasks.classification.weights import Weights
from ensemble.core import progress
from ensemble.core.scores import resampled_scores, weighted_scores
from ensemble.tasks.classification import procedure
from ensemble.workflows.report import report
from ensemble.tasks.classification.vote import class_counts
from ensemble.workflows.vote import vote

from .synthetic_members import draw, make_members

C77 = 77


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    return make_members(root, valid_rows=800, test_rows=300, models=3, classes=C77, seed=1)


def _count_folds(monkeypatch) -> list:
    calls = []
    real = procedure.Procedure.out_of_fold

    def counted(self, *a, **k):
        calls.append(self.weights.method)
        return real(self, *a, **k)

    monkeypatch.setattr(procedure.Procedure, "out_of_fold", counted)
    return calls


# --------------------------------------------------------------------------- linear-cost pieces


def test_resampled_scores_equal_a_loop_over_resamples():
    rng = np.random.default_rng(0)
    n, C = 200, 9
    y, pred, w = rng.integers(0, C, n), rng.integers(0, C, n), rng.random(n)
    idx = rng.integers(0, n, (7, n))
    got = resampled_scores(pred, y, C, idx, w)
    for b in range(7):
        ref = weighted_scores(pred[idx[b]], y[idx[b]], C, w[idx[b]])
        assert got["accuracy"][b] == pytest.approx(ref["accuracy"], abs=1e-12)
        assert got["macro_f1"][b] == pytest.approx(ref["macro_f1"], abs=1e-12)


def test_macro_f1_at_every_cut_equals_scoring_each_cut():
    rng = np.random.default_rng(1)
    n, C, c = 120, 6, 2
    y = rng.integers(0, C, n)
    alt = rng.choice([k for k in range(C) if k != c], n)
    w = rng.random(n)
    support = np.bincount(y, weights=w, minlength=C)
    got = _cut_macro_f1(alt, y, w, c, support)
    for k in range(n + 1):
        pred = np.where(np.arange(n) < k, c, alt)
        assert got[k] == pytest.approx(weighted_scores(pred, y, C, w)["macro_f1"], abs=1e-12)


def test_top_two_kept_up_to_date_equal_recomputing_them():
    rng = np.random.default_rng(2)
    s = np.round(rng.normal(size=(500, 30)), 1)  # rounded: many ties
    b = rng.normal(size=30)
    top1, top2 = _top2(s + b)
    for c, value in [(3, 2.0), (3, -5.0), (top1[0], -1.0), (7, b[7]), (11, 0.35)]:
        new1, new2 = _moved(s, b, top1, top2, c, value)
        nb = b.copy()
        nb[c] = value
        ref1, ref2 = _top2(s + nb)
        assert np.array_equal(new1, ref1) and np.array_equal(new2, ref2)
        b, top1, top2 = nb, new1, new2


@pytest.mark.parametrize("classes,weighted,which", [(200, False, "union"), (40, True, "support")])
def test_macro_f1_intervals_on_many_rows_are_the_normal_interval_the_bootstrap_converges_to(
        monkeypatch, classes, weighted, which):
    """Above BOOTSTRAP_ROWS rows the macro-F1 gain's interval is the delta method's normal
    interval: it agrees with the paired bootstrap it replaces (about 0.006 wide here)."""
    import ensemble.estimates.resampling as resampling

    rng = np.random.default_rng(classes)
    n = 12_000
    y = rng.choice(classes, n, p=rng.dirichlet(np.full(classes, 5.0)))
    a = np.where(rng.random(n) < 0.75, y, rng.integers(0, classes, n))
    b = np.where(rng.random(n) < 0.9, a, np.where(rng.random(n) < 0.5, y, rng.integers(0, classes, n)))
    w = rng.uniform(0.5, 2.0, classes)[y] if weighted else None
    delta = resampling.score_difference_interval("macro_f1", a, b, y, classes, w=w, classes=which)
    assert delta == resampling.delta_difference_interval("macro_f1", a, b, y, classes, w=w, classes=which)
    monkeypatch.setattr(resampling, "BOOTSTRAP_ROWS", 10**9)
    boot = resampling.score_difference_interval("macro_f1", a, b, y, classes, w=w, classes=which, n_resamples=1000)
    assert delta[0] < delta[1] and boot[0] < boot[1]
    np.testing.assert_allclose(delta, boot, atol=0.001)


def test_one_round_of_folds_by_default_above_ten_thousand_rows():
    from ensemble.estimates.resampling import ONE_REPEAT_ROWS, fold_plan

    small, large = np.arange(ONE_REPEAT_ROWS) % 4, np.arange(ONE_REPEAT_ROWS + 1) % 4
    assert fold_plan(None, small).repeats == 2 and fold_plan(None, large).repeats == 1
    assert fold_plan(None, large, repeats=2).repeats == 2  # asked for: as asked


def test_probabilities_of_log_probs_are_computed_once_and_read_only():
    from ensemble.core.combination import as_log_probs, probabilities, softmax

    z = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    lp = as_log_probs(z)
    p = probabilities(lp)
    assert probabilities(lp) is p and not p.flags.writeable
    np.testing.assert_array_equal(p, softmax(z))
    rows = lp[np.arange(10)]  # a selection is a new array: computed for itself
    np.testing.assert_array_equal(probabilities(rows), p[:10])
    assert probabilities(rows) is not p and probabilities(rows).base is not p


def test_many_classes_use_the_classwise_stacker_and_it_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    arrays, y = draw(400, 30, [3.0, 2.5], [0.7, 1.5], rng)
    arrays = [a.astype(np.float64) for a in arrays]
    w = fit_weights(arrays, y, "stack", names=["a", "b"])
    assert 30 > STACK_FULL_CLASSES and w.stacker["kind"] == "classwise"
    assert w.stacker["coef"].shape == (2, 30) and w.stacker["intercept"].shape == (30,)
    lps = [a - a.max(axis=1, keepdims=True) for a in arrays]
    lps = [lp - np.log(np.exp(lp).sum(axis=1, keepdims=True)) for lp in lps]
    z = w.stacker["intercept"] + sum(w.stacker["coef"][m] * (lp - lp.mean(axis=1, keepdims=True))
                                     for m, lp in enumerate(lps))
    ref = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(w.predict_proba(arrays), ref / ref.sum(axis=1, keepdims=True), atol=1e-9)
    assert w.apparent["accuracy"] > fit_weights(arrays, y, "uniform").apparent["accuracy"]  # it rescales the members
    w.save(tmp_path / "w.json")
    np.testing.assert_allclose(Weights.load(tmp_path / "w.json").predict_proba(arrays), w.predict_proba(arrays))


# --------------------------------------------------------------------------- stored estimates


def test_report_and_vote_share_one_stored_estimate(many, tmp_path, monkeypatch):
    members, data, cache_dir, labels = many
    store = cache_dir / "estimates"
    calls = _count_folds(monkeypatch)
    first = report(members, data, cache_dir=cache_dir)
    computed = len(calls)
    # one entry per estimate, one with the fold weights of each weighting method, and the shift
    # check of the texts (ensemble.estimates.shift), which a vote reads
    assert computed >= 5 and store.is_dir() and len(list(store.glob("*.npz"))) == computed + len(set(calls)) + 1
    again = report(members, data, cache_dir=cache_dir)
    assert len(calls) == computed  # nothing cross-validated again
    assert again.to_dict() == first.to_dict()
    sub = vote(members, data, "auto", cache_dir=cache_dir, out=tmp_path / "s.csv", weights_dir=tmp_path / "w")
    assert len(calls) == computed  # vote --weights auto reuses the report's estimates
    assert sub.attrs["weights"].method == first.choice


def test_changed_labels_or_options_are_a_miss_and_damage_is_recomputed(many, tmp_path, monkeypatch, caplog):
    import pandas as pd

    members, data, cache_dir, labels = many
    base = report(members, data, cache_dir=cache_dir, adjust="none")
    calls = _count_folds(monkeypatch)
    report(members, data, cache_dir=cache_dir, adjust="none", seed=1)
    assert len(calls) > 0  # another seed: other folds
    valid = pd.read_csv(data["valid"])
    valid.loc[0, "label"] = labels[(labels.index(valid.loc[0, "label"]) + 1) % len(labels)]
    changed = dict(data, valid=tmp_path / "valid.csv")
    valid.to_csv(changed["valid"], index=False)
    del calls[:]
    report(members, changed, cache_dir=cache_dir, adjust="none")
    assert len(calls) > 0  # one label changed: not the stored estimate
    entries = sorted((cache_dir / "estimates").glob("*.npz"))
    for path in entries:
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    del calls[:]
    with caplog.at_level(logging.WARNING):
        again = report(members, data, cache_dir=cache_dir, adjust="none")
    assert len(calls) > 0 and "damaged" in caplog.text
    assert again.to_dict() == base.to_dict()


# --------------------------------------------------------------------------- progress and output


def test_progress_only_when_turned_on(capsys):
    rng = np.random.default_rng(4)
    arrays, y = draw(300, 5, [2.0, 1.5], [1.0, 1.0], rng)
    from ensemble.tasks.classification.estimate import cross_validate

    cross_validate(arrays, y, "acc", n_resamples=100)
    assert "cross-validating" not in capsys.readouterr().err
    with progress.enabled(True):
        cross_validate(arrays, y, "acc", n_resamples=100)
    assert "cross-validating acc" in capsys.readouterr().err


def test_output_for_many_classes_stays_readable(many, tmp_path, caplog):
    members, data, cache_dir, labels = many
    with caplog.at_level(logging.INFO):
        vote(members, data, "acc", adjust="fit", cache_dir=cache_dir, out=tmp_path / "s.csv",
             weights_dir=tmp_path / "w")
    lines = [r.getMessage() for r in caplog.records]
    wrote = next(m for m in lines if m.startswith("wrote "))
    assert "more classes" in wrote and len(wrote) < 300
    assert all(len(m) < 400 for m in lines), max(lines, key=len)[:200]
    rep = report(members, data, cache_dir=cache_dir)
    text = rep.to_text()
    assert max(map(len, text.splitlines())) < 200, max(text.splitlines(), key=len)  # prose only that long
    assert sum(line.strip().startswith("intent_") for line in text.splitlines()) <= 12
    assert "more classes" in text and "most confused classes" in text
    d = rep.to_dict()
    assert len(d["adjust"]["recall_before"]) == C77  # every class in --json
    pairs = d["confused_pairs"]
    assert pairs and all(p["true"] != p["predicted"] for p in pairs)
    assert [p["rows"] for p in pairs] == sorted((p["rows"] for p in pairs), reverse=True)
    page = rep.to_html(figures=False)
    assert "Most confused classes" in page and all(f"<th>{c}</th>" in page for c in labels)  # the recall table


def test_class_counts_summarise_many_classes():
    labels = [f"c{i}" for i in range(40)]
    counts = np.arange(40)
    line = class_counts(labels, counts)
    assert line.startswith("c39: 39, c38: 38") and line.endswith(f"and 34 more classes ({sum(range(34))} rows)")
    assert class_counts(["a", "b"], np.array([3, 4])) == "a: 3, b: 4"
