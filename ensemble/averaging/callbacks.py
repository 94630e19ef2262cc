"""``TrainerCallback``s: keep the best K checkpoints on disk as training goes, and write the
top-K checkpoint average when training ends."""

from __future__ import annotations

import copy
import logging
import os
import shutil
from pathlib import Path
from typing import Callable

from transformers import TrainerCallback

from ensemble.averaging.build import average_checkpoints
from ensemble.averaging.checkpoints import (
    CHECKPOINT_RE,
    Checkpoint,
    default_metric,
    metrics_by_step,
    normalize_metric,
    rank_checkpoints,
)

log = logging.getLogger(__name__)

__all__ = ['TopKAveragingCallback', 'KeepBestCheckpointsCallback']


class TopKAveragingCallback(TrainerCallback):
    """Average the run's best ``k`` checkpoints at the end of training, and evaluate the average.

    Add it to your own ``Trainer``: ``Trainer(..., callbacks=[TopKAveragingCallback(k=4)])``.
    At ``on_train_end`` it calls :func:`ensemble.averaging.build.average_checkpoints` on the run's
    ``output_dir`` (same ranking, same folder layout, same manifest). When the trainer ran an
    evaluation, the average is then evaluated on the same eval dataloader and the result is
    appended to ``state.log_history`` as ``eval_<name>_avg`` (e.g. ``eval_accuracy_avg``,
    ``eval_loss_avg``) and kept in :attr:`metrics`.

    Parameters
    ----------
    k : int, default 4
    metric : str, optional
        Default: the trainer's ``metric_for_best_model`` when set, else as in
        :func:`~ensemble.averaging.build.average_checkpoints` (``eval_accuracy``, else ``eval_loss``).
    out : path-like, optional
        Default ``weights/<run-name>-top<K>`` under the current directory.
    compute_metrics : callable, optional
        The ``compute_metrics`` you gave the ``Trainer`` (a callback cannot reach it); without
        it the average's ``eval_loss`` and ``eval_accuracy`` are computed.
    force : bool, default True
        Replace an earlier average at ``out`` (a re-run of the same training script).
    tokenizer : path-like, optional
        See :func:`~ensemble.averaging.build.average_checkpoints`.

    Attributes
    ----------
    output_dir : Path or None
        The averaged model folder, once written.
    metrics : dict
        The average's eval metrics, once computed.
    """

    def __init__(self, k: int = 4, metric: str | None = None, out: str | os.PathLike | None = None, *,
                 compute_metrics: Callable | None = None, force: bool = True,
                 tokenizer: str | os.PathLike | None = None):
        self.k, self.metric, self.out = k, metric, out
        self.compute_metrics, self.force, self.tokenizer = compute_metrics, force, tokenizer
        self.output_dir: Path | None = None
        self.metrics: dict[str, float] = {}

    def on_train_end(self, args, state, control, model=None, eval_dataloader=None, **kwargs):
        if not state.is_world_process_zero:
            return
        metric, gib = self.metric, None
        if metric is None and args.metric_for_best_model:
            metric, gib = args.metric_for_best_model, args.greater_is_better
        self.output_dir = average_checkpoints(
            args.output_dir, k=self.k, metric=metric, out=self.out, greater_is_better=gib,
            tokenizer=self.tokenizer, force=self.force, progress=False,
        )
        if model is None or eval_dataloader is None:
            return
        self.metrics = self._evaluate(model, eval_dataloader)
        state.log_history.append({**self.metrics, "step": state.global_step})
        log.info("top-%d average %s: %s", self.k, self.output_dir, self.metrics)

    def _evaluate(self, model, dataloader) -> dict[str, float]:
        import numpy as np
        import torch
        from safetensors.torch import load_file
        from transformers import EvalPrediction

        avg = copy.deepcopy(model).eval()
        state = {}
        for f in sorted(self.output_dir.glob("*.safetensors")):
            state.update(load_file(f, device=str(next(avg.parameters()).device)))
        # Tied weights are saved once, under one name: the other is missing here and re-tied.
        missing, unexpected = avg.load_state_dict(state, strict=False)
        if unexpected:
            raise RuntimeError(f"{self.output_dir}: average does not fit the model: unexpected {unexpected}")
        if missing:
            avg.tie_weights()
        device = next(avg.parameters()).device
        logits, labels, loss_sum, n = [], [], 0.0, 0
        with torch.inference_mode():
            for batch in dataloader:
                batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
                out = avg(**batch)
                size = len(batch["labels"])
                loss_sum += float(out.loss) * size
                n += size
                logits.append(out.logits.float().cpu().numpy())
                labels.append(batch["labels"].cpu().numpy())
        logits, labels = np.concatenate(logits), np.concatenate(labels)
        metrics = {"eval_loss": loss_sum / max(n, 1)}
        if self.compute_metrics is not None:
            for k, v in self.compute_metrics(EvalPrediction(predictions=logits, label_ids=labels)).items():
                metrics[normalize_metric(k)] = float(v)
        else:
            metrics["eval_accuracy"] = float((logits.argmax(-1) == labels).mean())
        return {f"{k}_avg": v for k, v in metrics.items()}


