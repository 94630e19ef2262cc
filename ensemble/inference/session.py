"""Run a model over a split and return its outputs, in input order: a sequence classifier's
logits (cached), a token classifier's per-character probabilities, a generator's texts.

What the model does is its forward (:mod:`ensemble.inference.forwards`): "sequence" (the default,
``AutoModelForSequenceClassification``), "tokens" or "generation"; the sections below describe
the sequence forward, which the others share their batching with.

Texts are tokenized once without padding, sorted by token length (longest first, so that the
largest batch, and any out-of-memory error, comes first) and cut into batches padded to their
own longest row (optionally to a multiple of ``pad_to_multiple_of``). The model runs under
``torch.inference_mode()`` with transformers' SDPA attention where the architecture has it
(eager otherwise); rows are scattered back into input order.

Under ``accelerate launch`` (several GPUs or nodes) each process takes every P-th batch of the
same length-sorted list; the results travel with their row indices and are put back in input
order on every process; the main process checks that every row came exactly once and alone
writes the cache. The batches are those of a single-process run, so the number of processes is
not part of the cache key.

Only :class:`Logits` is needed to read cached results: this module imports torch and
transformers inside the functions that run a model.

The token forward tokenizes each text into windows of at most the token limit, neighbours sharing
``stride`` tokens (one window when the text fits), runs the windows as the rows of length-sorted
batches, and projects each token's softmax over the tags onto the characters its
``offset_mapping`` span covers: a character's row is the mean over the tokens covering it, NaN
where none does (spaces), a tag beginning an entity moved to its ``I-`` tag on a token's later
characters; or, for pre-split words (``words=``), tokenizes each row's words with
``is_split_into_words`` and gives each word its first sub-token's probabilities or their mean,
a token of several windows placed by the overflow step and first averaged over them. These are
cached like logits. The generation forward runs ``model.generate`` on length-sorted batches
(padded on the left for decoder-only models) and puts the candidates back in input order. Its
outputs are not cached yet: :meth:`ModelSession.key` names them, the cache cannot hold them.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from ensemble.core.errors import EnsembleError, flag, option
from ensemble.core.outputs import Logits, Ragged, Texts
from ensemble.io.modelfiles import head_of, weight_files

log = logging.getLogger(__name__)
from ensemble.inference.forwards import (
    Forward,
    as_forward,
    eos_ids_of,
    entry_settings,
    continue_inside_tokens,
    mean_token_logprob,
    project_onto_characters,
    project_onto_words,
    token_spans,
    uncovered_as_nan,
)
from ensemble.inference.models import ModelRef
from ensemble.inference.settings import (
    InferenceSettings,
    library_versions,
    recorded_settings,
    resolve_device,
    resolve_dtype,
)

__all__ = ['ModelSession']


# --------------------------------------------------------------------------- distributed


def _distributed_state(cpu: bool):
    """accelerate's PartialState when launched as several processes, else None."""
    from accelerate.utils import get_int_from_env

    world = get_int_from_env(["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"], 1)
    if world <= 1:
        return None
    from accelerate import PartialState

    state = PartialState(cpu=cpu)
    return state if state.num_processes > 1 else None


# --------------------------------------------------------------------------- running a model


@dataclass
class _Encoded:
    fields: dict  # name -> list of token-id lists
    lengths: np.ndarray
    truncated: int


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' warnings and its "Loading weights" bar off while loading and tokenizing."""
    import transformers

    level = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(level)
        if bars:
            transformers.logging.enable_progress_bar()


