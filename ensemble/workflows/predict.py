"""Predicting many members: every model folder (a fold group's fold models included) over its
splits, its logits computed where the cache has none with the settings in force. The one predict
workflow of ``ensemble predict`` and ``ensemble run``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from ensemble.core.outputs import Logits

log = logging.getLogger(__name__)

__all__ = ["PredictRow", "predict_jobs", "predict_logits", "predict_forward"]


@dataclass(frozen=True)
class PredictRow:
    """One (model, split) of a predict: where its logits came from.

    Attributes
    ----------
    member, model : str
        The member's name and the model folder's (a fold model: ``<group>-fold<k>``).
    split : str
        The split's label (a fold model's held-out training rows: ``train-fold<k>``).
    rows : int or None
        Rows predicted (None: up to date, not read).
    how : {"computed", "cached", "up to date"}
        Computed now, read back from the cache, or found up to date by its header alone.
    accuracy : float or None
        On a labelled split whose logits were read.
    cache_path : str
        The cache entry ("-" when none was read or written).
    """

    member: str
    model: str
    split: str
    rows: int | None
    how: str
    accuracy: float | None
    cache_path: str


def check_jobs(jobs: Sequence) -> None:
    """Before any model runs: the members are of one task, each split's texts are ones its task
    reads, and each labelled split's labels fit each model's outputs (a one-line error naming the
    file; nothing computed, nothing cached)."""
    from ensemble.tasks import shared_task

    for _, ref, todo in jobs:
        for _, split in todo:
            ref.task.check_texts(split)
            if split.labels is not None:
                ref.task.check_labels(split, ref.labels, f"{ref.folder}")
    shared_task((member, ref.task) for member, ref, _ in jobs)


def predict_jobs(jobs: Sequence, settings, cache, *, read: bool = True, trusted: Sequence[str] = (),
                 progress: bool = False, fingerprints: Mapping[str, str] | None = None) -> list[PredictRow]:
    """Run ``jobs`` (:func:`~ensemble.workflows.foldgroups.member_jobs`: member name, ModelRef
    and its splits) with inference ``settings``, caching in ``cache`` (a OutputCache, or None: no
    cache).

    ``read``: read each cached entry back (its rows and accuracy are reported, and a damaged
    entry is recomputed); else a (model, split) whose entry of these settings exists is left up
    to date by its header alone, and no model is loaded for it (``ensemble run``). The members
    named in ``trusted`` run the code their folders ship (``trust_remote_code``). Under
    ``accelerate launch`` each process takes a share of the batches, and every process leaves the
    process group together at the end. ``fingerprints``: each model's content fingerprint, when
    the caller has them already (else they are computed).
    """
    check_jobs(jobs)
    skip = set() if read or cache is None else _up_to_date(jobs, settings, cache, fingerprints or {})
    rows, session = [], None
    for member, ref, todo in jobs:
        rows += [PredictRow(member, ref.name, name, None, "up to date", None, "-")
                 for name, split in todo if (ref.name, split.digest) in skip]
        todo = [(name, split) for name, split in todo if (ref.name, split.digest) not in skip]
        if not todo:
            continue
        from ensemble.inference.session import ModelSession  # only when a model runs

        from ensemble.inference.forwards import split_forward

        session = ModelSession(ref, replace(settings, trust_remote_code=settings.trust_remote_code or member in trusted),
                               cache, forward=split_forward(ref.task.forward, todo[0][1]))  # what its task runs
        rows += _run(session, member, ref, todo, progress)
    if session is not None and session.dist is not None:
        # a gloo/nccl group left to interpreter shutdown can abort a rank
        session.dist.wait_for_everyone()
        session.dist.destroy_process_group()
    return rows


def _run(session, member: str, ref, todo, progress: bool) -> list[PredictRow]:
    """One model over its splits, under one progress bar whose total is every split's batches."""
    from tqdm.auto import tqdm

    if session.dist is not None and not session.dist.is_main_process:
        logging.getLogger("ensemble").setLevel(logging.WARNING)
    show = progress and (session.dist is None or session.dist.is_main_process)
    rows = []
    with tqdm(total=sum(session.n_batches(s) for _, s in todo), desc=ref.name, unit="batch", disable=not show,
              leave=False) as bar:
        done = 0
        for name, split in todo:
            lg = session.run(split, progress=bar)  # what a member of its task outputs (logits, tag probabilities)
            done += session.n_batches(split)
            bar.update(done - bar.n)
            acc = None if split.labels is None or lg.kind == "texts" else ref.task.accuracy_of(  # texts: no accuracy
                lg.values, split, ref.labels, str(ref.folder))
            rows.append(PredictRow(member, ref.name, name, len(lg), "cached" if lg.meta.get("cached") else "computed",
                                   acc, lg.meta.get("cache_path", "-")))
    return rows


