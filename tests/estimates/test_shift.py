"""The adversarial check: test rows that a classifier tells apart from the validation rows are
said in the headline's own line; rows drawn alike are not. Real texts: KLUE-STS sentence pairs and
Korean hate-speech comments (tests/data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble.estimates.shift import adversarial_check, shift_note

from tests.conftest import load_korean

DATA = __import__("pathlib").Path(__file__).resolve().parents[1] / "data"


def _comments(n):
    (texts, _), _ = load_korean(n, 0)
    return texts


def test_rows_drawn_alike_are_not_flagged_and_other_sources_are():
    texts = _comments(256)
    alike = adversarial_check((texts[:128],), (texts[128:],))
    assert not alike.flagged and abs(alike.auc - 0.5) < 0.08 and shift_note(alike) is None
    assert len(alike.null) == 9 and all(0.35 < v < 0.65 for v in alike.null)  # permuted labels: chance
    sts = pd.read_csv(DATA / "klue-sts" / "sts-pairs.csv")
    other = adversarial_check((texts[:128],), (sts["sentence1"].tolist()[:128],))
    assert other.flagged and other.auc > 0.9 and other.p_value == pytest.approx(0.1)
    assert "do not look like the rows it is estimated on" in shift_note(other)
    assert shift_note(other.to_dict()) == shift_note(other)


def test_every_text_column_is_read_and_tiny_splits_are_not_checked():
    sts = pd.read_csv(DATA / "klue-sts" / "sts-pairs.csv")
    first, second = sts["sentence1"].tolist(), sts["sentence2"].tolist()
    # first sentences of one source on both sides, the second column from another source in the test
    comments = _comments(150)
    c = adversarial_check((first[:150], second[:150]), (first[150:300], comments))
    assert c.flagged
    assert adversarial_check((first[:4],), (first[4:8],)) is None


def test_the_report_headline_says_when_the_test_rows_differ(tmp_path):
    from ensemble import report
    from ensemble.estimates.headline import headline_line

    from tests.synthetic_members import make_task_members

    members, data, cache_dir, columns, names = make_task_members("regression", tmp_path, valid_rows=150, test_rows=60)
    rep = report(members, data, columns=columns, cache_dir=cache_dir, methods=["score"])
    assert rep.shift is not None and not rep.shift["flagged"] and "shift" not in rep.headline
    test = pd.read_csv(data["test"])
    test["text"] = _comments(60)  # the validation texts are all "x"
    test.to_csv(data["test"], index=False)
    rep = report(members, data, columns=columns, cache_dir=cache_dir, methods=["score"])
    assert rep.shift["flagged"] and "do not look like" in rep.headline["shift"]
    assert str(rep).splitlines()[0] == headline_line(rep.headline) and "do not look like" in str(rep).splitlines()[0]
    assert rep.to_dict()["shift"]["auc"] == pytest.approx(rep.shift["auc"])
    off = report(members, data, columns=columns, cache_dir=cache_dir, methods=["score"], check_shift=False)
    assert off.shift is None and "shift" not in off.headline
    np.testing.assert_allclose(off.headline["estimate"], rep.headline["estimate"])


# ---------------------------------------------------------------------- the members' outputs


def test_the_ks_statistic_is_scipys_and_a_moved_column_is_found():
    from scipy.stats import ks_2samp

    from ensemble.estimates.shift import _ks_columns, output_shift

    def _ks(a, b):
        return _ks_columns(a[:, None], b[:, None])[0]
    from ensemble.tasks import task_named

    rng = np.random.default_rng(0)
    for n, m in ((50, 80), (300, 7), (200, 200)):
        a, b = rng.normal(size=n), rng.normal(0.3, 1.2, size=m)
        assert _ks(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    assert _ks(np.zeros(20), np.zeros(30)) == 0.0  # ties: no gap
    scored = rng.normal(size=(400, 3))
    alike, moved = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    moved[:, 1] += 0.6
    found = output_shift(task_named("regression"), {"a": (scored, [alike]), "b": (scored, [moved])}, ["x", "y", "z"])
    assert [o.flagged for o in found] == [False, True] and found[1].column == "y"
    assert found[1].ks == pytest.approx(ks_2samp(scored[:, 1], moved[:, 1]).statistic)
    assert found[1].test_mean - found[1].scored_mean == pytest.approx(moved[:, 1].mean() - scored[:, 1].mean())
    # a fold group's K fold models pooled: the p-value counts the test rows, not K times them
    pooled = output_shift(task_named("regression"), {"g": (scored, [moved[:20]] * 5)}, ["x", "y", "z"])[0]
    single = output_shift(task_named("regression"), {"g": (scored, [moved[:20]])}, ["x", "y", "z"])[0]
    assert pooled.p_value == pytest.approx(single.p_value)


def _shifted_test(task, tmp_path):
    """Synthetic members of ``task`` whose test rows are the validation rows on which the first
    member's first output is highest: the same make-up of texts (every text "x"), outputs moved."""
    from ensemble import gather
    from ensemble.tasks import task_named

    from tests.synthetic_members import cache_outputs, make_task_members

    members, data, cache_dir, columns, names = make_task_members(task, tmp_path, valid_rows=240, test_rows=60)
    al = gather(members, data, "valid", cache_dir=cache_dir, columns=columns)
    first = task_named(task).mean_space(al.arrays[0])[:, 0]
    rows = np.sort(np.argsort(-first)[:90])
    shifted = tmp_path / "data" / "shifted.csv"
    pd.DataFrame({"id": [f"s{i}" for i in rows], "text": "x"}).to_csv(shifted, index=False)
    for (name, folder), values in zip(members.items(), al.arrays):
        cache_outputs(folder, name, al.labels, {"test": values[rows]}, {"test": shifted}, cache_dir)
    return members, data, {**data, "test": shifted}, cache_dir, columns