class ModelSession:
    """One model folder, loaded on first use and reused over several splits.

    Parameters
    ----------
    ref : ModelRef
    settings : InferenceSettings
    cache : OutputCache or None
    forward : str or Forward, default "sequence"
        What the model does (:mod:`ensemble.inference.forwards`): a name of ``FORWARDS`` (with
        its default settings) or a Forward with its settings. Open a model of another forward
        with :func:`~ensemble.inference.forwards.open_model`.
    """

    def __init__(self, ref: ModelRef, settings: InferenceSettings, cache=None, forward: str | Forward | None = None):
        self.ref, self.settings, self.cache = ref, settings, cache
        self.forward = as_forward(forward)
        self._model = self._tokenizer = None
        self.attention = None
        self._inputs: set[str] = set()
        self.device = resolve_device(settings.device)
        self.dist = _distributed_state(cpu=self.device.type == "cpu")
        if self.dist is not None:
            self.device = self.dist.device
        self.dtype = resolve_dtype(settings.dtype, self.device)
        self.limit, self.model_limit = ref.token_limit(settings.max_length)
        self._fingerprint = None
        # generation: more keyword arguments of generate for a batch's inputs (the token ensemble's
        # logits processor, :mod:`ensemble.inference.token_ensemble`); such a session caches nothing
        self.generate_hook = None

    # ---------------------------------------------------------------- key

    @property
    def model_digest(self) -> str:
        if self._fingerprint is None:
            digest = self.cache.file_digest if self.cache is not None else plain_digest
            self._fingerprint = self.ref.fingerprint(digest)
        return self._fingerprint

    def key_settings(self) -> dict:
        """The settings the key hashes and an entry records: :func:`recorded_settings`, and for a
        forward other than "sequence" its name and settings (generation: with the digest of the
        folder's ``generation_config.json``, which ``generate`` reads)."""
        out = recorded_settings(self.ref, self.settings, self.device.type, self.dtype)
        digest = self.cache.file_digest if self.cache is not None else plain_digest
        return {**out, **entry_settings(self.forward, self.ref.folder, digest)}

    def key(self, split) -> str:
        from ensemble.inference.cache import OutputCache

        return OutputCache.make_key({"model": self.model_digest, "data": split.digest,
                                    "settings": self.key_settings(), "versions": library_versions()})

    # ---------------------------------------------------------------- loading

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                with _quiet_transformers():
                    self._tokenizer = AutoTokenizer.from_pretrained(str(self.ref.tokenizer_dir),
                                                                    trust_remote_code=self.settings.trust_remote_code)
            except Exception as e:  # transformers raises many types for a bad folder
                raise EnsembleError(f"{self.ref.tokenizer_dir}: cannot load the tokenizer ({_first_line(e)}); "
                                    f"copy the base model's tokenizer files or {option('tokenizer', 'DIR')}") from None
        return self._tokenizer

    @property
    def auto_class(self) -> str:
        """The transformers Auto class this session's forward loads the model with."""
        config = dict(self.ref.config)
        if self.forward.name == "generation" and "is_encoder_decoder" not in config:
            from transformers import AutoConfig

            with _quiet_transformers():
                config["is_encoder_decoder"] = bool(getattr(AutoConfig.from_pretrained(
                    str(self.ref.folder), trust_remote_code=self.settings.trust_remote_code),
                    "is_encoder_decoder", False))
        return self.forward.auto_class(config)

    @property
    def model(self):
        if self._model is None:
            import torch

            from ensemble.io.modelfiles import dtype_kwarg, load_torch_bin

            ref, auto, sequence = self.ref, self.auto_class, self.forward.name == "sequence"
            head = head_of(dict(ref.config))
            auto_map = ref.config.get("auto_map")
            custom = head.custom_code if sequence else isinstance(auto_map, Mapping) and auto in auto_map
            if custom and not self.settings.trust_remote_code:
                raise EnsembleError(f"{ref.folder / 'config.json'}: auto_map names the model's own code "
                                    f"({ref.config['auto_map'][auto]}); without running it "
                                    f"transformers would build another class: {option('trust_remote_code')} once you "
                                    "trust that code")
            kw = dict(trust_remote_code=self.settings.trust_remote_code, **dtype_kwarg(getattr(torch, self.dtype)))
            for path in weight_files(ref.folder):  # a legacy .bin is read safely first: a pickle payload
                if path.suffix == ".bin":             # is refused in one line naming the file, and never runs
                    load_torch_bin(path)
            model, info = _load_classifier(ref.folder, kw) if sequence else _load_model(ref.folder, kw, auto)
            _check_loaded(ref.folder, info)
            built = type(model).__name__
            # a generator's class may differ by name alone (T5WithLMHeadModel): its weights were checked above
            if head.architecture is not None and built != head.architecture and self.forward.name != "generation":
                raise EnsembleError(f"{ref.folder / 'config.json'}: architectures names {head.architecture} but "
                                    f"{auto} builds {built} for it, whose head is not the "
                                    "trained one; run the model with its own code (auto_map, "
                                    f"{option('trust_remote_code')}) or re-save it as {built}")
            if self.forward.name != "generation" and model.config.num_labels != len(ref.labels):
                raise EnsembleError(f"{ref.folder}: the model has {model.config.num_labels} outputs "
                                    f"but id2label names {len(ref.labels)}; fix config.json")
            if sequence and _pools_last_token(model) and model.config.pad_token_id is None:
                tok_pad = getattr(self.tokenizer, "pad_token_id", None)
                raise EnsembleError(f"{ref.folder / 'config.json'}: no pad_token_id, and {built} takes each row's "
                                    "logits at its last token that is not padding; set pad_token_id to the id the "
                                    "model was trained with" + (f" (the tokenizer's pad token is {tok_pad})"
                                                                if tok_pad is not None else ""))
            model.eval().to(self.device)
            self.attention = getattr(model.config, "_attn_implementation", None)
            self._inputs = set(inspect.signature(model.forward).parameters)
            self._model = model
        return self._model

    @property
    def pad_id(self) -> int:
        """The id batches are padded with: the model's ``pad_token_id`` (the one a classifier that
        pools the last non-pad token looks for, and RoBERTa's position offset), else the tokenizer's."""
        pad = self.model.config.pad_token_id
        if not isinstance(pad, int):
            pad = self.tokenizer.pad_token_id
        return 0 if pad is None else pad

    # ---------------------------------------------------------------- tokenize and batch

    def encode(self, split) -> _Encoded:
        tok = self.tokenizer
        self.model  # noqa: B018 - loaded first: its forward's parameters say which inputs it takes
        want_tt = "token_type_ids" in getattr(tok, "model_input_names", ()) and "token_type_ids" in self._inputs
        a = split.texts[0]
        if self.forward.name == "generation":  # each text in the prompt template, when one is given
            a = self.forward.prompted(a)
        b = split.texts[1] if len(split.texts) > 1 else None
        kw = dict(padding=False, return_attention_mask=False, return_token_type_ids=want_tt)
        with _quiet_transformers():
            enc = tok(a, b, truncation=False, **kw) if b is not None else tok(a, truncation=False, **kw)
            fields = {k: list(enc[k]) for k in ("input_ids", "token_type_ids") if k in enc}
            lengths = np.fromiter((len(x) for x in fields["input_ids"]), dtype=np.int64, count=len(a))
            long = np.flatnonzero(lengths > self.limit) if self.limit else np.array([], dtype=np.int64)
            if long.size:
                sub_a = [a[i] for i in long]
                cut = dict(truncation=True, max_length=self.limit, **kw)
                enc2 = tok(sub_a, [b[i] for i in long], **cut) if b is not None else tok(sub_a, **cut)
                for k in fields:
                    for j, i in enumerate(long):
                        fields[k][i] = enc2[k][j]
                lengths[long] = [len(x) for x in enc2["input_ids"]]
        self._check_ids_fit(max((max(x) for x in fields["input_ids"] if len(x)), default=0))
        if long.size and (self.dist is None or self.dist.is_main_process):
            why = "the model's limit" if self.settings.max_length is None or self.limit == self.model_limit \
                else flag("max_length")
            log.warning("%s: %d of %d texts are longer than %d tokens (%s) and were truncated",
                        split.path, long.size, len(a), self.limit, why)
        return _Encoded(fields, lengths, int(long.size))

    def _check_ids_fit(self, highest: int) -> None:
        """The tokenizer's ids are rows of the model's input embeddings (else the forward fails
        with an IndexError deep inside torch): a one-line error naming the tokenizer folder."""
        embeddings = self.model.get_input_embeddings() if hasattr(self.model, "get_input_embeddings") else None
        size = getattr(embeddings, "num_embeddings", None)
        if isinstance(size, int) and highest >= size:
            raise EnsembleError(f"{self.ref.tokenizer_dir}: the tokenizer gives token id {highest}, but the model's "
                                f"embeddings hold {size} tokens: it is not the model's tokenizer; copy the base model's "
                                f"tokenizer files into the folder, or {option('tokenizer', 'DIR')}")

    def n_batches(self, split) -> int:
        """How many batches this process runs over ``split`` (for a progress bar's total)."""
        n = math.ceil(len(split) / self.settings.batch_size)
        return len(range(self.dist.process_index, n, self.dist.num_processes)) if self.dist is not None else n

    def batches(self, enc: _Encoded) -> list[np.ndarray]:
        order = np.argsort(-enc.lengths, kind="stable")
        bs = self.settings.batch_size
        return [order[i:i + bs] for i in range(0, len(order), bs)]

    def _collate(self, rows: np.ndarray, enc: _Encoded, left: bool = False) -> dict:
        """The batch of ``rows``, padded to its longest row on the right (on the ``left`` for a
        decoder-only model that generates)."""
        import torch

        longest = int(enc.lengths[rows].max())
        m = self.settings.pad_to_multiple_of
        width = int(math.ceil(longest / m) * m) if m else longest
        pad = self.pad_id
        out = {"input_ids": np.full((len(rows), width), pad, dtype=np.int64),
               "attention_mask": np.zeros((len(rows), width), dtype=np.int64)}
        if "token_type_ids" in enc.fields:
            out["token_type_ids"] = np.zeros((len(rows), width), dtype=np.int64)
        for j, i in enumerate(rows):
            n = int(enc.lengths[i])
            at = slice(width - n, width) if left else slice(0, n)
            out["input_ids"][j, at] = enc.fields["input_ids"][i]
            out["attention_mask"][j, at] = 1
            if "token_type_ids" in out:
                out["token_type_ids"][j, at] = enc.fields["token_type_ids"][i]
        return {k: torch.from_numpy(v).to(self.device) for k, v in out.items()}

    def compute(self, split, enc: _Encoded | None = None, progress=False) -> np.ndarray:
        """Logits of every row of ``split`` in input order, float32 (n, C); no cache."""
        import torch

        enc = enc or self.encode(split)
        batches = self.batches(enc)
        if self.dist is not None:
            batches = batches[self.dist.process_index::self.dist.num_processes]
        model = self.model
        bar = progress_bar(progress, len(batches), f"{self.ref.name}/{split.name}")
        rows, parts = [], []
        try:
            with torch.inference_mode():
                for batch in batches:
                    out = model(**self._collate(batch, enc)).logits
                    parts.append(out.float().cpu().numpy())
                    rows.append(batch)
                    bar.update(1)
        finally:
            if bar is not progress:
                bar.close()
        C = len(self.ref.labels)
        rows_a = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        vals_a = np.concatenate(parts) if parts else np.zeros((0, C), dtype=np.float32)
        if self.dist is not None:
            from accelerate.utils import gather_object

            gathered = gather_object([(rows_a, vals_a)])
            rows_a = np.concatenate([r for r, _ in gathered])
            vals_a = np.concatenate([v for _, v in gathered])
        n = len(split)
        _check_each_once(rows_a, n, split.path)
        values = np.empty((n, C), dtype=np.float32)
        values[rows_a] = vals_a
        return values

    # ---------------------------------------------------------------- logits, cached

    def logits(self, split, progress=False) -> Logits:
        """The model's :class:`Logits` over ``split``: from the cache when there, else computed
        and stored. The sequence forward's output only (:meth:`run` runs any forward)."""
        if self.forward.name != "sequence":
            raise EnsembleError(f"{self.ref.folder}: the {self.forward.name} forward gives no logits; "
                                "use ModelSession.run")
        if split.labels is not None and self.ref.task is not None:  # the member's task, when a caller set it
            self.ref.task.check_labels(split, self.ref.labels, f"{self.ref.folder}")
        return self._cached(split, lambda key: self._make(split, progress, key),
                            lambda hit: Logits(hit.ids, hit.values, hit.labels, self.ref.name, split.name,
                                               {**hit.meta, "cached": True}))

    def _cached(self, split, make, from_hit):
        """``split``'s outputs from the cache (``from_hit(entry)``) when there, else ``make(key)``
        (which stores them under ``key`` unless it is None: no cache). Under accelerate only the
        main process reads and writes the entry; the others read what it says is there."""
        if self.cache is None:
            return make(None)
        key = self.key(split)
        main = self.dist is None or self.dist.is_main_process
        with (self.cache.lock(key) if main else contextlib.nullcontext()):
            hit = self.cache.get(key, split.ids) if main else None
            if self.dist is not None:
                from accelerate.utils import broadcast_object_list

                found = broadcast_object_list([hit is not None])[0]
                if found and not main:
                    hit = self.cache.get(key, split.ids)
                if found and hit is None:
                    raise EnsembleError(f"{self.cache.path_for(key)}: cache entry vanished while being read; re-run")
            if hit is not None:
                log.debug("%s/%s: cached (%s)", self.ref.name, split.name, key)
                return from_hit(hit)
            result = make(key)
        if self.dist is not None:
            self.dist.wait_for_everyone()
        return result

    def _make(self, split, progress, key) -> Logits:
        enc = self.encode(split)
        values = self.compute(split, enc, progress)
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise EnsembleError(f"{self.ref.folder}: produced NaN or infinite logits on {int(bad.sum())} rows of "
                                f"{split.path} in {self.dtype}; {option('dtype', 'float32')}")
        meta = {"model": self.ref.name, "model_path": str(self.ref.folder.resolve()),
                "model_digest": self.model_digest if key else None, "split": split.name,
                "data_path": str(split.path.resolve()), "data_digest": split.digest,
                "settings": self.key_settings(), "versions": library_versions(), "truncated": enc.truncated,
                "attention": self.attention}
        result = Logits(split.ids, values, self.ref.labels, self.ref.name, split.name, {**meta, "cached": False})
        if key is not None and (self.dist is None or self.dist.is_main_process):
            path = self.cache.put(key, result, {k: v for k, v in meta.items() if v is not None})
            result.meta.update(key=key, cache_path=str(path))
        return result

    # ---------------------------------------------------------------- the other forwards

    def run(self, split, progress=False):
        """This session's forward over ``split``: :class:`Logits` ("sequence", cached),
        :class:`~ensemble.core.outputs.Ragged` ("tokens": per-character tag probabilities, cached)
        or :class:`~ensemble.core.outputs.Texts` ("generation": candidates and their scores,
        cached)."""
        if self.forward.name == "tokens":
            return self.token_probabilities(split, progress)
        if self.forward.name == "generation":
            return self.generations(split, progress)
        return self.logits(split, progress)

    def _require(self, name: str) -> None:
        if self.forward.name != name:
            raise EnsembleError(f"{self.ref.folder}: this session runs the {self.forward.name} forward, "
                                f"not {name}; ModelSession(..., forward={name!r})")

    def _meta(self, split, **more) -> dict:
        return {"model": self.ref.name, "model_path": str(self.ref.folder.resolve()), "split": split.name,
                "data_path": str(split.path.resolve()), "data_digest": split.digest, "forward": self.forward.name,
                "settings": self.key_settings(), "versions": library_versions(), "attention": self.attention,
                "cached": False, **more}

    def _run_batches(self, batches: list[np.ndarray], step, desc: str, progress) -> tuple[np.ndarray, list]:
        """``step(batch number, rows)`` over this process's share of ``batches`` (numbered in the
        whole list), returning a list of one item per row; the (rows, items) of every process,
        gathered."""
        import torch

        numbered = list(enumerate(batches))
        if self.dist is not None:
            numbered = numbered[self.dist.process_index::self.dist.num_processes]
        bar = progress_bar(progress, len(numbered), desc)
        rows, items = [], []
        try:
            with torch.inference_mode():
                for b, batch in numbered:
                    items += step(b, batch)
                    rows.append(batch)
                    bar.update(1)
        finally:
            if bar is not progress:
                bar.close()
        rows_a = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, dtype=np.int64)
        if self.dist is not None:
            from accelerate.utils import gather_object

            gathered = gather_object([(rows_a, items)])
            rows_a = np.concatenate([r for r, _ in gathered])
            items = [x for _, part in gathered for x in part]
        return rows_a, items

    def windows(self, split) -> tuple[_Encoded, list[np.ndarray], np.ndarray]:
        """``split``'s texts as the token forward's windows: their encoding (a row per window),
        each window's (L, 2) units and the text each belongs to. The units are each token's
        (start, end) characters (specials (0, 0)), or with ``words`` each token's (word, place
        among its text's tokens) (specials (-1, -1))."""
        tok = self.tokenizer
        where = self.ref.tokenizer_dir
        if len(split.texts) > 1:
            raise EnsembleError(f"{split.path}: the tokens forward reads one text column, not a pair "
                                f"({', '.join(split.text_columns)})")
        if not getattr(tok, "is_fast", False):  # before the model loads: nothing to run without offsets
            raise EnsembleError(f"{where}: the tokens forward needs a fast tokenizer (tokenizer.json) for its "
                                f"character offsets, and {type(tok).__name__} is not one")
        self.model  # noqa: B018 - its forward's parameters say which inputs it takes
        words = self.forward.words is not None
        texts = split.word_lists() if words else list(split.texts[0])
        want_tt = "token_type_ids" in getattr(tok, "model_input_names", ()) and "token_type_ids" in self._inputs
        kw = dict(padding=False, return_attention_mask=False, return_token_type_ids=want_tt,
                  return_offsets_mapping=not words, truncation=False, is_split_into_words=words)
        step = None
        if self.limit:
            room = self.limit - tok.num_special_tokens_to_add(pair=False)
            stride = self.forward.window_stride(room)
            if room < 1 or stride >= room:
                raise EnsembleError(f"{self.ref.folder}: stride {stride} must be smaller than the {room} text tokens "
                                    f"a window of {self.limit} tokens holds; a smaller stride or a larger "
                                    f"{flag('max_length')}")
            kw.update(truncation=True, max_length=self.limit, stride=stride, return_overflowing_tokens=True)
            step = room - stride
        try:
            with _quiet_transformers():
                enc = tok(texts, **kw)
        except NotImplementedError:
            raise EnsembleError(f"{where}: the tokenizer gives no character offsets (offset_mapping), which the "
                                "tokens forward needs; use a fast tokenizer (tokenizer.json)") from None
        n_windows = len(enc["input_ids"])
        text_of = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64) if "overflow_to_sample_mapping" in enc \
            else np.arange(n_windows, dtype=np.int64)
        units = _word_units(enc, text_of, step, split.path) if words else _char_spans(enc, text_of, texts, where)
        fields = {k: list(enc[k]) for k in ("input_ids", "token_type_ids") if k in enc}
        lengths = np.fromiter((len(x) for x in fields["input_ids"]), dtype=np.int64, count=n_windows)
        return _Encoded(fields, lengths, 0), units, text_of

    def token_probabilities(self, split, progress=False) -> Ragged:
        """The token forward over ``split``: each text's characters' tag probabilities (see the
        module's docstring), from the cache when there, else computed and stored; with
        ``return_offsets`` (token spans the cache does not hold) computed every time. The cache
        stores an uncovered character's NaN row as zeros (a softmax row never sums to 0) and
        reads it back as NaN."""
        self._require("tokens")
        if self.forward.return_offsets:
            return self._make_tokens(split, progress, None)

        def from_hit(hit):
            return replace(uncovered_as_nan(hit), model=self.ref.name, split=split.name,
                           meta={**hit.meta, "cached": True})

        return self._cached(split, lambda key: self._make_tokens(split, progress, key), from_hit)

    def _make_tokens(self, split, progress, key) -> Ragged:
        import torch

        enc, spans, text_of = self.windows(split)
        model = self.model
        words = self.forward.words

        def step(_, batch):
            probs = torch.softmax(model(**self._collate(batch, enc)).logits.float(), dim=-1).cpu().numpy()
            return [probs[j, :int(enc.lengths[w])] for j, w in enumerate(batch)]

        rows, items = self._run_batches(self.batches(enc), step, f"{self.ref.name}/{split.name}", progress)
        _check_each_once(rows, len(enc.lengths), split.path)
        probs = [None] * len(enc.lengths)
        for w, p in zip(rows, items):
            probs[w] = p
        texts = split.word_lists() if words else split.texts[0]
        try:
            if words:
                values, offsets = project_onto_words(probs, spans, text_of, [len(t) for t in texts], self.ref.labels,
                                                     words)
            else:
                values, offsets = project_onto_characters(probs, spans, text_of, [len(t) for t in texts],
                                                          len(self.ref.labels))
                values = continue_inside_tokens(values, offsets, spans, text_of, self.ref.labels)
        except EnsembleError as e:
            raise EnsembleError(f"{self.ref.folder / 'config.json'}: id2label {e}") from None
        bad = np.isinf(values).any(axis=1) | (np.isnan(values).any(axis=1) & ~np.isnan(values).all(axis=1))
        if bad.any():
            raise EnsembleError(f"{self.ref.folder}: produced NaN or infinite probabilities on {int(bad.sum())} "
                                f"{'words' if words else 'characters'} of {split.path} in {self.dtype}; "
                                f"{option('dtype', 'float32')}")
        windowed = int((np.bincount(text_of, minlength=len(texts)) > 1).sum())
        main = self.dist is None or self.dist.is_main_process
        if windowed and main:
            log.info("%s: %d of %d texts are longer than %d tokens and ran as overlapping windows",
                     split.path, windowed, len(texts), self.limit)
        meta = self._meta(split, windows=len(enc.lengths), windowed=windowed,
                          model_digest=self.model_digest if key else None)
        result = Ragged(split.ids, values, offsets, tuple(self.ref.labels), self.ref.name, split.name, meta)
        if key is not None and main:
            stored = Ragged(split.ids, np.nan_to_num(values, nan=0.0), offsets, result.labels, self.ref.name,
                            split.name)
            path = self.cache.put(key, stored, {k: v for k, v in meta.items() if v is not None and k != "cached"})
            result.meta.update(key=key, cache_path=str(path))
        if self.forward.return_offsets:  # each text's token spans, (start, end) characters
            result.meta["spans"], result.meta["span_offsets"] = token_spans(spans, text_of, len(texts))
        return result

    def generations(self, split, progress=False) -> Texts:
        """The generation forward over ``split``: ``num_return_sequences`` texts per row and
        their scores, in input order, from the cache when there (keyed by the model, the data and
        every generation setting, the folder's ``generation_config.json`` included), else
        generated and stored."""
        self._require("generation")

        def from_hit(hit):
            return replace(hit, model=self.ref.name, split=split.name, meta={**hit.meta, "cached": True})

        if self.generate_hook is not None:  # what the hook adds is in no cache key
            return self._make_generations(split, progress, None)
        return self._cached(split, lambda key: self._make_generations(split, progress, key), from_hit)

    def _make_generations(self, split, progress, key) -> Texts:
        import torch

        enc = self.encode(split)
        model, tok = self.model, self.tokenizer
        left = not getattr(model.config, "is_encoder_decoder", False)
        kwargs = dict(self.forward.generate_kwargs(), output_scores=True, return_dict_in_generate=True)
        if getattr(model.generation_config, "pad_token_id", None) is None:
            kwargs["pad_token_id"] = self.pad_id
        eos = eos_ids_of(model.generation_config)

        def step(b, batch):
            inputs = self._collate(batch, enc, left=left)
            torch.manual_seed(self.forward.seed + b)
            extra = self.generate_hook(inputs) if self.generate_hook is not None else {}
            try:
                out = model.generate(**inputs, **kwargs, **extra)
            except ValueError as e:  # settings generate refuses, with the model's generation_config
                raise EnsembleError(f"{self.ref.folder}: generate refused the settings ({_first_line(e)}); "
                                    "change them or the folder's generation_config.json") from None
            except (IndexError, RuntimeError) as e:  # past the model's positions, out of memory...
                raise EnsembleError(f"{self.ref.folder}: generate failed ({_first_line(e)}); a length past the "
                                    "model's positions (max_new_tokens, max_length) or memory: lower "
                                    "--generate max_new_tokens or --batch-size") from None
            seqs = out.sequences if not left else out.sequences[:, inputs["input_ids"].shape[1]:]
            if getattr(out, "sequences_scores", None) is not None:
                scores = out.sequences_scores
            else:
                trans = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
                scores = mean_token_logprob(trans, out.sequences[:, out.sequences.shape[1] - trans.shape[1]:], eos)
            texts = tok.batch_decode(seqs, skip_special_tokens=True)
            scores = scores.float().cpu().numpy()
            k = len(texts) // len(batch)
            return [(texts[j * k:(j + 1) * k], scores[j * k:(j + 1) * k]) for j in range(len(batch))]

        started = time.perf_counter()
        with _quiet_transformers():
            rows, items = self._run_batches(self.batches(enc), step, f"{self.ref.name}/{split.name}", progress)
        took = time.perf_counter() - started
        if self.dist is None or self.dist.is_main_process:
            log.info("%s/%s: generated %d rows in %.1f s (%.1f rows/s)", self.ref.name, split.name, len(rows), took,
                     len(rows) / max(took, 1e-9))
        _check_each_once(rows, len(split), split.path)
        per_row = [None] * len(split)
        for i, item in zip(rows, items):
            per_row[i] = item
        texts = [list(t) for t, _ in per_row]
        offsets = np.zeros(len(split) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in texts], out=offsets[1:])
        scores = np.concatenate([s for _, s in per_row]).astype(np.float32) if per_row \
            else np.zeros(0, dtype=np.float32)
        meta = self._meta(split, truncated=enc.truncated, model_digest=self.model_digest if key else None)
        result = Texts(split.ids, texts, scores, offsets, self.ref.name, split.name, meta)
        if key is not None and (self.dist is None or self.dist.is_main_process):
            path = self.cache.put(key, result, {k: v for k, v in meta.items() if v is not None and k != "cached"})
            result.meta.update(key=key, cache_path=str(path))
        return result


