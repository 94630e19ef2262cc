"""Folds for K-fold training: assigned with scikit-learn's splitters (checked against calling them
directly), written with a sidecar, read back from this toolkit's files and from Kaggle-style
``kfold`` columns, aligned by id, and every bad folds file a one-line error that writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main
from ensemble.core.errors import EnsembleError
from ensemble.data.folds import assign_folds, make_folds, read_folds

SAMPLE = Path(__file__).parent / "korean-hate-speech" / "train-sample.tsv"


def _train(tmp_path, n=120, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": [f"r{i:03d}" for i in range(n)], "text": [f"text {i}" for i in range(n)],
                          "label": rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1]),
                          "author": rng.integers(0, 30, n)})
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    return path


def _cli(args, cwd=None):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_stratified_folds_are_scikit_learns_and_round_trip(tmp_path):
    from sklearn.model_selection import StratifiedKFold

    train = _train(tmp_path)
    out = tmp_path / "folds.csv"
    made = make_folds(train, out, 4, seed=3)
    frame = pd.read_csv(train)
    expected = np.empty(len(frame), dtype=int)
    for i, (_, test) in enumerate(StratifiedKFold(4, shuffle=True, random_state=3).split(frame, frame["label"])):
        expected[test] = i
    np.testing.assert_array_equal(made.fold, expected)
    written = pd.read_csv(out, dtype=str)
    assert list(written.columns) == ["id", "fold"] and list(written["id"]) == list(frame["id"])
    meta = json.loads((tmp_path / "folds.csv.json").read_text())
    assert meta["splitter"] == "StratifiedKFold" and meta["k"] == 4 and meta["rows_per_fold"] == [30] * 4
    assert meta["label_column"] == "label" and len(meta["train_file_blake3"]) == 64
    # each fold holds each class in proportion, to a row
    for c, n in frame["label"].value_counts().items():
        per_fold = np.bincount(made.fold[frame["label"].to_numpy() == c], minlength=4)
        assert per_fold.max() - per_fold.min() <= 1, c
    back = read_folds(out, frame["id"].astype(str).tolist()[::-1])  # another row order: aligned by id
    np.testing.assert_array_equal(back.fold, made.fold[::-1])
    assert back.k == 4


def test_groups_never_span_two_folds(tmp_path):
    from sklearn.model_selection import StratifiedGroupKFold

    train = _train(tmp_path, n=200, seed=1)
    made = make_folds(train, tmp_path / "folds.csv", 5, group="author")
    frame = pd.read_csv(train)
    for author, rows in frame.groupby("author").groups.items():
        assert len(set(made.fold[list(rows)])) == 1, author
    expected = np.empty(len(frame), dtype=int)
    splits = StratifiedGroupKFold(5, shuffle=True, random_state=0).split(frame, frame["label"], frame["author"].astype(str))
    for i, (_, test) in enumerate(splits):
        expected[test] = i
    np.testing.assert_array_equal(made.fold, expected)
    assert json.loads((tmp_path / "folds.csv.json").read_text())["group_column"] == "author"


def test_a_kaggle_kfold_column_is_read_by_id(tmp_path):
    train = _train(tmp_path, n=60)
    frame = pd.read_csv(train)
    frame["kfold"] = np.arange(60) % 3
    kaggle = frame.sample(frac=1.0, random_state=0)  # its own row order
    kaggle.to_csv(tmp_path / "train_folds.csv", index=False)
    folds = read_folds(tmp_path / "train_folds.csv", frame["id"].tolist())
    np.testing.assert_array_equal(folds.fold, np.arange(60) % 3)
    result = _cli(["folds", "show", str(train), "--folds", str(tmp_path / "train_folds.csv")])
    assert result.exit_code == 0 and "60 rows in 3 folds" in result.output and "fold 2:" in result.output


def test_the_cli_writes_folds_of_the_bundled_korean_sample(tmp_path):
    out = tmp_path / "f.csv"
    result = _cli(["folds", "make", str(SAMPLE), "--label", "hate", "--k", "3", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(out)
    written = pd.read_csv(out)
    labels = pd.read_csv(SAMPLE, sep="\t")["hate"]
    assert len(written) == len(labels) and sorted(set(written["fold"])) == [0, 1, 2]
    shares = pd.crosstab(written["fold"], labels.to_numpy(), normalize="index")
    assert (shares.max() - shares.min()).max() < 0.02  # stratified: the same class shares in every fold


def _write(path: Path, rows: dict) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("case,expected", [
    ("missing", "id(s) of the training split have no fold, e.g. 'r005'"),
    ("extra", "id(s) are not in the training split, e.g. 'zzz'"),
    ("empty", "fold 1 has no rows"),
    ("not a number", "row 3 has fold 'x' in column 'fold'"),
    ("no column", "no fold column (looked for fold, kfold"),
    ("twice", "id 'r001' appears in rows 2 and 7"),
])
def test_bad_folds_files_are_one_line_errors(tmp_path, case, expected):
    train = _train(tmp_path, n=6)
    ids = [f"r{i:03d}" for i in range(6)]
    fold = [0, 2, 0, 2, 0, 2]
    rows = {"missing": {"id": ids[:5], "fold": fold[:5]}, "extra": {"id": ids + ["zzz"], "fold": fold + [0]},
            "empty": {"id": ids, "fold": fold}, "not a number": {"id": ids, "fold": ["0", "1", "x", "1", "0", "1"]},
            "no column": {"id": ids, "split": fold}, "twice": {"id": ids + ["r001"], "fold": [0, 1] * 3 + [1]}}[case]
    folds = _write(tmp_path / "folds.csv", rows)
    with pytest.raises(EnsembleError, match="folds.csv: "):
        read_folds(folds, ids)
    result = _cli(["folds", "show", str(train), "--folds", str(folds)])
    err = result.stderr if hasattr(result, "stderr") else result.output
    assert result.exit_code == 1 and expected in err and str(folds) in err
    assert len(err.strip().splitlines()) == 1


def test_make_refuses_to_overwrite_and_bad_input_writes_nothing(tmp_path):
    train = _train(tmp_path, n=30)
    out = tmp_path / "folds.csv"
    assert _cli(["folds", "make", str(train), "--out", str(out), "-q"]).exit_code == 0
    before = out.read_bytes()
    again = _cli(["folds", "make", str(train), "--out", str(out), "--seed", "1"])
    assert again.exit_code == 1 and "exists; pass --force" in again.stderr and out.read_bytes() == before
    assert _cli(["folds", "make", str(train), "--out", str(out), "--seed", "1", "--force", "-q"]).exit_code == 0
    assert out.read_bytes() != before
    for args, message in ((["--label", "nope"], "no column 'nope'"), (["--k", "31"], "31 folds need at least 31 rows; "),
                          (["--group", "label"], "--group 'label' is the label column"),
                          (["--group", "missing"], "no group column 'missing'")):
        other = tmp_path / "other.csv"
        result = _cli(["folds", "make", str(train), "--out", str(other), *args])
        assert result.exit_code == 1 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
        assert not other.exists() and not (tmp_path / "other.csv.json").exists()
        assert not list(tmp_path.glob(".other.csv*"))


def test_folds_read_back_are_the_folds_an_estimate_cross_validates_on(tmp_path):
    from ensemble.tasks.classification.estimate import cross_validate

    from tests.tasks.classification.test_estimate import members

    arrays, y = members(120, [1.5, 1.0, 0.3], seed=2)
    ids = [f"r{i:03d}" for i in range(120)]
    _write(tmp_path / "folds.csv", {"id": ids, "fold": np.arange(120) % 4})
    folds = read_folds(tmp_path / "folds.csv", ids)
    given = cross_validate(arrays, y, "acc", splits=folds.fold, n_resamples=200)
    again = cross_validate(arrays, y, "acc", splits=np.arange(120) % 4, n_resamples=200)
    assert (given.folds, given.repeats) == (4, 1) and given.cross_validated == again.cross_validated


def test_assign_folds_checks_its_arguments():
    with pytest.raises(EnsembleError, match="k must be a whole number of folds, 2 or more; got 1"):
        assign_folds(10, 1)
    with pytest.raises(EnsembleError, match="5 folds need at least 5 groups; the group column has 2"):
        assign_folds(10, 5, groups=["a", "b"] * 5)
    fold, splitter = assign_folds(10, 2, groups=list("aabbccddee"))
    assert splitter == "GroupKFold" and sorted(np.bincount(fold)) == [4, 6]