class KeepBestCheckpointsCallback(TrainerCallback):
    """Keep the best ``k`` checkpoints by an eval metric on disk, and delete the others as
    training goes: what ``save_total_limit`` cannot do (it keeps the newest ones and the single
    best, so the top-K to average are gone by the end of a run).

    After every save, the run's ``checkpoint-N`` folders are ranked by the metric logged at their
    step (``state.log_history``, the direction as :func:`~ensemble.averaging.build.average_checkpoints`
    takes it); all but the best ``k`` are deleted, except the newest (the one just written, which
    a resumed run needs) and the trainer's ``best_model_checkpoint`` (``load_best_model_at_end``
    loads it). Use it instead of ``save_total_limit``, alone or with
    :class:`TopKAveragingCallback`: ``callbacks=[KeepBestCheckpointsCallback(4), TopKAveragingCallback(4)]``.

    Parameters
    ----------
    k : int, default 4
    metric : str, optional
        Default: the trainer's ``metric_for_best_model`` (with its ``greater_is_better``), else
        ``eval_accuracy`` when logged, else ``eval_loss``.
    greater_is_better : bool, optional
        The metric's direction; default as :func:`~ensemble.averaging.checkpoints.metric_direction` says.

    Attributes
    ----------
    deleted : list of Path
        The checkpoint folders this callback removed.
    """

    def __init__(self, k: int = 4, metric: str | None = None, greater_is_better: bool | None = None):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            from ensemble.core.errors import EnsembleError

            raise EnsembleError(f"k must be a positive integer, got {k!r}")
        self.k, self.metric, self.greater_is_better = k, metric, greater_is_better
        self.deleted: list[Path] = []

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        run = Path(args.output_dir)
        folders = sorted((int(m.group(1)), p) for p in run.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir())
        if len(folders) <= self.k + 1:
            return
        by_step = metrics_by_step(state.log_history)  # the trainer's state in memory: this save's eval included
        checkpoints = [Checkpoint(p, step, by_step.get(step, {})) for step, p in folders]
        metric, gib = self.metric, self.greater_is_better
        if metric is None and args.metric_for_best_model:
            metric = args.metric_for_best_model
            gib = args.greater_is_better if gib is None else gib
        recorded = {"best_metric": state.best_metric, "log_history": state.log_history,
                    "best_global_step": getattr(state, "best_global_step", None),
                    "best_model_checkpoint": state.best_model_checkpoint}
        name = normalize_metric(metric) if metric else default_metric(checkpoints, recorded)
        if name not in {key for c in checkpoints for key in c.metrics}:
            return  # nothing evaluated yet: nothing to rank by
        ranking = rank_checkpoints(checkpoints, name, gib, state=recorded, where=run)  # its direction as avg-ckpt's
        keep = {c.path for c in ranking.ranked[:self.k]} | {folders[-1][1]}
        if state.best_model_checkpoint:
            keep.add(run / Path(state.best_model_checkpoint).name)
        for _, path in folders:
            if path not in keep:
                shutil.rmtree(path, ignore_errors=True)
                self.deleted.append(path)
                log.info("deleted %s: not among the best %d by %s", path, self.k, name)
