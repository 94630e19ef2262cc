"""Run a sequence classifier over a split and return its logits, in input order, cached.

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
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ensemble.core.errors import EnsembleError, flag, option
from ensemble.core.outputs import Logits
from ensemble.io.modelfiles import head_of, weight_files

log = logging.getLogger(__name__)
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
    cache : LogitCache or None
    """

    def __init__(self, ref: ModelRef, settings: InferenceSettings, cache=None):
        self.ref, self.settings, self.cache = ref, settings, cache
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

    # ---------------------------------------------------------------- key

    @property
    def model_digest(self) -> str:
        if self._fingerprint is None:
            digest = self.cache.file_digest if self.cache is not None else plain_digest
            self._fingerprint = self.ref.fingerprint(digest)
        return self._fingerprint

    def key_settings(self) -> dict:
        return recorded_settings(self.ref, self.settings, self.device.type, self.dtype)

    def key(self, split) -> str:
        from ensemble.inference.cache import LogitCache

        return LogitCache.make_key({"model": self.model_digest, "data": split.digest,
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
    def model(self):
        if self._model is None:
            import torch

            from ensemble.io.modelfiles import dtype_kwarg, load_torch_bin

            ref = self.ref
            head = head_of(dict(ref.config))
            if head.custom_code and not self.settings.trust_remote_code:
                raise EnsembleError(f"{ref.folder / 'config.json'}: auto_map names the model's own code "
                                    f"({ref.config['auto_map']['AutoModelForSequenceClassification']}); without running it "
                                    f"transformers would build another class: {option('trust_remote_code')} once you "
                                    "trust that code")
            kw = dict(trust_remote_code=self.settings.trust_remote_code, **dtype_kwarg(getattr(torch, self.dtype)))
            for path in weight_files(ref.folder):  # a legacy .bin is read safely first: a pickle payload
                if path.suffix == ".bin":             # is refused in one line naming the file, and never runs
                    load_torch_bin(path)
            model, info = _load_classifier(ref.folder, kw)
            _check_loaded(ref.folder, info)
            built = type(model).__name__
            if head.architecture is not None and built != head.architecture:
                raise EnsembleError(f"{ref.folder / 'config.json'}: architectures names {head.architecture} but "
                                    f"AutoModelForSequenceClassification builds {built} for it, whose head is not the "
                                    "trained one; run the model with its own code (auto_map, "
                                    f"{option('trust_remote_code')}) or re-save it as {built}")
            if model.config.num_labels != len(ref.labels):
                raise EnsembleError(f"{ref.folder}: the model has {model.config.num_labels} outputs "
                                    f"but id2label names {len(ref.labels)}; fix config.json")
            if _pools_last_token(model) and model.config.pad_token_id is None:
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
        if long.size and (self.dist is None or self.dist.is_main_process):
            why = "the model's limit" if self.settings.max_length is None or self.limit == self.model_limit \
                else flag("max_length")
            log.warning("%s: %d of %d texts are longer than %d tokens (%s) and were truncated",
                        split.path, long.size, len(a), self.limit, why)
        return _Encoded(fields, lengths, int(long.size))

    def n_batches(self, split) -> int:
        """How many batches this process runs over ``split`` (for a progress bar's total)."""
        n = math.ceil(len(split) / self.settings.batch_size)
        return len(range(self.dist.process_index, n, self.dist.num_processes)) if self.dist is not None else n

    def batches(self, enc: _Encoded) -> list[np.ndarray]:
        order = np.argsort(-enc.lengths, kind="stable")
        bs = self.settings.batch_size
        return [order[i:i + bs] for i in range(0, len(order), bs)]

    def _collate(self, rows: np.ndarray, enc: _Encoded) -> dict:
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
            out["input_ids"][j, :n] = enc.fields["input_ids"][i]
            out["attention_mask"][j, :n] = 1
            if "token_type_ids" in out:
                out["token_type_ids"][j, :n] = enc.fields["token_type_ids"][i]
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
        counts = np.bincount(rows_a, minlength=n) if rows_a.size else np.zeros(n, dtype=np.int64)
        if counts.size != n or not (counts == 1).all():
            bad = int(np.flatnonzero(counts != 1)[0]) if counts.size == n else n
            raise EnsembleError(f"{split.path}: row {bad + 1} came back {counts[bad] if bad < n else '?'} times "
                                "from the inference processes; re-run (every row must appear exactly once)")
        values = np.empty((n, C), dtype=np.float32)
        values[rows_a] = vals_a
        return values

    # ---------------------------------------------------------------- logits, cached

    def logits(self, split, progress=False) -> Logits:
        """The model's :class:`Logits` over ``split``: from the cache when there, else computed
        and stored."""
        if split.labels is not None and self.ref.task is not None:  # the member's task, when a caller set it
            self.ref.task.check_labels(split, self.ref.labels, f"{self.ref.folder}")
        if self.cache is None:
            return self._make(split, progress, None)
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
                return Logits(hit.ids, hit.values, hit.labels, self.ref.name, split.name,
                              {**hit.meta, "cached": True})
            result = self._make(split, progress, key)
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


# transformers' refusals of an attention implementation (an architecture without SDPA, a torch
# too old for it) are these types; anything else is not about attention and is raised as it is.
_ATTENTION_REFUSALS = (ValueError, ImportError, NotImplementedError)


def _load_classifier(folder: Path, kw: dict):
    """``AutoModelForSequenceClassification.from_pretrained`` with SDPA attention where the
    architecture supports it (its ``_supports_sdpa`` flag, when its class can be told without
    loading), else eager; a refusal of SDPA at load time falls back to eager too. Returns
    ``(model, loading info)``; which attention ran is the model's ``config._attn_implementation``."""
    from transformers import AutoModelForSequenceClassification

    def load(attention):
        # transformers 4.x registers a remote class for its config class process-wide (BertConfig ->
        # the shipped class): every later BERT of this process would load as it. Put the mapping back.
        mapping = getattr(AutoModelForSequenceClassification, "_model_mapping", None)
        extra = getattr(mapping, "_extra_content", None)
        before = dict(extra) if isinstance(extra, dict) else None
        try:
            with _quiet_transformers():
                return AutoModelForSequenceClassification.from_pretrained(
                    str(folder), attn_implementation=attention, output_loading_info=True, **kw)
        finally:
            if before is not None:
                extra.clear()
                extra.update(before)

    try:
        first = "sdpa" if _supports_sdpa(folder, kw.get("trust_remote_code", False)) else "eager"
        try:
            return load(first)
        except _ATTENTION_REFUSALS:
            if first == "eager":
                raise
            return load("eager")
    except EnsembleError:
        raise
    except Exception as e:
        raise EnsembleError(f"{folder}: cannot load the model ({_first_line(e)}); check that it is a "
                            "sequence-classification model folder") from None


def _supports_sdpa(folder: Path, trust_remote_code: bool) -> bool:
    """The ``_supports_sdpa`` flag of the class AutoModelForSequenceClassification builds for
    ``folder``; True when the class cannot be told without running code (the load then decides)."""
    if trust_remote_code:
        return True
    try:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        with _quiet_transformers():
            config = AutoConfig.from_pretrained(str(folder))
        cls = AutoModelForSequenceClassification._model_mapping[type(config)]
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
