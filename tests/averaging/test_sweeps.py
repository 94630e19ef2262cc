"""Sweeps: a real Optuna hyperparameter_search folder, listed, averaged across trials, and used as
members (DIR@top3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import optuna  # noqa: F401,E402  (the test extra installs it; a missing one fails, never skips)
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file, save_file

from ensemble.cli.main import main
from ensemble.core.errors import EnsembleError

from ..conftest import edit_config, load_korean, run_sweep


def _reference(folder: Path):
    """Independently of ensemble: (trial, step, eval_accuracy, params) of every checkpoint,
    from each trial's newest trainer_state.json."""
    out = []
    for trial in sorted(p for p in folder.iterdir() if p.is_dir()):
        ckpts = sorted((int(p.name.split("-")[1]), p) for p in trial.glob("checkpoint-*"))
        state = json.loads((ckpts[-1][1] / "trainer_state.json").read_text())
        acc = {e["step"]: e["eval_accuracy"] for e in state["log_history"] if "eval_accuracy" in e}
        for step, _ in ckpts:
            out.append((trial.name, step, acc[step], state["trial_params"]))
    return out


def _invoke(*args, cwd=None):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_fixture_is_a_real_optuna_search(sweep):
    trials = sorted(p.name for p in sweep.folder.iterdir() if p.is_dir())
    assert trials == ["run-0", "run-1", "run-2", "run-3"]
    ref = _reference(sweep.folder)
    params = {t: p for t, _, _, p in ref}
    assert params[f"run-{sweep.best_run.run_id}"] == sweep.best_run.hyperparameters
    assert len({p["learning_rate"] for p in params.values()}) == 4


def test_sweep_ls_ranks_trials_by_best_checkpoint(sweep):
    result = _invoke("sweep", "ls", sweep.folder)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:4] == ["rank", "trial", "learning_rate", "seed"]
    ref = _reference(sweep.folder)
    best = {}
    for trial, step, acc, params in ref:  # best value per trial; ties to the later step
        if trial not in best or (acc, step) >= (best[trial][0], best[trial][1]):
            best[trial] = (acc, step, params)
    order = sorted(best, key=lambda t: (-best[t][0], -best[t][1]))
    rows = [line.split() for line in lines[1:]]
    assert [r[1] for r in rows] == order
    for r in rows:
        acc, step, params = best[r[1]]
        assert float(r[2]) == pytest.approx(params["learning_rate"], rel=1e-3)
        assert int(r[3]) == params["seed"]
        assert float(r[4]) == pytest.approx(acc, abs=1e-6) and int(r[5]) == step and r[6] == "4"
    as_json = json.loads(_invoke("sweep", "ls", sweep.folder, "--json").output)
    assert [t["name"] for t in as_json["trials"]] == order
    assert as_json["trials"][0]["params"] == best[order[0]][2]


def test_avg_ckpt_across_trials_averages_the_global_top_k(sweep, tmp_path):
    out = tmp_path / "soup"
    result = _invoke("avg-ckpt", sweep.folder, "--across-trials", "--k", 4, "--out", out)
    assert result.exit_code == 0, result.output
    ref = sorted(_reference(sweep.folder), key=lambda r: (-r[2], -r[1]))  # same tie rule as ensemble
    top = ref[:4]
    manifest = json.loads((out / "ensemble_manifest.json").read_text())
    assert [(c["trial"], c["step"]) for c in manifest["checkpoints"]] == [(t, s) for t, s, _, _ in top]
    assert all(c["trial_params"] == p for c, (_, _, _, p) in zip(manifest["checkpoints"], top))
    assert [t["name"] for t in manifest["sweep"]["trials"]] and len(manifest["sweep"]["trials"]) == 4
    assert {t["name"]: t["params"] for t in manifest["sweep"]["trials"]} == {t: p for t, _, _, p in ref}
    assert len(manifest["candidates"]) == 16
    # the weights are the float64 mean of those four checkpoints
    sds = [load_file(sweep.folder / t / f"checkpoint-{s}" / "model.safetensors") for t, s, _, _ in top]
    got = load_file(out / "model.safetensors")
    for name, value in got.items():
        expect = np.mean([sd[name].astype(np.float64) for sd in sds], axis=0)
        np.testing.assert_allclose(value, expect, atol=1e-6, err_msg=name)
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {int(k): v for k, v in json.loads((out / "config.json").read_text())["id2label"].items()}