def _check_each_once(rows: np.ndarray, n: int, path) -> None:
    """Every one of ``n`` rows came back from the inference processes exactly once."""
    counts = np.bincount(rows, minlength=n) if rows.size else np.zeros(n, dtype=np.int64)
    if counts.size != n or not (counts == 1).all():
        bad = int(np.flatnonzero(counts != 1)[0]) if counts.size == n else n
        raise EnsembleError(f"{path}: row {bad + 1} came back {counts[bad] if bad < n else '?'} times "
                            "from the inference processes; re-run (every row must appear exactly once)")


# transformers' refusals of an attention implementation (an architecture without SDPA, a torch
# too old for it) are these types; anything else is not about attention and is raised as it is.
_ATTENTION_REFUSALS = (ValueError, ImportError, NotImplementedError)


# What each Auto class loads, in the message of a folder it cannot load.
_FOLDER_KINDS = {"AutoModelForSequenceClassification": "sequence-classification",
                 "AutoModelForTokenClassification": "token-classification",
                 "AutoModelForSeq2SeqLM": "sequence-to-sequence", "AutoModelForCausalLM": "causal language"}


def _load_classifier(folder: Path, kw: dict):
    """``AutoModelForSequenceClassification.from_pretrained`` with SDPA attention where the
    architecture supports it (its ``_supports_sdpa`` flag, when its class can be told without
    loading), else eager; a refusal of SDPA at load time falls back to eager too. Returns
    ``(model, loading info)``; which attention ran is the model's ``config._attn_implementation``."""
    return _load_model(folder, kw, "AutoModelForSequenceClassification")


