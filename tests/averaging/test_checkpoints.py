"""Finding checkpoints, reading their metrics from trainer_state.json, ranking them."""

from __future__ import annotations

import json
import logging

import pytest

from ensemble.averaging.checkpoints import find_checkpoints, infer_greater_is_better, rank_checkpoints, rank_run
from ensemble.core.errors import EnsembleError


def _fake_run(root, history, folders, best=None):
    """Checkpoint folders holding only a trainer_state.json; the newest has the full history."""
    for step in folders:
        ck = root / f"checkpoint-{step}"
        ck.mkdir(parents=True)
        state = {"global_step": step, "log_history": [e for e in history if e["step"] <= step]}
        if best:
            state.update(best_metric=best[0], best_global_step=best[1])
        (ck / "trainer_state.json").write_text(json.dumps(state))
    return root


def test_real_run_metrics_equal_the_log_history(runs):
    cks = find_checkpoints(runs.tok)
    assert [c.step for c in cks] == sorted(int(p.name.split("-")[1]) for p in runs.tok.glob("checkpoint-*"))
    history = json.loads((cks[-1].path / "trainer_state.json").read_text())["log_history"]
    for c in cks:
        entry = next(e for e in history if e["step"] == c.step and "eval_accuracy" in e)
        assert c.metrics["eval_accuracy"] == entry["eval_accuracy"]
        assert c.metrics["eval_loss"] == entry["eval_loss"]
        assert "eval_runtime" not in c.metrics


def test_deleted_checkpoints_are_dropped_and_metric_for_best_model_recovered(runs):
    # notok: save_total_limit=3 deleted some folders; compute_metrics logged only f1, and
    # metric_for_best_model="f1" lives in training_args.bin, which is never read.
    state = json.loads((sorted(runs.notok.glob("checkpoint-*"), key=lambda p: int(p.name[11:]))[-1]
                        / "trainer_state.json").read_text())
    logged_steps = {e["step"] for e in state["log_history"] if "eval_f1" in e}
    folders = {int(p.name.split("-")[1]) for p in runs.notok.glob("checkpoint-*")}
    assert len(logged_steps) > len(folders)
    ranking = rank_run(runs.notok)
    assert {c.step for c in ranking.ranked} == folders
    assert ranking.metric == "eval_f1" and ranking.greater_is_better


def test_ranking_direction_and_ties_go_to_the_later_step(tmp_path):
    history = [
        {"step": 10, "eval_loss": 0.5, "eval_accuracy": 0.80},
        {"step": 20, "eval_loss": 0.4, "eval_accuracy": 0.85},
        {"step": 30, "eval_loss": 0.4, "eval_accuracy": 0.85},
        {"step": 40, "eval_loss": 0.6, "eval_accuracy": 0.70},
    ]
    run = _fake_run(tmp_path / "run", history, [10, 20, 30, 40])
    acc = rank_run(run)
    assert acc.metric == "eval_accuracy" and acc.greater_is_better
    assert [c.step for c in acc.ranked] == [30, 20, 10, 40]
    loss = rank_run(run, metric="loss")
    assert loss.metric == "eval_loss" and not loss.greater_is_better
    assert [c.step for c in loss.ranked] == [30, 20, 10, 40]
    forced = rank_run(run, metric="eval_loss", greater_is_better=True)
    assert [c.step for c in forced.ranked] == [40, 10, 30, 20]
    table = acc.format_table(acc.top(2))
    assert table.splitlines()[1].split()[:2] == ["1", "checkpoint-30"] and "yes" in table.splitlines()[2]


def test_eval_loss_is_the_fallback_and_missing_entries_are_skipped_with_a_warning(tmp_path, caplog):
    history = [{"step": 10, "loss": 1.0}, {"step": 10, "eval_loss": 0.9},
               {"step": 20, "loss": 0.8}, {"step": 30, "eval_loss": 0.7}]
    run = _fake_run(tmp_path / "run", history, [10, 20, 30])
    with caplog.at_level(logging.WARNING, logger="ensemble"):
        ranking = rank_run(run)
    assert ranking.metric == "eval_loss"
    assert [c.step for c in ranking.ranked] == [30, 10]
    assert [c.step for c in ranking.skipped] == [20]
    assert "checkpoint-20" in caplog.text and "skipped" in caplog.text
    assert "not logged" in ranking.format_table()


def test_entries_at_one_step_merge_and_the_first_value_wins(tmp_path):
    # Two eval sets log separate entries at one step; a later trainer.evaluate() after
    # load_best_model_at_end logs the best model's scores at the last step: ignored.
    history = [{"step": 10, "eval_a_accuracy": 0.5}, {"step": 10, "eval_b_accuracy": 0.6},
               {"step": 20, "eval_a_accuracy": 0.4}, {"step": 20, "eval_a_accuracy": 0.9}]
    run = _fake_run(tmp_path / "run", history, [10, 20])
    cks = find_checkpoints(run)
    assert cks[0].metrics == {"eval_a_accuracy": 0.5, "eval_b_accuracy": 0.6}
    assert cks[1].metrics == {"eval_a_accuracy": 0.4}


def test_metric_for_best_model_is_recovered_only_when_unambiguous(tmp_path):
    history = [{"step": 10, "eval_f1": 0.7, "eval_loss": 0.7}, {"step": 20, "eval_f1": 0.6, "eval_loss": 0.5}]
    run = _fake_run(tmp_path / "a", history, [10, 20], best=(0.7, 10))
    assert rank_run(run).metric == "eval_loss"  # 0.7 is both f1 and loss at step 10
    history[0]["eval_loss"] = 0.8
    run = _fake_run(tmp_path / "b", history, [10, 20], best=(0.7, 10))
    assert rank_run(run).metric == "eval_f1"


@pytest.mark.parametrize("name, greater", [("eval_loss", False), ("eval_perplexity", False),
                                           ("eval_wer", False), ("eval_cer", False),
                                           ("eval_accuracy", True), ("eval_f1", True)])
def test_direction_inference(name, greater):
    assert infer_greater_is_better(name) is greater


def test_errors_name_the_folder_and_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnsembleError, match=r"empty: no checkpoint-N folders"):
        find_checkpoints(tmp_path / "empty")
    (tmp_path / "nostate" / "checkpoint-5").mkdir(parents=True)
    with pytest.raises(EnsembleError, match=r"nostate: no checkpoint holds a trainer_state.json"):
        find_checkpoints(tmp_path / "nostate")
    run = _fake_run(tmp_path / "run", [{"step": 10, "eval_accuracy": 0.5}], [10])
    with pytest.raises(EnsembleError, match=r"metric eval_acc is not logged .*logged: eval_accuracy"):
        rank_run(run, metric="acc")
    with pytest.raises(EnsembleError, match=r"k=2 but only 1 checkpoint\(s\) logged eval_accuracy; pass k=1"):
        rank_run(run).top(2)
    (tmp_path / "bad" / "checkpoint-1").mkdir(parents=True)
    (tmp_path / "bad" / "checkpoint-1" / "trainer_state.json").write_text("{not json")
    with pytest.raises(EnsembleError, match=r"trainer_state.json: not valid JSON"):
        find_checkpoints(tmp_path / "bad")
    with pytest.raises(EnsembleError):
        rank_checkpoints([])