def test_greedy_soup_across_trials_starts_from_the_global_best(sweep, tmp_path):
    import pandas as pd

    holdout = tmp_path / "holdout.csv"
    pd.DataFrame({"text": sweep.valid_texts, "label": sweep.valid_labels}).to_csv(holdout, index=False)
    out = tmp_path / "greedy"
    result = _invoke("avg-ckpt", sweep.folder, "--across-trials", "--method", "greedy", "--holdout", holdout,
                     "--out", out, "-q")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "ensemble_manifest.json").read_text())
    trials = manifest["search"]
    assert len(trials) == 16 and all("trial" in t for t in trials)
    best = sorted(_reference(sweep.folder), key=lambda r: (-r[2], -r[1]))[0]
    assert (trials[0]["trial"], trials[0]["step"], trials[0]["accepted"]) == (best[0], best[1], True)
    accepted = [(t["trial"], t["step"]) for t in trials if t["accepted"]]
    assert [(c["trial"], c["step"]) for c in manifest["checkpoints"]] == accepted
    assert manifest["method"] == "greedy" and manifest["selected_on_holdout"]


@pytest.fixture
def sweep_copy(sweep, tmp_path):
    dst = tmp_path / "hp"
    shutil.copytree(sweep.folder, dst, ignore=shutil.ignore_patterns("optimizer.pt", "scheduler.pt", "rng_state*"))
    return dst


def test_a_trial_with_another_label_map_is_refused_by_name(sweep_copy, tmp_path):
    for ck in (sweep_copy / "run-2").glob("checkpoint-*"):
        edit_config(ck, id2label={"0": "x", "1": "y", "2": "z"}, label2id={"x": 0, "y": 1, "z": 2})
    result = _invoke("avg-ckpt", sweep_copy, "--across-trials", "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert "trial run-2" in result.output and "id2label" in result.output and "--exclude-trial run-2" in result.output
    assert not (tmp_path / "o").exists()
    result = _invoke("avg-ckpt", sweep_copy, "--across-trials", "--exclude-trial", "run-2", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "o" / "ensemble_manifest.json").read_text())
    assert "run-2" not in {t["name"] for t in manifest["sweep"]["trials"]}