def _load_model(folder: Path, kw: dict, auto_class: str):
    """:func:`_load_classifier` with the transformers Auto class named ``auto_class``."""
    import transformers

    auto = getattr(transformers, auto_class)

    def load(attention):
        # transformers 4.x registers a remote class for its config class process-wide (BertConfig ->
        # the shipped class): every later BERT of this process would load as it. Put the mapping back.
        mapping = getattr(auto, "_model_mapping", None)
        extra = getattr(mapping, "_extra_content", None)
        before = dict(extra) if isinstance(extra, dict) else None
        try:
            with _quiet_transformers():
                return auto.from_pretrained(str(folder), attn_implementation=attention, output_loading_info=True, **kw)
        finally:
            if before is not None:
                extra.clear()
                extra.update(before)

    try:
        first = "sdpa" if _supports_sdpa(folder, kw.get("trust_remote_code", False), auto_class) else "eager"
        try:
            return load(first)
        except _ATTENTION_REFUSALS:
            if first == "eager":
                raise
            return load("eager")
    except EnsembleError:
        raise
    except Exception as e:
        _check_generation_config(folder)  # a setting generate refuses is the folder's generation_config.json's
        raise EnsembleError(f"{folder}: cannot load the model ({_first_line(e)}); check that it is a "
                            f"{_FOLDER_KINDS.get(auto_class, auto_class)} model folder") from None


