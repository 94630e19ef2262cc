"""Names decide order, never position or listing order, and a fitted value has data behind it:
per-label thresholds given by hand follow ``[data] label`` whatever order the members' heads list
their labels in (and whatever order the members are listed in); a label with no positive
validation row takes the global threshold instead of the grid's first value."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.synthetic_members import cache_fake_model, draw_values

NAMES = ["t0", "t1", "t2"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two multi-label members: ``a`` lists its labels t0, t1, t2; ``b`` lists them t2, t0, t1."""
    root = tmp_path_factory.mktemp("names")
    rng = np.random.default_rng(3)
    valid, yv = draw_values("multi_label", 200, NAMES, [1.5, 1.2], rng)
    test, _ = draw_values("multi_label", 80, NAMES, [1.5, 1.2], rng)
    (root / "data").mkdir()
    data = {"valid": root / "data" / "valid.csv", "test": root / "data" / "test.csv"}
    frame = pd.DataFrame({"id": [f"v{i}" for i in range(200)], "text": "x"})
    for j, c in enumerate(NAMES):
        frame[c] = yv[:, j].astype(int)
    frame["t2"] = 0  # no positive validation row for t2
    frame.to_csv(data["valid"], index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(80)], "text": "x"}).to_csv(data["test"], index=False)
    cache = root / "cache"
    members = {}
    for m, order in (("a", [0, 1, 2]), ("b", [2, 0, 1])):
        labels = [NAMES[i] for i in order]
        i = 0 if m == "a" else 1
        members[m] = cache_fake_model(root / m, m, labels, {"problem_type": "multi_label_classification"},
                                      {"valid": valid[i][:, order], "test": test[i][:, order]}, data, cache, rng,
                                      label={"valid": NAMES})
    return members, data, cache, root


def _vote(world, tmp_path, members, **options):
    from ensemble import vote

    m, data, cache, root = world
    data = {**data, **(options.pop("data", None) or {})}
    return vote({k: m[k] for k in members}, data, options.pop("weights", "uniform"), columns={"label": NAMES},
                cache_dir=cache, out=tmp_path / "s.csv", weights_dir=tmp_path / "w", **options)


@pytest.mark.parametrize("weights", ["uniform", "optimize", "stack", "1,2"])
def test_per_label_thresholds_follow_the_label_columns_whatever_the_members_order(world, tmp_path, weights):
    given = "0.02,0.98,0.5"  # t0 almost always, t1 almost never
    ab = _vote(world, tmp_path / "ab", ["a", "b"], weights=weights, threshold=given)
    ba = _vote(world, tmp_path / "ba", ["b", "a"], weights=weights if "," not in weights else "2,1", threshold=given)
    pd.testing.assert_frame_equal(ab[["id", *NAMES]], ba[["id", *NAMES]], check_dtype=False)
    proba = _vote(world, tmp_path / "p", ["a", "b"], weights=weights, proba=True)
    for c, t in zip(NAMES, (0.02, 0.98, 0.5)):  # each label decided at its own threshold, by name
        np.testing.assert_array_equal(ab[c].to_numpy(), (proba[c].to_numpy() >= t).astype(int))
    for side in (tmp_path / "ab" / "s.csv.json", tmp_path / "ba" / "s.csv.json"):
        d = json.loads(side.read_text())
        assert dict(zip(d["names"], d["threshold"])) == {"t0": 0.02, "t1": 0.98, "t2": 0.5}


def test_a_label_with_no_positive_row_takes_the_global_threshold(world, tmp_path):
    from ensemble.tasks.columns.fitting import fit_threshold

    members, data, cache, root = world
    y = pd.read_csv(data["valid"])[NAMES].to_numpy(dtype=float)
    assert y[:, 2].sum() == 0 and y[:, :2].sum(axis=0).min() > 0
    per = _vote(world, tmp_path / "per", ["a", "b"], threshold="per_label")
    d = json.loads((tmp_path / "per" / "s.csv.json").read_text())
    t = dict(zip(d["names"], d["threshold"]))
    # the validation rows' combined probabilities, as the vote fits on them
    p = _vote(world, tmp_path / "p", ["a", "b"], proba=True, data={"test": data["valid"]})[NAMES].to_numpy(dtype=float)
    assert t["t2"] == pytest.approx(fit_threshold(p, y, "f1_micro", "global"))
    assert t["t2"] > 0.02 and per["t2"].mean() < 0.5  # not the grid's first value, predicted nearly everywhere


