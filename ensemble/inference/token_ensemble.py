"""Token-level ensembling of generation members that share a tokenizer: at every step of greedy or
beam search, the next token's probability is the weighted mean of the members' (fairseq's
``EnsembleModel``, in probability space), or, with ``mean="log"``, the renormalised weighted mean
of their log-probabilities (a geometric mean), so that one search runs over the ensemble.

It runs inside ``generate`` of the first member, as a logits processor that computes every
member's next-token log-probabilities for the current prefixes (each decoder over the prefix,
against that member's own encoder output of the batch) and returns the log of their weighted mean.
What the first member's own processors forbid (``no_repeat_ngram_size``, a minimum length, forced
tokens: a score of -inf) stays forbidden. Members whose vocabularies differ cannot be averaged
token by token and are refused in one line (combine them by MBR: :mod:`ensemble.tasks.summarization`);
so are decoder-only members, sampling, and processors that rescale scores.

A notebook calls :func:`generate_together`; its texts are a :class:`~ensemble.core.outputs.Texts`
like any member's (not cached: its key would be every member's), to submit or to pool with the
other members' candidates by MBR.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError

__all__ = ["generate_together", "check_shared_vocabulary"]

# generation_config fields that rescale greedy and beam search's scores after the model: applied to the
# first member only, they would not be the ensemble's (the sampling warpers, top_k and the like, apply
# only to sampling, which is refused)
_RESCALING = (("repetition_penalty", 1.0), ("encoder_repetition_penalty", 1.0), ("guidance_scale", None))


def check_shared_vocabulary(sessions: Sequence) -> None:
    """Every member an encoder-decoder with the first member's vocabulary, special tokens, vocabulary
    size and decoder start token: else one line naming the member and what differs."""
    first = sessions[0]
    for s in sessions:
        if not getattr(s.model.config, "is_encoder_decoder", False):
            raise EnsembleError(f"{s.ref.folder}: a decoder-only model; token-level ensembling runs "
                                "encoder-decoder members (BART, T5); combine decoder-only members by MBR instead")
    a = first.tokenizer
    for s in sessions[1:]:
        b = s.tokenizer
        why = None
        if a.get_vocab() != b.get_vocab():
            why = f"{len(b.get_vocab())} tokens against {len(a.get_vocab())}, or the same tokens with other ids"
        elif a.all_special_ids != b.all_special_ids:
            why = "other special tokens"
        elif s.model.config.vocab_size != first.model.config.vocab_size:
            why = f"an output layer of {s.model.config.vocab_size} tokens against {first.model.config.vocab_size}"
        elif s.model.config.decoder_start_token_id != first.model.config.decoder_start_token_id:
            why = "another decoder start token"
        if why is not None:
            raise EnsembleError(f"{s.ref.folder}: its vocabulary differs from {first.ref.folder}'s ({why}); "
                                "token-level ensembling averages each step's next-token probabilities, which needs "
                                "one tokenizer: combine these members by MBR (ensemble vote) instead")


def _check_search(first, forward) -> None:
    """Greedy or beam search, with nothing that rescales scores after the first member."""
    config = first.model.generation_config
    if forward.do_sample or (forward.do_sample is None and getattr(config, "do_sample", False)):
        raise EnsembleError(f"{first.ref.folder}: sampling (do_sample) is not ensembled token by token here; use "
                            "greedy or beam search (do_sample=False)")
    for name, neutral in _RESCALING:
        value = getattr(config, name, neutral)
        if value is not None and value != neutral:
            raise EnsembleError(f"{first.ref.folder / 'generation_config.json'}: {name} {value} rescales the first "
                                "member's scores alone; set it to its neutral value for token-level ensembling")


MEANS = ("probability", "log")


def _processor(sessions, inputs: Mapping, log_weights, mean: str = "probability"):
    """A logits processor averaging every member's next-token probabilities over the batch
    ``inputs`` (each member's encoder run once per batch): their weighted mean, or (``mean="log"``)
    the log-softmax of their log-probabilities' weighted mean."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList
    from transformers.modeling_outputs import BaseModelOutput

    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    with torch.inference_mode():
        encoded = [s.model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state for s in sessions]

    class MembersMean(LogitsProcessor):
        def __call__(self, input_ids, scores):
            expand = input_ids.shape[0] // ids.shape[0]  # beams (or returned sequences) per row
            parts = []
            for s, hidden, lw in zip(sessions, encoded, log_weights):
                out = s.model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden.repeat_interleave(expand, 0)),
                              attention_mask=mask.repeat_interleave(expand, 0), decoder_input_ids=input_ids)
                logp = torch.log_softmax(out.logits[:, -1, :scores.shape[-1]].float(), dim=-1)
                parts.append(logp + lw if mean == "probability" else (logp * lw.exp() if lw.exp() > 0 else None))
            if mean == "probability":
                combined = torch.logsumexp(torch.stack(parts), dim=0)
            else:
                combined = torch.log_softmax(sum(p for p in parts if p is not None), dim=-1)
            return combined.masked_fill(torch.isneginf(scores), -math.inf).to(scores.dtype)

    return LogitsProcessorList([MembersMean()])