def _check_generation_config(folder: Path) -> None:
    """Refuse a ``generation_config.json`` whose settings ``generate`` refuses (transformers checks
    them when the model loads), naming the file."""
    path = folder / "generation_config.json"
    if not path.is_file():
        return
    from transformers import GenerationConfig

    try:
        with _quiet_transformers():
            GenerationConfig.from_pretrained(str(folder))
    except Exception as e:  # transformers' own check of the settings
        raise EnsembleError(f"{path}: generate refused the settings ({_first_line(e)}); fix them in this file") from None


def _supports_sdpa(folder: Path, trust_remote_code: bool,
                   auto_class: str = "AutoModelForSequenceClassification") -> bool:
    """The ``_supports_sdpa`` flag of the class ``auto_class`` builds for ``folder``; True when the
    class cannot be told without running code (the load then decides)."""
    if trust_remote_code:
        return True
    try:
        import transformers
        from transformers import AutoConfig

        with _quiet_transformers():
            config = AutoConfig.from_pretrained(str(folder))
        cls = getattr(transformers, auto_class)._model_mapping[type(config)]
        cls = cls[0] if isinstance(cls, (list, tuple)) else cls
    except Exception:  # an unknown model_type: from_pretrained says so in its own words
        return True
    return bool(getattr(cls, "_supports_sdpa", True))


