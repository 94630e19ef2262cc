"""Rule one of the trust issues for the column tasks: an option is applied or refused, never
recorded and ignored, whatever the source of the weights (a method fitted, ``stack``, weights given
by hand, a weights file). Each case reads what was submitted, not only what the sidecar says."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ensemble.core.errors import EnsembleError

from tests.synthetic_members import make_task_members

# every source of weights a vote takes: a method's name, stack, numbers given by hand
SOURCES = ["uniform", "optimize", "select", "stack", "score", "1,2,1"]


@pytest.fixture(scope="module", params=["regression", "multi_label"])
def world(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"options-{request.param}")
    members, data, cache_dir, columns, names = make_task_members(request.param, root)
    return request.param, members, data, cache_dir, columns, names, root


def _vote(world, tmp_path, weights, **options):
    from ensemble import vote

    task, members, data, cache_dir, columns, names, root = world
    return vote(members, {**data, **options.pop("data", {})}, weights, columns=columns, cache_dir=cache_dir,
                out=tmp_path / "s.csv", weights_dir=tmp_path / "w", **options)


def _narrow_train(world, tmp_path):
    """A labelled training split whose targets span [0.2, 0.4]: clipping to its range shows."""
    task, members, data, cache_dir, columns, names, root = world
    train = pd.read_csv(data["valid"])
    for c in names:
        v = train[c].to_numpy(dtype=float)
        train[c] = 0.2 + 0.2 * (v - v.min()) / (v.max() - v.min())
    path = tmp_path / "train.csv"
    train.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("weights", SOURCES)
def test_clip_is_applied_to_every_source_of_weights(world, tmp_path, weights):
    task, members, data, cache_dir, columns, names, root = world
    if task != "regression":
        with pytest.raises(EnsembleError, match="clip"):
            _vote(world, tmp_path, weights, clip=True)
        return
    unclipped = _vote(world, tmp_path / "a", weights)
    clipped = _vote(world, tmp_path / "b", weights, clip=True, data={"train": _narrow_train(world, tmp_path)})
    values = clipped[names].to_numpy(dtype=float)
    assert values.min() >= 0.2 - 1e-12 and values.max() <= 0.4 + 1e-12
    np.testing.assert_allclose(values, np.clip(unclipped[names].to_numpy(dtype=float), 0.2, 0.4), atol=1e-9)
    side = json.loads((tmp_path / "b" / "s.csv.json").read_text())
    assert side["procedure"]["clip"] == [[0.2] * len(names), [0.4] * len(names)]


@pytest.mark.parametrize("weights", SOURCES)
def test_a_threshold_is_applied_to_every_source_of_weights(world, tmp_path, weights):
    """A threshold given is the one the labels are decided at; "global" is fitted on the labelled
    validation rows for weights given by hand too (never 0.5 with a warning of no labels)."""
    task, members, data, cache_dir, columns, names, root = world
    if task != "multi_label":
        with pytest.raises(EnsembleError, match="threshold"):
            _vote(world, tmp_path, weights, threshold=0.9)
        return
    proba = _vote(world, tmp_path / "p", weights, proba=True)[names].to_numpy(dtype=float)
    at = _vote(world, tmp_path / "t", weights, threshold=0.9)
    np.testing.assert_array_equal(at[names].to_numpy(), (proba >= 0.9).astype(int))
    assert json.loads((tmp_path / "t" / "s.csv.json").read_text())["threshold"] == 0.9
    fitted = json.loads((tmp_path / "p" / "s.csv.json").read_text())["threshold"]
    from ensemble.tasks.columns.fitting import fit_threshold

    y = pd.read_csv(data["valid"])[names].to_numpy(dtype=float)
    # the threshold fitted on the validation rows' combined probabilities, whatever the weights' source
    valid = _vote(world, tmp_path / "v", weights, proba=True, data={"test": data["valid"]})
    assert fitted == pytest.approx(fit_threshold(valid[names].to_numpy(dtype=float), y, "f1_micro", "global"))


@pytest.mark.parametrize("option,value", [("threshold", 0.9), ("clip", True), ("combine", "rank"),
                                          ("combine", "logit")])
def test_a_weights_file_refuses_the_settings_it_keeps(world, tmp_path, option, value):
    """A weights file is applied with the combination, threshold and clipping it was fitted with:
    another given with it is refused, and the sidecar records the file's."""
    task, members, data, cache_dir, columns, names, root = world
    _vote(world, tmp_path / "fit", "optimize")
    (path,) = (tmp_path / "fit" / "w").glob("*.json")
    with pytest.raises(EnsembleError) as e:
        _vote(world, tmp_path / "again", str(path), **{option: value})
    assert option in str(e.value) and "\n" not in str(e.value)
    _vote(world, tmp_path / "again", str(path))
    side = json.loads((tmp_path / "again" / "s.csv.json").read_text())
    kept = json.loads(path.read_text())
    assert side["procedure"]["combine"] == kept["combine"] and side["procedure"]["threshold"] == kept["threshold"]