def test_a_trial_with_other_shapes_is_refused_by_name(sweep_copy, tmp_path):
    for ck in (sweep_copy / "run-1").glob("checkpoint-*"):
        sd = load_file(ck / "model.safetensors")
        sd["bert.pooler.dense.bias"] = np.zeros(7, np.float32)
        save_file(sd, ck / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(EnsembleError, match=r"trial run-1 differs from trial run-\d.*bert.pooler.dense.bias.*"
                                            r"exclude_trials=\[run-1\]"):
        from ensemble.averaging.build import average_checkpoints

        average_checkpoints(sweep_copy, across_trials=True, out=tmp_path / "o")


def test_sweep_needs_across_trials_and_a_run_is_not_a_sweep(sweep, runs, tmp_path):
    result = _invoke("avg-ckpt", sweep.folder, "--out", tmp_path / "o")
    assert result.exit_code == 1 and "--across-trials" in result.output and "sweep" in result.output
    result = _invoke("avg-ckpt", runs.tok, "--across-trials", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "single Trainer run" in result.output
    result = _invoke("avg-ckpt", sweep.folder, "--across-trials", "--exclude-trial", "run-9", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "no trial 'run-9'" in result.output
    result = _invoke("sweep", "ls", tmp_path)
    assert result.exit_code == 1 and "no trial folders" in result.output
    result = _invoke("sweep", "ls", sweep.folder, "--metric", "f1")  # the error names the sweep, not a trial
    assert result.exit_code == 1 and f"error: {sweep.folder}: metric eval_f1 is not logged" in result.output


def test_top3_members_are_the_best_checkpoints_of_the_best_trials(sweep, tmp_path, monkeypatch):
    import pandas as pd

    from ensemble.averaging.sweeps import expand_members

    ref = _reference(sweep.folder)
    best = {}
    for trial, step, acc, _ in ref:
        if trial not in best or (acc, step) >= best[trial]:
            best[trial] = (acc, step)
    order = sorted(best, key=lambda t: (-best[t][0], -best[t][1]))[:3]
    members = expand_members({"hp": f"{sweep.folder}@top3", "other": "x/y"})
    assert list(members) == [f"hp-{t}" for t in order] + ["other"]
    assert [members[f"hp-{t}"] for t in order] == [sweep.folder / t / f"checkpoint-{best[t][1]}" for t in order]
    assert len(expand_members({"hp": f"{sweep.folder}@all"})) == 4
    with pytest.raises(EnsembleError, match="@top5 but only 4 trial"):
        expand_members({"hp": f"{sweep.folder}@top5"})

    # predict, then vote and report from a project file that names the sweep once
    data = tmp_path / "data"
    data.mkdir()
    n = len(sweep.valid_texts)
    pd.DataFrame({"id": range(n), "text": sweep.valid_texts, "label": sweep.valid_labels}).to_csv(data / "valid.csv", index=False)
    pd.DataFrame({"id": range(n), "text": sweep.valid_texts}).to_csv(data / "test.csv", index=False)
    (tmp_path / "ensemble.toml").write_text(
        f'[data]\nvalid = "data/valid.csv"\ntest = "data/test.csv"\n\n[models]\nhp = "{sweep.folder}@top3"\n')
    monkeypatch.chdir(tmp_path)
    result = _invoke("predict", "-q")
    assert result.exit_code == 0, result.output
    result = _invoke("vote", "--weights", "best")
    assert result.exit_code == 0, result.output
    sidecar = json.loads(Path(result.stdout.strip().splitlines()[-1] + ".json").read_text())
    assert list(sidecar["weights"]) == [f"hp-{t}" for t in order]
    assert sorted(sidecar["weights"].values()) == [0.0, 0.0, 1.0]
    # the same members given on the command line, named after the folder
    result = _invoke("report", "--model", f"{sweep.folder}@top3", "--methods", "acc", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    table = doc["table"]
    assert [f"hp-{t}" for t in order] == [k for k in table if table[k]["kind"] == "model"]
    # each member is a checkpoint the Trainer's eval metric picked: said, and the curse line caveated
    assert all("a Trainer checkpoint" in table[f"hp-{t}"]["note"] for t in order)
    assert doc["winners_curse"]["members_chosen_on_eval_set"] is True
    assert table["best"]["kind"] == "selection" and table["best"]["accuracy"] == max(
        table[f"hp-{t}"]["accuracy"] for t in order)


def test_hp_name_trials_keep_their_trial_name(runs, tmp_path):
    train, valid = load_korean(n_train=96, n_valid=32)  # 3 steps: one evaluation in 4.x too
    run_sweep(tmp_path / "named", runs.base, train, valid, n_trials=2, epochs=1,
              hp_name=lambda trial: f"lr-trial-{trial.number}")
    from ensemble.averaging.sweeps import find_sweep

    sw = find_sweep(tmp_path / "named")
    assert sorted(t.name for t in sw.trials) == ["lr-trial-0", "lr-trial-1"]
    assert {t.trial_name for t in sw.trials} == {"lr-trial-0", "lr-trial-1"}
    assert all(set(t.params) == {"learning_rate", "seed"} for t in sw.trials)


def test_init_lists_a_sweep_and_run_averages_across_its_trials(sweep, tmp_path, monkeypatch):
    import pandas as pd

    from ensemble.cli.project import load_project

    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    shutil.copytree(sweep.folder, root / "sweeps" / "hp",
                    ignore=shutil.ignore_patterns("optimizer.pt", "scheduler.pt", "rng_state*"))
    n = len(sweep.valid_texts)
    pd.DataFrame({"id": range(n), "text": sweep.valid_texts, "label": sweep.valid_labels}).to_csv(
        root / "data" / "valid.csv", index=False)
    pd.DataFrame({"id": range(n), "text": sweep.valid_texts}).to_csv(root / "data" / "test.csv", index=False)
    result = _invoke("init", root)
    assert result.exit_code == 0, result.output
    text = (root / "ensemble.toml").read_text()
    assert 'hp = "sweeps/hp@top3"   # a sweep of 4 trials' in text and "run-0" not in text
    p = load_project(root / "ensemble.toml")
    assert len(p.model_paths()) == 3 and all(n.startswith("hp-run-") for n in p.model_paths())
    # a [runs] entry over the sweep: ensemble run averages the best 4 checkpoints of any trial
    (root / "ensemble.toml").write_text(text.replace("[runs]", '[runs]\nsoup = { path = "sweeps/hp", k = 4, '
                                                     'across_trials = true }'))
    monkeypatch.chdir(root)
    result = _invoke("run", "-q")
    assert result.exit_code == 0, result.output
    manifest = json.loads((root / "weights" / "soup-top4" / "ensemble_manifest.json").read_text())
    ref = sorted(_reference(sweep.folder), key=lambda r: (-r[2], -r[1]))[:4]
    assert [(c["trial"], c["step"]) for c in manifest["checkpoints"]] == [(t, s) for t, s, _, _ in ref]
    again = _invoke("run")
    assert "average soup: up to date" in again.output
