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
import json
import logging
import math
import os
import unicodedata
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import ClassVar, Mapping

import numpy as np

from .errors import EnsembleError, option
from .logits import Logits
from .modelfiles import (
    SUPPORTED_HEAD,
    TOKENIZER_FILES,
    classifier_rows,
    has_tokenizer,
    head_of,
    read_config,
    weight_files,
)

__all__ = ["Logits", "InferenceSettings", "ModelRef", "predict_logits", "ModelSession", "resolve_device",
           "resolve_dtype", "settings_difference", "recorded_settings", "check_head"]

log = logging.getLogger(__name__)

# Architectures whose position ids start after the padding index (RoBERTa's offset of 2).
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer",
                     "roberta-prelayernorm", "xmod", "ibert", "luke", "mpnet"}
_MAX_SANE_LENGTH = 1_000_000  # tokenizers without a limit report ~1e30


@dataclass(frozen=True)
class InferenceSettings:
    """What changes the numbers, apart from the model and the data.

    Parameters
    ----------
    batch_size : int, default 32
    max_length : int, optional
        Truncate to this many tokens. Default: the model's limit (``max_position_embeddings``,
        or the tokenizer's ``model_max_length`` when smaller).
    pad_to_multiple_of : int, optional
        Pad each batch to a multiple of this (8 suits tensor cores).
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"}, default "auto"
        "auto": CUDA, then MPS, then CPU.
    dtype : {"auto", "float32", "bfloat16", "float16"}, default "auto"
        "auto": bfloat16 on GPUs that support it, float16 on other GPUs, float32 on CPU.
    trust_remote_code : bool, default False
        Let transformers run Python code that the model folder ships (``auto_map``). Off: a
        model that needs it fails to load with transformers' message.
    """

    batch_size: int = 32
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False

    def __post_init__(self):
        for name in ("batch_size", "max_length", "pad_to_multiple_of"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise EnsembleError(f"{name} must be a positive integer, got {v!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise EnsembleError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if self.device.split(":")[0] not in ("auto", "cpu", "cuda", "mps"):
            raise EnsembleError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")

    @classmethod
    def of(cls, value=None) -> InferenceSettings:
        """``value`` as settings: None (the defaults), a mapping of fields (unset ones default), or settings."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = set(cls.__dataclass_fields__)
            unknown = sorted(set(value) - known)
            if unknown:
                raise EnsembleError(f"unknown inference setting {unknown[0]!r}; expected {', '.join(sorted(known))}")
            return cls(**{k: v for k, v in value.items() if v is not None})
        raise EnsembleError(f"inference settings must be a mapping or InferenceSettings, got {type(value).__name__}")

    def requested(self) -> dict:
        """The settings as asked for (before "auto" is resolved), for provenance."""
        return {k: getattr(self, k) for k in ("batch_size", "max_length", "pad_to_multiple_of", "device", "dtype")}


# What "auto" resolves to on each device type (resolve_dtype), and the fixed parts of every key.
AUTO_DTYPES = {"cpu": ("float32",), "mps": ("float16",), "cuda": ("bfloat16", "float16")}
ATTENTION_POLICY = "sdpa-else-eager"
_FIXED_SETTINGS = {"attention": ATTENTION_POLICY, "order": "length-desc", "padding": "right"}


def recorded_settings(ref: "ModelRef", settings: InferenceSettings, device_type: str = "cpu",
                      dtype: str | None = None) -> dict:
    """The settings a cache entry of ``ref`` computed with ``settings`` on ``device_type`` records
    (and its key hashes): the token limit, the dtype ("auto" resolved), batching and padding."""
    return {"max_tokens": ref.token_limit(settings.max_length)[0],
            "dtype": dtype or (settings.dtype if settings.dtype != "auto" else AUTO_DTYPES[device_type][0]),
            "device_type": device_type, "batch_size": settings.batch_size,
            "pad_to_multiple_of": settings.pad_to_multiple_of, **_FIXED_SETTINGS}


def settings_difference(recorded: Mapping, ref: "ModelRef", settings: InferenceSettings) -> str | None:
    """None when a cache entry's recorded settings (its ``settings`` header) are the ones
    ``settings`` ask for on model ``ref``; else the first difference, in words (``max_tokens 14,
    not 126``). Judged without torch: ``device="auto"`` accepts any device type, ``dtype="auto"``
    the dtype auto resolves to on the entry's device type."""
    want = recorded_settings(ref, settings)  # device and dtype are judged below, "auto" accepting several
    for k, v in want.items():
        if k not in ("device_type", "dtype") and recorded.get(k) != v:
            return f"{k} {recorded.get(k)}, not {v}"
    device, dtype = recorded.get("device_type"), recorded.get("dtype")
    if settings.device != "auto" and device != settings.device.split(":")[0]:
        return f"device {device}, not {settings.device}"
    if settings.dtype == "auto" and dtype not in AUTO_DTYPES.get(device, ()):
        return f"dtype {dtype}, not auto ({'/'.join(AUTO_DTYPES.get(device, ('?',)))} on {device})"
    if settings.dtype != "auto" and dtype != settings.dtype:
        return f"dtype {dtype}, not {settings.dtype}"
    return None


def resolve_device(device: str = "auto"):
    """The torch device for ``device``: "auto" is CUDA, then MPS, then CPU."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EnsembleError(f"device {device!r} asked for but torch sees no CUDA GPU; pass --device cpu")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EnsembleError(f"device {device!r} asked for but MPS is not available; pass --device cpu")
    return dev


def resolve_dtype(dtype: str, device) -> str:
    """"auto": bfloat16 on GPUs that support it, float16 on other GPUs, float32 on CPU."""
    if dtype != "auto":
        return dtype
    if device.type == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device.type == "mps":
        return "float16"
    return "float32"


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("torch", "transformers", "tokenizers"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "none"
    return out


# --------------------------------------------------------------------------- the model's files


@dataclass(frozen=True)
class ModelRef:
    """A model folder checked without loading it: its class names, tokenizer folder and limit."""

    kind: ClassVar[str] = "model"  # beside GroupRef's "folds" (ensemble.foldgroups)
    folder: Path
    name: str
    labels: tuple[str, ...]
    tokenizer_dir: Path
    config: Mapping = field(repr=False, default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike, name: str | None = None,
             tokenizer: str | os.PathLike | None = None) -> ModelRef:
        folder = Path(path)
        if not folder.is_dir():
            raise EnsembleError(f"{folder}: not a folder; pass a model folder (config.json, weights, tokenizer)")
        config = read_config(folder)
        check_head(folder, config)
        labels = _class_names(folder, config)
        rows = classifier_rows(folder)
        if rows is not None and rows != len(labels):
            raise EnsembleError(
                f"{folder / 'config.json'}: id2label names {len(labels)} classes but the classification "
                f"head has {rows} outputs; fix id2label (and num_labels) to match the trained head"
            )
        tok = Path(tokenizer) if tokenizer is not None else folder
        if not has_tokenizer(tok):
            where = f"{tok}: no tokenizer files" if tokenizer is not None else f"{folder}: no tokenizer files"
            raise EnsembleError(f"{where} (tokenizer.json, vocab.txt...); copy the base model's tokenizer "
                                "files into it")
        return cls(folder, name or folder.resolve().name, labels, tok, config)

    def token_limit(self, max_length: int | None) -> tuple[int | None, int | None]:
        """(limit used, the model's own limit): ``max_length`` capped by the model's positions
        and the tokenizer's ``model_max_length``."""
        limits = []
        mpe = self.config.get("max_position_embeddings")
        if isinstance(mpe, int) and mpe > 0:
            offset = (self.config.get("pad_token_id") or 0) + 1 if self.config.get("model_type") in _OFFSET_POSITIONS else 0
            limits.append(mpe - offset)
        try:
            tc = json.loads((self.tokenizer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
            mml = tc.get("model_max_length")
            if isinstance(mml, (int, float)) and 0 < mml < _MAX_SANE_LENGTH:
                limits.append(int(mml))
        except (OSError, ValueError, AttributeError):
            pass
        own = min(limits) if limits else None
        if max_length is None:
            return own, own
        return (max_length if own is None else min(max_length, own)), own

    def fingerprint(self, digest) -> str:
        """BLAKE3 over the digests of the weight files, ``config.json`` and the tokenizer files."""
        from blake3 import blake3

        parts = {
            "config": digest(self.folder / "config.json"),
            "weights": {p.name: digest(p) for p in weight_files(self.folder)},
            "tokenizer": {n: digest(self.tokenizer_dir / n) for n in TOKENIZER_FILES
                          if (self.tokenizer_dir / n).is_file()},
        }
        _check_outputs(self.folder, parts["weights"])
        code = sorted(self.folder.glob("*.py"))  # remote code shipped with the model (auto_map)
        if code:
            parts["code"] = {p.name: digest(p) for p in code}
        return blake3(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def check_head(folder: Path, config: Mapping) -> None:
    """Refuse, before anything is loaded, a model whose ``config.json`` describes a head that
    predict, vote and report do not run as a single-label classifier (regression, multi-label,
    token classification, generation...): its outputs read as class logits would be silently
    wrong (a softmax over one regression output votes a constant). The message names the head."""
    head = head_of(dict(config))
    if head.supported:
        return
    if head.kind == "custom":
        fix = ("run it with its own code (auto_map in config.json and " + option("trust_remote_code") + "), or re-save "
               "it as a transformers *ForSequenceClassification model")
    else:
        fix = f"ensemble runs {SUPPORTED_HEAD} heads (*ForSequenceClassification) only for now"
    raise EnsembleError(f"{folder / 'config.json'}: {head.describe()}; {fix}")


def _check_outputs(folder: Path, digests: Mapping[str, str]) -> None:
    """An averaged folder's weights must be the bytes avg-ckpt wrote (``outputs`` in its manifest):
    a flipped byte or an edited file is an error, not a silently different model."""
    manifest = folder / "ensemble_manifest.json"
    if not manifest.is_file():
        return
    try:
        outputs = json.loads(manifest.read_text(encoding="utf-8")).get("outputs") or {}
    except (OSError, ValueError, AttributeError):
        return
    for name, digest in outputs.items():
        if name in digests and digests[name] != digest:
            raise EnsembleError(f"{folder / name}: does not match the digest in ensemble_manifest.json (damaged or "
                                "edited since averaging); re-run ensemble avg-ckpt --force")


def _class_names(folder: Path, config: Mapping) -> tuple[str, ...]:
    path = folder / "config.json"
    id2label = config.get("id2label")
    num = config.get("num_labels")
    if id2label is None:
        if not isinstance(num, int) or num < 1:
            raise EnsembleError(f"{path}: no id2label; add the class names (id2label) of the trained head")
        return tuple(f"LABEL_{i}" for i in range(num))
    if not isinstance(id2label, dict) or not id2label:
        raise EnsembleError(f"{path}: id2label must map class indices to names; fix config.json")
    try:
        by_index = {int(k): unicodedata.normalize("NFC", str(v)) for k, v in id2label.items()}  # NFD Hangul = NFC
    except (TypeError, ValueError):
        raise EnsembleError(f"{path}: id2label keys must be class indices 0..C-1; fix config.json") from None
    if sorted(by_index) != list(range(len(by_index))):
        raise EnsembleError(f"{path}: id2label keys must be 0..{len(by_index) - 1}, got {sorted(by_index)}; fix config.json")
    if isinstance(num, int) and num != len(by_index):
        raise EnsembleError(f"{path}: num_labels is {num} but id2label names {len(by_index)} classes; "
                            "make them agree with the trained head")
    labels = tuple(by_index[i] for i in range(len(by_index)))
    if len(set(labels)) != len(labels):
        raise EnsembleError(f"{path}: id2label names a class twice ({labels}); give each class its own name")
    label2id = config.get("label2id")
    if isinstance(label2id, dict) and set(map(str, label2id)) == set(labels):
        # both maps name the same classes (transformers' LABEL_i defaults beside a set id2label do not):
        # a class at another index in each means one of them was edited, and the logits' columns are unknown
        wrong = next((name for i, name in enumerate(labels) if str(label2id.get(name)) != str(i)), None)
        if wrong is not None:
            raise EnsembleError(f"{path}: id2label and label2id disagree: id2label has {wrong!r} at "
                                f"{labels.index(wrong)}, label2id at {label2id[wrong]} (id2label {dict(enumerate(labels))}, "
                                f"label2id {label2id}); make both the class order the head was trained with")
    return labels


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
            digest = self.cache.file_digest if self.cache is not None else _plain_digest
            self._fingerprint = self.ref.fingerprint(digest)
        return self._fingerprint

    def key_settings(self) -> dict:
        return recorded_settings(self.ref, self.settings, self.device.type, self.dtype)

    def key(self, split) -> str:
        from .cache import LogitCache

        return LogitCache.make_key({"model": self.model_digest, "data": split.digest,
                                    "settings": self.key_settings(), "versions": _versions()})

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
                                    "copy the base model's tokenizer files or pass --tokenizer") from None
        return self._tokenizer

    @property
    def model(self):
        if self._model is None:
            import torch

            from .modelfiles import dtype_kwarg, load_torch_bin

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
                else "--max-length"
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
        bar = _bar(progress, len(batches), f"{self.ref.name}/{split.name}")
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
        if split.labels is not None:
            split.label_indices(self.ref.labels, model=f"{self.ref.folder}")
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
                                f"{split.path} in {self.dtype}; pass --dtype float32")
        meta = {"model": self.ref.name, "model_path": str(self.ref.folder.resolve()),
                "model_digest": self.model_digest if key else None, "split": split.name,
                "data_path": str(split.path.resolve()), "data_digest": split.digest,
                "settings": self.key_settings(), "versions": _versions(), "truncated": enc.truncated,
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


def _plain_digest(path) -> str:
    from .hashing import file_digest

    return file_digest(path)


def _bar(progress, total: int, desc: str):
    """A tqdm bar over batches; ``progress`` may be a bool, or a bar whose total the caller set
    up front (:meth:`ModelSession.n_batches`): a total that grows mid-run makes the bar jump back."""
    if hasattr(progress, "update"):
        return progress
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", disable=not progress, leave=False)


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
        A :class:`~ensemble.data.Split`, or a data file read with :func:`~ensemble.data.load_split`'s
        defaults (columns ``id``, ``text``, ``label``).
    batch_size, max_length, pad_to_multiple_of, device, dtype
        See :class:`InferenceSettings`.
    cache : bool, path-like or LogitCache, default True
        True: the default cache folder (``.ensemble/cache`` beside ``ensemble.toml``, else in
        the current folder); a path or a :class:`~ensemble.cache.LogitCache`: that cache;
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
    from .cache import LogitCache
    from .data import Split, load_split

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