def test_proba_is_applied_or_refused(world, tmp_path):
    """Regression outputs have no probabilities; a multi-label sample of one joined-labels column
    has no room for them: both refused, never written without them."""
    task, members, data, cache_dir, columns, names, root = world
    if task == "regression":
        with pytest.raises(EnsembleError, match="proba"):
            _vote(world, tmp_path, "uniform", proba=True)
        return
    sample = tmp_path / "sample.csv"
    pd.DataFrame({"id": pd.read_csv(data["test"])["id"], "labels": ""}).to_csv(sample, index=False)
    with pytest.raises(EnsembleError, match="proba"):
        _vote(world, tmp_path, "uniform", proba=True, sample_submission=sample)
    assert not (tmp_path / "s.csv").exists()


def test_run_and_vote_clip_to_the_same_range(world, tmp_path, monkeypatch):
    """ensemble run reads [data] train for clipping's range, as ensemble vote does (it predicts
    nothing on it): one project, one range, one submission."""
    import shutil

    from click.testing import CliRunner

    from ensemble.cli import main

    task, members, data, cache_dir, columns, names, root = world
    if task != "regression":
        return
    proj = tmp_path / "proj"
    shutil.copytree(root, proj)
    train = _narrow_train(world, proj / "data")
    models = "\n".join(f'{m} = "models/{m}"' for m in members)
    (proj / "ensemble.toml").write_text(
        f'[data]\ntask = "regression"\nvalid = "data/valid.csv"\ntest = "data/test.csv"\ntrain = "data/{train.name}"\n'
        f'label = {json.dumps(names)}\n\n[models]\n{models}\n\n[vote]\nweights = "optimize"\nclip = true\n',
        encoding="utf-8")
    monkeypatch.chdir(proj)
    ran = CliRunner().invoke(main, ["run"])
    assert ran.exit_code == 0, ran.output
    submitted = proj / ran.stdout.strip().splitlines()[-1]
    voted = _vote(world, tmp_path / "v", "optimize", clip=True, data={"train": train})
    pd.testing.assert_frame_equal(pd.read_csv(submitted), voted.reset_index(drop=True), check_dtype=False)
    side = json.loads(submitted.with_name(submitted.name + ".json").read_text())
    assert side["procedure"]["clip"] == [[0.2] * len(names), [0.4] * len(names)]


def test_a_test_file_with_some_placeholder_target_columns_is_voted_on(world, tmp_path):
    """The test split's label columns are never read (the docs say so): one of them present with
    placeholders, the others absent, changes nothing."""
    task, members, data, cache_dir, columns, names, root = world
    test = pd.read_csv(data["test"])
    test[names[0]] = "?"
    path = tmp_path / "test.csv"
    test.to_csv(path, index=False)
    plain = _vote(world, tmp_path / "a", "uniform")
    with_column = _vote(world, tmp_path / "b", "uniform", data={"test": path})
    pd.testing.assert_frame_equal(plain, with_column)