@pytest.mark.parametrize("task", ["classification", "regression", "multi_label"])
def test_moved_outputs_are_said_by_vote_and_report_for_every_source_of_weights(task, tmp_path):
    """Every task x every source of weights (a method, fixed weights, a weights file): test rows whose
    texts look alike but on which the members' outputs move are said in the vote's and the report's
    headline; the test rows as drawn are not."""
    from ensemble import report, vote

    members, data, moved, cache_dir, columns = _shifted_test(task, tmp_path)
    kw = dict(cache_dir=cache_dir, columns=columns, submissions_dir=tmp_path / "s", weights_dir=tmp_path / "w")
    fitted = vote(members, moved, "optimize", **kw)
    sources = {"method": vote(members, moved, "auto", name="auto", **kw), "fitted": fitted,
               "fixed": vote(members, moved, "1,1,1", name="fixed", **kw),
               "file": vote(members, moved, str(tmp_path / "w" / "ensemble-optimize.json"), name="file", **kw)}
    for source, frame in sources.items():
        sidecar = __import__("json").loads(open(frame.attrs["path"] + ".json").read())
        assert sidecar["shift"]["outputs"] and any(o["flagged"] for o in sidecar["shift"]["outputs"]), source
        assert not sidecar["shift"]["flagged"], source  # the texts alike: only the outputs tell
        h = frame.attrs["headline"]
        if h.get("estimate") is not None:
            assert "the members' outputs move: m0's" in h["shift"], (source, h)
    assert "shift" in sources["method"].attrs["headline"]
    rep = report(members, moved, cache_dir=cache_dir, columns=columns, methods=["optimize"])
    assert "the members' outputs move" in rep.headline["shift"] and "the members' outputs move" in str(rep)
    drawn = vote(members, data, "optimize", name="drawn", **kw)
    assert "shift" not in drawn.attrs["headline"]
    assert not any(o["flagged"] for o in report(members, data, cache_dir=cache_dir, columns=columns,
                                                methods=["optimize"]).shift["outputs"])
    off = vote(members, moved, "optimize", name="off", check_shift=False, **kw)
    assert "shift" not in off.attrs["headline"]


