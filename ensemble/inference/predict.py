"""``predict_logits``: a model's logits over a split, from the cache or computed and cached;
``predict_forward``: any forward's outputs (:mod:`ensemble.inference.forwards`)."""

from __future__ import annotations

import logging
import os

from ensemble.core.outputs import Logits

log = logging.getLogger(__name__)
from ensemble.inference.models import ModelRef
from ensemble.inference.session import ModelSession
from ensemble.inference.settings import InferenceSettings

__all__ = ['predict_logits', 'predict_forward']






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
    cache : bool, path-like or LogitCache, default True
        True: the default cache folder (``.ensemble/cache`` beside ``ensemble.toml``, else in
        the current folder); a path or a :class:`~ensemble.inference.cache.LogitCache`: that cache;
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
    from ensemble.inference.cache import LogitCache

    settings = InferenceSettings(batch_size, max_length, pad_to_multiple_of, device, dtype, trust_remote_code)
    split = data if isinstance(data, Split) else load_split(data)
    ref = ModelRef.open(model, name, tokenizer)
    if cache is True:
        cache = LogitCache()
    elif cache is False or cache is None:
        cache = None
    elif not isinstance(cache, LogitCache):
        cache = LogitCache(cache)
    return ModelSession(ref, settings, cache).logits(split, progress)


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
        The forward's settings when ``forward`` is a name (tokens: ``stride``, ``return_offsets``;
        generation: ``num_beams``, ``max_new_tokens``, ``length_penalty``, ``no_repeat_ngram_size``,
        ``num_return_sequences``, ``do_sample``, ``seed``).
    Others
        As :func:`predict_logits`; ``cache`` serves the sequence forward only: the token and
        generation outputs are computed every time (the cache does not hold them yet).

    Returns
    -------
    Logits, TokenProbabilities or Generations
    """
    from ensemble.inference.forwards import as_forward, open_model

    fw = as_forward(forward, **settings)
    if fw.name == "sequence":
        return predict_logits(model, data, batch_size=batch_size, max_length=max_length,
                              pad_to_multiple_of=pad_to_multiple_of, device=device, dtype=dtype, cache=cache,
                              name=name, tokenizer=tokenizer, trust_remote_code=trust_remote_code, progress=progress)
    from ensemble.data.splits import Split, load_split

    inference = InferenceSettings(batch_size, max_length, pad_to_multiple_of, device, dtype, trust_remote_code)
    split = data if isinstance(data, Split) else load_split(data)
    ref = open_model(model, fw, name, tokenizer)
    return ModelSession(ref, inference, None, fw).run(split, progress)  # nothing of theirs is cached yet