def generate_together(models: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike], data, *,
                      weights: Sequence[float] | None = None, mean: str = "probability", batch_size: int = 16,
                      device: str = "auto",
                      dtype: str = "auto", max_length: int | None = None, name: str = "together",
                      progress: bool = True, **settings):
    """One search over several encoder-decoder members sharing a tokenizer, each step's
    next-token probability their weighted mean.

    Parameters
    ----------
    models : mapping of name to folder, or sequence of folders
        Two or more generation members with one vocabulary (checked: else a one-line error).
    data : Split or path
        The texts to summarize (its ``text`` column; see :func:`~ensemble.data.splits.load_split`).
    weights : sequence of float, optional
        One per member (equal by default).
    mean : {"probability", "log"}, default "probability"
        Each step's next-token distribution: the weighted mean of the members' probabilities
        (fairseq's ``EnsembleModel``), or the renormalised weighted mean of their log-probabilities.
    **settings
        The generation forward's (``num_beams``, ``max_new_tokens``, ``length_penalty``,
        ``no_repeat_ngram_size``, ``num_return_sequences``, ``prompt``); unset ones are the first
        member's ``generation_config.json``. Sampling is refused.

    Returns
    -------
    Texts
        ``num_return_sequences`` candidates per row and their scores (the ensemble's mean
        log-probability per token, or the beam score), in the data's row order; ``model`` is ``name``.
    """
    from dataclasses import replace

    from ensemble.data.splits import Split, load_split
    from ensemble.inference.forwards import as_forward, open_model
    from ensemble.inference.session import ModelSession
    from ensemble.inference.settings import InferenceSettings

    folders = list(models.values()) if isinstance(models, Mapping) else list(models)
    if len(folders) < 2:
        raise EnsembleError(f"token-level ensembling needs two or more members; got {len(folders)}")
    if mean not in MEANS:
        raise EnsembleError(f"mean must be one of {', '.join(MEANS)}; got {mean!r}")
    w = np.ones(len(folders)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(folders),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise EnsembleError(f"weights must be {len(folders)} numbers >= 0, not all zero; got {list(np.ravel(w))}")
    forward = as_forward("generation", **settings)
    inference = InferenceSettings(batch_size=batch_size, device=device, dtype=dtype, max_length=max_length)
    sessions = [ModelSession(open_model(f, forward), inference, None, forward) for f in folders]
    check_shared_vocabulary(sessions)
    first = sessions[0]
    _check_search(first, forward)
    split = data if isinstance(data, Split) else load_split(data)
    import torch

    log_w = [torch.tensor(math.log(v / w.sum()) if v > 0 else -math.inf, device=first.device) for v in w]
    first.generate_hook = lambda inputs: {"logits_processor": _processor(sessions, inputs, log_w, mean)}
    out = first.run(split, progress=progress)
    return replace(out, model=name, meta={**out.meta, "members": [str(f) for f in folders],
                                          "weights": [float(v) for v in w / w.sum()], "mean": mean})
