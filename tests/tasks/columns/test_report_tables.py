"""The regression and multi-label report shows what the mean over targets hides: the primary
metric per target for every member and method, and the weights per target as the weights file
holds them; its terminal text fits a terminal whatever the number of labels."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("task, outputs", [("regression", 3), ("multi_label", 3), ("multi_label", 40)])
def test_per_target_scores_and_weights_against_scikit_learn(task, outputs, tmp_path):
    from sklearn.metrics import f1_score, mean_squared_error

    from ensemble import gather, report

    from tests.synthetic_members import make_task_members

    members, data, cache_dir, columns, names = make_task_members(task, tmp_path, outputs=outputs, valid_rows=240)
    rep = report(members, data, cache_dir=cache_dir, columns=columns, methods=["optimize"], check_shift=False)
    al = gather(members, data, "valid", cache_dir=cache_dir, columns=columns)
    per = rep.per_target()
    assert list(per.columns) == names and set(per.index) == {*members, "uniform", "optimize"}
    for name, a in zip(al.models, al.arrays):
        for j, t in enumerate(names):
            if task == "regression":  # mcrmse: its per-target part is the rmse
                want = np.sqrt(mean_squared_error(al.y[:, j], a[:, j]))
            else:  # f1_micro of one label, the member decided at 0.5
                want = f1_score(al.y[:, j], (1 / (1 + np.exp(-a[:, j])) >= 0.5).astype(int), zero_division=0)
            assert per.loc[name, t] == pytest.approx(want, abs=1e-9), (name, t)
    oof = rep.estimates["optimize"].oof
    j = len(names) - 1
    want = (np.sqrt(mean_squared_error(al.y[:, j], oof[:, j])) if task == "regression"
            else f1_score(al.y[:, j], oof[:, j], zero_division=0))
    assert per.loc["optimize", names[j]] == pytest.approx(want, abs=1e-9)
    rep.choice = "optimize"
    w = rep.weights_per_target()
    held = np.asarray(rep.estimates["optimize"].weights.weights)  # (M, T), or (M,): one vector for every label
    np.testing.assert_allclose(w.to_numpy(), held if held.ndim == 2 else np.repeat(held[:, None], len(names), axis=1))
    assert list(w.index) == list(members) and list(w.columns) == names
    text = rep.to_text()
    assert "per target" in text or "per label" in text
    assert max(len(line) for line in text.splitlines()) <= 160, max(text.splitlines(), key=len)
    assert "per " in rep.to_html()


def test_the_multi_label_table_says_each_rows_threshold(tmp_path):
    from ensemble import report

    from tests.synthetic_members import make_task_members

    members, data, cache_dir, columns, names = make_task_members("multi_label", tmp_path)
    rep = report(members, data, cache_dir=cache_dir, columns=columns, methods=["optimize"], check_shift=False)
    t = rep.table
    assert set(t.loc[list(members), "threshold"]) == {"0.50"}
    fitted = float(rep.estimates["optimize"].weights.threshold)
    assert t.loc["optimize", "threshold"] == f"{fitted:.2f}" and "<th>threshold</th>" in rep.to_html()


def test_f1_samples_is_shown_per_label_as_each_labels_f1(tmp_path):
    """f1_samples is a mean over rows: applied to one label's column it gives at most the label's
    prevalence, not a score. Per label, the label's own F1 stands for it, and the heading says so."""
    from sklearn.metrics import f1_score

    from ensemble import gather, report

    from tests.synthetic_members import make_task_members

    members, data, cache_dir, columns, names = make_task_members("multi_label", tmp_path, outputs=4)
    rep = report(members, data, cache_dir=cache_dir, columns=columns, methods=["optimize"], metric="f1_samples",
                 check_shift=False)
    al = gather(members, data, "valid", cache_dir=cache_dir, columns=columns)
    p = 1 / (1 + np.exp(-np.asarray(al.arrays[0], dtype=np.float64)))
    for j, t in enumerate(names):
        assert rep.per_target().loc["m0", t] == pytest.approx(f1_score(al.y[:, j], (p[:, j] >= 0.5).astype(int),
                                                                         zero_division=0))
    assert "F1 (f1_samples has no per-label part) per label" in rep.to_text()


@pytest.mark.parametrize("task", ["regression", "multi_label"])
def test_a_member_chosen_on_the_validation_rows_leaves_the_reports_fits_as_the_votes(task, tmp_path):
    """A greedy soup chosen on these validation rows (its manifest says so) is optimistic there:
    the report leaves it out of every fit, as the vote leaves it out of the submission, so that
    the estimate is of the ensemble submitted; include_optimistic keeps it in both."""
    import json
    from pathlib import Path

    from ensemble import report, vote
    from ensemble.data.splits import load_split

    from tests.synthetic_members import make_task_members

    models, data, cache, columns, _ = make_task_members(task, tmp_path, valid_rows=120, test_rows=20)
    digest = load_split(data["valid"], label=columns["label"]).digest
    (Path(models["m0"]) / "ensemble_manifest.json").write_text(json.dumps(
        {"selected_on_holdout": True, "method": "greedy", "holdout": {"data_digest": digest}}))
    rep = report(models, data, columns=columns, cache_dir=cache, methods=["optimize"], check_shift=False)
    sub = vote(models, data, "optimize", columns=columns, cache_dir=cache, out=tmp_path / "s.csv",
               weights_dir=tmp_path / "w", check_shift=False)
    assert list(rep.excluded) == ["m0"] and tuple(sub.attrs["weights"].models) == ("m1", "m2")
    kept = report(models, data, columns=columns, cache_dir=cache, methods=["optimize"], include_optimistic=True,
                  check_shift=False)
    assert list(kept.excluded) == []