def _pools_last_token(model) -> bool:
    """Decoder-only classifiers (Llama, Qwen2, Mistral, GPT-2 ...) take each row's logits at its
    last token that is not ``pad_token_id``: their head is ``score``, not ``classifier``."""
    return hasattr(model, "score") and not hasattr(model, "classifier")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0][:160] if text else type(e).__name__)


def _check_loaded(folder: Path, info: Mapping) -> None:
    """Every weight of the model must come from the folder: a missing one (a head left out, a
    wrong model_type) would be freshly initialised and its logits silently random, an unexpected
    or mismatched one means the weights are not those of this architecture."""
    problems = []
    for kind, what in (("missing_keys", "missing (would be newly initialised)"), ("unexpected_keys", "unexpected"),
                       ("mismatched_keys", "of another shape")):
        keys = sorted(k[0] if isinstance(k, (tuple, list)) else str(k) for k in (info.get(kind) or ()))
        if keys:
            problems.append(f"{len(keys)} {what}: {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}")
    if problems:
        raise EnsembleError(f"{folder}: its weights do not fill the model its config.json describes ("
                            + "; ".join(problems) + "); fix model_type / architectures in config.json, or re-save "
                            "the fine-tuned model with its classification head")


def plain_digest(path) -> str:
    from ensemble.io.hashing import file_digest

    return file_digest(path)


