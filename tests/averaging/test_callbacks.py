"""TopKAveragingCallback inside a real Trainer run."""

from __future__ import annotations

import json

import numpy as np
import torch

from ensemble.averaging.build import average_checkpoints
from ensemble.averaging.callbacks import TopKAveragingCallback


def test_callback_writes_the_average_and_logs_its_eval_metrics(runs, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ensemble.cli.example import train_run
    from tests.conftest import load_korean

    train, valid = load_korean()
    cb = TopKAveragingCallback(k=3, out=tmp_path / "avg")
    trainer = train_run(tmp_path / "run", runs.base, train, valid, epochs=2, steps=4, seed=3, callbacks=[cb])

    # Same function, same folder: a direct call gives identical weights.
    again = average_checkpoints(tmp_path / "run", k=3, out=tmp_path / "again", progress=False)
    from safetensors.torch import load_file

    got, ref = load_file(cb.output_dir / "model.safetensors"), load_file(again / "model.safetensors")
    assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)
    manifest = json.loads((cb.output_dir / "ensemble_manifest.json").read_text())
    assert manifest["k"] == 3 and manifest["metric"] == "eval_accuracy"

    # The logged metrics equal an independent evaluation of the averaged model.
    model = AutoModelForSequenceClassification.from_pretrained(cb.output_dir).eval()
    tok = AutoTokenizer.from_pretrained(cb.output_dir)
    label2id = model.config.label2id
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(valid[0]), 16):
            batch = tok(valid[0][i:i + 16], truncation=True, max_length=64, padding=True, return_tensors="pt")
            pred = model(**batch).logits.argmax(-1).numpy()
            correct += int((pred == np.array([label2id[y] for y in valid[1][i:i + 16]])).sum())
    assert abs(cb.metrics["eval_accuracy_avg"] - correct / len(valid[0])) < 1e-9
    assert "eval_loss_avg" in cb.metrics
    assert trainer.state.log_history[-1]["eval_accuracy_avg"] == cb.metrics["eval_accuracy_avg"]


def test_callback_uses_metric_for_best_model_and_compute_metrics(runs, tmp_path):
    from ensemble.cli.example import _compute_metrics, train_run
    from tests.conftest import load_korean

    train, valid = load_korean()
    cb = TopKAveragingCallback(k=2, out=tmp_path / "avg", compute_metrics=_compute_metrics(["f1"]))
    train_run(tmp_path / "run", runs.base, train, valid, epochs=2, steps=4, seed=4, metrics=("f1",),
              metric_for_best_model="f1", callbacks=[cb])
    assert json.loads((cb.output_dir / "ensemble_manifest.json").read_text())["metric"] == "eval_f1"
    assert set(cb.metrics) == {"eval_loss_avg", "eval_f1_avg"}


def test_keep_best_checkpoints_leaves_the_top_k_and_the_newest_on_disk(runs, tmp_path):
    """A real Trainer run saved every 3 of 18 steps: the best 2 by eval_accuracy (ties to the later
    step, as avg-ckpt ranks) and the newest remain; the top-2 average is the one avg-ckpt would
    have written from every checkpoint."""
    from ensemble.averaging.callbacks import KeepBestCheckpointsCallback
    from ensemble.cli.example import train_run
    from tests.conftest import load_korean

    train, valid = load_korean()
    keep, avg = KeepBestCheckpointsCallback(k=2), TopKAveragingCallback(k=2, out=tmp_path / "avg")
    trainer = train_run(tmp_path / "run", runs.base, train, valid, epochs=3, steps=3, seed=5, callbacks=[keep, avg])
    acc = {e["step"]: e["eval_accuracy"] for e in trainer.state.log_history if "eval_accuracy" in e}
    assert sorted(acc) == [3, 6, 9, 12, 15, 18]
    best = sorted(acc, key=lambda s: (-acc[s], -s))[:2]
    on_disk = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "run").glob("checkpoint-*"))
    assert on_disk == sorted(set(best) | {18})
    assert sorted(int(p.name.split("-")[1]) for p in keep.deleted) == sorted(set(acc) - set(best) - {18})
    manifest = json.loads((avg.output_dir / "ensemble_manifest.json").read_text())
    assert sorted(c["step"] for c in manifest["checkpoints"]) == sorted(best)


def test_keep_best_checkpoints_follows_a_lower_is_better_metric(runs, tmp_path):
    from ensemble.averaging.callbacks import KeepBestCheckpointsCallback
    from ensemble.cli.example import train_run
    from tests.conftest import load_korean

    train, valid = load_korean()
    keep = KeepBestCheckpointsCallback(k=2, metric="loss")
    trainer = train_run(tmp_path / "run", runs.base, train, valid, epochs=3, steps=3, seed=6, callbacks=[keep])
    loss = {e["step"]: e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e}
    best = sorted(loss, key=lambda s: (loss[s], -s))[:2]
    on_disk = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "run").glob("checkpoint-*"))
    assert on_disk == sorted(set(best) | {max(loss)})