def test_the_kolmogorov_tail_is_scipys():
    from scipy.stats import kstwobign

    from ensemble.estimates.shift import _kolmogorov_sf

    for x in (0.0, 0.1, 0.2, 0.35, 0.5, 0.8, 1.0, 1.36, 1.95, 2.5, 4.0):
        assert _kolmogorov_sf(x) == pytest.approx(kstwobign.sf(x), abs=1e-12)


def test_a_vote_reads_the_text_check_a_report_stored(tmp_path):
    """vote imports no scikit-learn: it says the texts unchecked until a report of the same
    splits has checked them, and then says what the report found."""
    from ensemble import gather, report, vote
    from ensemble.estimates import shift

    from tests.synthetic_members import cache_outputs, make_task_members

    shift._TEXTS.clear()  # the memo of this process (by content: an earlier test read these splits)
    members, data, cache_dir, columns, _ = make_task_members("regression", tmp_path, valid_rows=150, test_rows=60)
    test = pd.read_csv(data["test"])
    test["text"] = _comments(60)  # the validation texts are all "x"
    other = tmp_path / "data" / "comments.csv"
    test.to_csv(other, index=False)
    al = gather(members, data, "test", cache_dir=cache_dir, columns=columns)
    for (name, folder), values in zip(members.items(), al.arrays):
        cache_outputs(folder, name, al.labels, {"test": values}, {"test": other}, cache_dir)
    data = {**data, "test": other}
    kw = dict(cache_dir=cache_dir, columns=columns, submissions_dir=tmp_path / "s", weights_dir=tmp_path / "w")
    before = vote(members, data, "auto", **kw)
    sidecar = __import__("json").loads(open(before.attrs["path"] + ".json").read())
    assert sidecar["shift"]["texts"].startswith("not checked") and sidecar["shift"]["auc"] is None
    assert "shift" not in before.attrs["headline"]
    rep = report(members, data, cache_dir=cache_dir, columns=columns, methods=["optimize"])
    assert rep.shift["flagged"]
    after = vote(members, data, "auto", name="after", **kw)
    assert "a classifier tells their texts apart: AUC" in after.attrs["headline"]["shift"]
    assert after.attrs["headline"]["shift"] == rep.headline["shift"]


def test_every_column_at_once_equals_scipy_with_ties():
    from scipy.stats import ks_2samp

    from ensemble.estimates.shift import _ks_columns

    rng = np.random.default_rng(1)
    a = np.round(rng.normal(size=(120, 6)), 1)  # rounded: many ties, within and across the sides
    b = np.round(rng.normal(0.2, 1.1, size=(75, 6)), 1)
    a[:, 5], b[:, 5] = 0.0, 0.0  # a constant column: no gap
    got = _ks_columns(a, b)
    for j in range(6):
        assert got[j] == pytest.approx(ks_2samp(a[:, j], b[:, j]).statistic, abs=1e-12), j


def test_members_trained_on_the_scored_rows_are_not_a_shift(tmp_path):
    """A member trained on the validation rows is confident there and not on the test rows: the
    report leaves it out of its ensembles, and out of the comparison too."""
    from ensemble import report

    from tests.synthetic_members import cache_outputs, make_task_members

    members, data, cache_dir, columns, names = make_task_members("classification", tmp_path)
    from ensemble import gather

    al = gather(members, data, "valid", cache_dir=cache_dir, columns=columns)
    over = np.asarray(al.arrays[2], dtype=np.float64).copy()
    over[np.arange(len(over)), [names.index(c) for c in pd.read_csv(data["valid"])["label"]]] += 12.0
    cache_outputs(members["m2"], "m2", al.labels, {"valid": over}, data, cache_dir)
    flagged = report(members, data, cache_dir=cache_dir, columns=columns, methods=["optimize"])
    assert any(o["member"] == "m2" and o["flagged"] for o in flagged.shift["outputs"])
    rep = report(members, data, cache_dir=cache_dir, columns=columns, methods=["optimize"], trained_on_valid=["m2"])
    assert "m2" not in {o["member"] for o in rep.shift["outputs"]} and "shift" not in rep.headline