def progress_bar(progress, total: int, desc: str):
    """A tqdm bar over batches; ``progress`` may be a bool, or a bar whose total the caller set
    up front (:meth:`ModelSession.n_batches`): a total that grows mid-run makes the bar jump back."""
    if hasattr(progress, "update"):
        return progress
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", disable=not progress, leave=False)


def _char_spans(enc, text_of, texts, where) -> list[np.ndarray]:
    """Each window's (L, 2) token spans in characters, special tokens (0, 0); a tokenizer whose
    offsets are all zero on a text with characters is refused."""
    spans = []
    for w in range(len(enc["input_ids"])):
        sp = np.asarray(enc["offset_mapping"][w], dtype=np.int64).reshape(-1, 2)
        special = np.array([s is None for s in enc.sequence_ids(w)], dtype=bool)
        sp[special] = 0
        if (~special).any() and not (sp[:, 1] > sp[:, 0]).any() and texts[text_of[w]].strip():
            raise EnsembleError(f"{where}: the tokenizer gives no character offsets (offset_mapping all zero), "
                                "which the tokens forward needs; use a fast tokenizer (tokenizer.json)")
        spans.append(sp)
    return spans


def _word_units(enc, text_of, step, path) -> list[np.ndarray]:
    """Each window's (L, 2) tokens as (word, place among its text's tokens), special tokens
    (-1, -1). The k-th window of a text starts ``step`` tokens after the (k-1)-th (the fast
    tokenizer's overflow); that the windows agree token by token where they overlap is checked."""
    units, last, kth = [], {}, {}
    for w, t in enumerate(np.asarray(text_of).tolist()):
        k = kth[t] = kth.get(t, -1) + 1
        word = np.array([-1 if i is None else i for i in enc.word_ids(w)], dtype=np.int64)
        text = word >= 0
        place = np.full(len(word), -1, dtype=np.int64)
        place[text] = k * (step or 0) + np.arange(int(text.sum()))
        ids = np.asarray(enc["input_ids"][w], dtype=np.int64)[text]
        if t in last and len(ids):  # the previous window's tokens: places start..start+len-1
            start, before = last[t]
            shared = place[text] < start + len(before)
            if not np.array_equal(ids[shared], before[place[text][shared] - start]):
                raise EnsembleError(f"{path}: row {t + 1}: the tokenizer's overlapping windows disagree; "
                                    "run it without windows (a larger max_length)")
        last[t] = (int(place[text][0]) if len(ids) else 0, ids)
        units.append(np.stack([np.where(text, word, -1), place], axis=1))
    return units