@pytest.mark.parametrize("task", ["regression", "multi_label"])
def test_a_sample_column_no_member_predicts_is_refused(task, tmp_path):
    """Never submitted as the sample's placeholder value."""
    from ensemble import vote
    from ensemble.core.errors import EnsembleError

    from tests.synthetic_members import make_task_members

    members, data, cache_dir, columns, names = make_task_members(task, tmp_path, valid_rows=60, test_rows=20)
    sample = pd.DataFrame({"id": pd.read_csv(data["test"])["id"]})
    for c in [*names, "extra"]:
        sample[c] = 0
    sample.to_csv(tmp_path / "sample.csv", index=False)
    with pytest.raises(EnsembleError) as e:
        vote(members, data, "uniform", columns=columns, cache_dir=cache_dir, sample_submission=tmp_path / "sample.csv",
             out=tmp_path / "s.csv", weights_dir=tmp_path / "w")
    assert "'extra'" in str(e.value) and str(tmp_path / "sample.csv") in str(e.value)
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("task", ["regression", "multi_label"])
def test_names_in_nfd_match_their_nfc_twins(task, tmp_path):
    """A header typed on macOS (NFD Hangul) names the same label as the head's NFC id2label, as
    classes are compared; the submission keeps the sample's own spelling."""
    import unicodedata

    from ensemble import vote

    nfc = ["날씨", "자연"]
    nfd = [unicodedata.normalize("NFD", n) for n in nfc]
    assert nfd != nfc
    rng = np.random.default_rng(5)
    data, valid, test = _value_data(tmp_path, task, nfd, 80, 20, rng)
    problem = "regression" if task == "regression" else "multi_label_classification"
    members = {m: cache_fake_model(tmp_path / m, m, nfc, {"problem_type": problem},
                                   {"valid": valid[i], "test": test[i]}, data, tmp_path / "cache", rng,
                                   label={"valid": nfd}) for i, m in enumerate(("a", "b"))}
    sample = pd.DataFrame({"id": [f"t{i}" for i in range(20)], **{c: 0 for c in nfd}})
    sample.to_csv(tmp_path / "sample.csv", index=False)
    sub = vote(members, data, "optimize", columns={"label": nfd}, cache_dir=tmp_path / "cache",
               sample_submission=tmp_path / "sample.csv", out=tmp_path / "s.csv", weights_dir=tmp_path / "w")
    assert list(pd.read_csv(tmp_path / "s.csv").columns) == ["id", *nfd]
    assert sub.attrs["headline"]["method"] == "optimize"


@pytest.mark.parametrize("said,task,refused", [
    ("single_label_classification", "multi_label", True),
    ("multi_label_classification", "classification", True),
    ("regression", "multi_label", True),
    (None, "multi_label", False),  # unsaid: the task given fills it in
    (None, "regression", False),
    ("multi_label_classification", "multi_label", False),
])
def test_a_task_given_fills_in_what_the_head_leaves_unsaid_never_contradicts_it(tmp_path, said, task, refused):
    from ensemble.core.errors import EnsembleError
    from ensemble.tasks import open_member

    config = {} if said is None else {"problem_type": said}
    folder = cache_fake_model(tmp_path / "m", "m", ["a", "b", "c"], config, {}, {}, tmp_path / "cache",
                              np.random.default_rng(0))
    if refused:
        with pytest.raises(EnsembleError) as e:
            open_member(folder, "m", task)
        assert said in str(e.value) and "config.json" in str(e.value) and "\n" not in str(e.value)
    else:
        assert open_member(folder, "m", task).task.name == task


def _value_data(root, task, columns, n_valid, n_test, rng):
    """Two members' outputs (``draw_values``) on a labelled validation file whose label columns
    are ``columns`` and an unlabelled test file, under ``root/data``: (data, valid, test)."""
    from tests.synthetic_members import write_value_files

    valid, yv = draw_values(task, n_valid, columns, [1.5, 1.2], rng)
    test, _ = draw_values(task, n_test, columns, [1.5, 1.2], rng)
    return write_value_files(root, task, columns, yv, n_test), valid, test


@pytest.fixture(scope="module")
def unnamed(tmp_path_factory):
    """Per task: a member ``named`` whose head lists its outputs t2, t0, t1, and ``bare``, the same
    outputs under a head that says LABEL_0, LABEL_1, LABEL_2; beside them ``a`` (t0, t1, t2)."""
    out = {}
    for task in ("regression", "multi_label"):
        root = tmp_path_factory.mktemp(f"unnamed-{task}")
        rng = np.random.default_rng(5)
        data, valid, test = _value_data(root, task, NAMES, 160, 60, rng)
        problem = {"problem_type": "regression" if task == "regression" else "multi_label_classification"}
        order = [2, 0, 1]
        members = {"a": cache_fake_model(root / "a", "a", NAMES, problem, {"valid": valid[0], "test": test[0]},
                                         data, root / "cache", rng, label={"valid": NAMES})}
        for name, labels in (("named", [NAMES[i] for i in order]), ("bare", ["LABEL_0", "LABEL_1", "LABEL_2"])):
            members[name] = cache_fake_model(root / name, name, labels, problem,
                                             {"valid": valid[1][:, order], "test": test[1][:, order]}, data,
                                             root / "cache", rng, label={"valid": NAMES})
        out[task] = members, data, root / "cache"
    return out


@pytest.mark.parametrize("task", ["regression", "multi_label"])
@pytest.mark.parametrize("weights", ["uniform", "optimize", "stack", "1,2"])
def test_outputs_said_once_vote_as_a_head_that_names_them(unnamed, tmp_path, task, weights):
    """Every task x every source of weights: a head without names, its mapping said once, votes
    exactly as the same outputs under a head that names them, whatever order the label columns
    are listed in; without the mapping it is refused."""
    from ensemble import vote
    from ensemble.core.errors import EnsembleError

    members, data, cache = unnamed[task]
    kw = dict(cache_dir=cache, weights_dir=tmp_path / "w", proba=task == "multi_label")
    named = vote({"a": members["a"], "g": members["named"]}, data, weights, columns={"label": NAMES},
                 out=tmp_path / "named.csv", **kw)
    for i, label in enumerate((NAMES, ["t1", "t2", "t0"])):
        bare = vote({"a": members["a"], "g": members["bare"]}, data, weights, columns={"label": label},
                    out=tmp_path / f"bare{i}.csv", outputs={"g": ["t2", "t0", "t1"]}, **kw)
        pd.testing.assert_frame_equal(bare[named.columns], named, check_dtype=False)
    with pytest.raises(EnsembleError, match="g does not name its outputs"):
        vote({"a": members["a"], "g": members["bare"]}, data, weights, columns={"label": NAMES},
             out=tmp_path / "refused.csv", **kw)
    assert not (tmp_path / "refused.csv").exists()