def _up_to_date(jobs, settings, cache, fingerprints: Mapping[str, str]) -> set[tuple[str, str]]:
    """(model name, data digest) of every job whose cache entry of ``settings`` exists, by the
    entries' headers alone."""
    from ensemble.inference.forwards import entry_settings, split_forward
    from ensemble.inference.settings import settings_difference

    have: dict[tuple, list] = {}  # (model digest, data digest, payload) -> the settings of its entries
    for e in cache.entries():
        if e.damaged is None:
            have.setdefault((e.metadata.get("model_digest"), e.metadata.get("data_digest"), e.payload),
                            []).append(e.settings)
    out = set()
    for _, ref, todo in jobs:
        fingerprint = fingerprints.get(ref.name) or ref.fingerprint(cache.file_digest)
        for _, split in todo:
            forward = entry_settings(split_forward(ref.task.forward, split), ref.folder, cache.file_digest)  # tokens: windows
            if any(settings_difference(s, ref, settings) is None and all(s.get(k) == v for k, v in forward.items())
                   for s in have.get((fingerprint, split.digest, ref.task.payload), [])):
                out.add((ref.name, split.digest))
    return out


def predict_logits(
    model: str | os.PathLike,
    data,
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    pad_to_multiple_of: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    cache=True,
    name: str | None = None,
    tokenizer: str | os.PathLike | None = None,
    trust_remote_code: bool = False,
    progress: bool = True,
) -> Logits:
    """Logits of a sequence classifier over a split, in input order.

    Parameters
    ----------
    model : path-like
        A model folder (config.json, weights, tokenizer) such as ``weights/bert-top4`` or a
        ``checkpoint-N`` folder.
    data : Split or path-like
        A :class:`~ensemble.data.splits.Split`, or a data file read with :func:`~ensemble.data.splits.load_split`'s
        defaults (columns ``id``, ``text``, ``label``).
    batch_size, max_length, pad_to_multiple_of, device, dtype
        See :class:`InferenceSettings`.
    cache : bool, path-like or OutputCache, default True
        True: the default cache folder (``.ensemble/cache`` beside ``ensemble.toml``, else in
        the current folder); a path or a :class:`~ensemble.inference.cache.OutputCache`: that cache;
        False: always compute, store nothing.
    name : str, optional
        The model's name in outputs. Default: the folder's name.
    tokenizer : path-like, optional
        Tokenizer folder when the model folder has none.
    trust_remote_code : bool, default False
        Let transformers run Python code shipped in the model folder.
    progress : bool, default True
        A progress bar over batches (on stderr).

    Returns
    -------
    Logits
        ``ids`` (n,), ``values`` float32 (n, C) and ``labels`` (C,) from ``config.id2label``.
    """
    from ensemble.data.splits import Split, load_split
    from ensemble.inference.session import ModelSession
    from ensemble.inference.settings import InferenceSettings
    from ensemble.tasks import open_member

    settings = InferenceSettings(batch_size, max_length, pad_to_multiple_of, device, dtype, trust_remote_code)
    split = data if isinstance(data, Split) else load_split(data)
    ref = open_member(model, name, tokenizer=tokenizer)  # its task checks the split's labels
    return ModelSession(ref, settings, as_cache(cache)).logits(split, progress)


def as_cache(cache):
    """The :class:`~ensemble.inference.cache.OutputCache` a ``cache`` argument names: True the
    default folder, a path that folder, False or None none."""
    from ensemble.inference.cache import OutputCache

    if cache is True:
        return OutputCache()
    if cache is False or cache is None:
        return None
    return cache if isinstance(cache, OutputCache) else OutputCache(cache)


def predict_forward(
    model: str | os.PathLike,
    data,
    forward="sequence",
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    pad_to_multiple_of: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    cache=True,
    name: str | None = None,
    tokenizer: str | os.PathLike | None = None,
    trust_remote_code: bool = False,
    progress: bool = True,
    **settings,
):
    """What ``model`` does over a split, by its ``forward``.

    Parameters
    ----------
    forward : str or Forward, default "sequence"
        "sequence" (:func:`predict_logits`, cached), "tokens" or "generation", or a
        :class:`~ensemble.inference.forwards.Forward` with its settings.
    **settings
        The forward's settings when ``forward`` is a name (tokens: ``stride``, ``return_offsets``, ``words``;
        generation: ``num_beams``, ``max_new_tokens``, ``length_penalty``, ``no_repeat_ngram_size``,
        ``num_return_sequences``, ``do_sample``, ``seed``).
    Others
        As :func:`predict_logits`; ``cache`` serves every forward (a token forward with
        ``return_offsets`` is computed every time: the cache does not hold token spans).

    Returns
    -------
    Logits, Ragged (per-character tag probabilities) or Texts (candidates and their scores)
    """
    from ensemble.inference.forwards import as_forward, open_model

    fw = as_forward(forward, **settings)
    if fw.name == "sequence":
        return predict_logits(model, data, batch_size=batch_size, max_length=max_length,
                              pad_to_multiple_of=pad_to_multiple_of, device=device, dtype=dtype, cache=cache,
                              name=name, tokenizer=tokenizer, trust_remote_code=trust_remote_code, progress=progress)
    from ensemble.data.splits import Split, load_split
    from ensemble.inference.session import ModelSession
    from ensemble.inference.settings import InferenceSettings

    inference = InferenceSettings(batch_size, max_length, pad_to_multiple_of, device, dtype, trust_remote_code)
    split = data if isinstance(data, Split) else load_split(data)
    if getattr(split, "words", None) is not None and getattr(fw, "words", None) is None:
        from ensemble.inference.forwards import split_forward

        fw = split_forward(fw, split)  # a split of pre-split words runs as words
    ref = open_model(model, fw, name, tokenizer)
    return ModelSession(ref, inference, as_cache(cache), fw).run(split, progress)
