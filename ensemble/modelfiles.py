"""The files a Hugging Face model folder consists of: config, weights, tokenizer.

Shared by averaging (which copies them), inference (which loads them) and the logit cache
(which hashes them), so that all three agree on what a model folder is.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import EnsembleError

__all__ = [
    "TOKENIZER_FILES",
    "has_tokenizer",
    "has_weights",
    "weight_files",
    "read_config",
    "classifier_rows",
    "dtype_kwarg",
    "load_torch_bin",
]

# Files the tokenizer of a Hugging Face model can consist of.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "bpe.codes",
    "chat_template.jinja",
)
_TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                      "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
# In the order transformers prefers them: safetensors first.
_WEIGHT_LAYOUTS = (
    ("model.safetensors.index.json", "model.safetensors"),
    ("pytorch_model.bin.index.json", "pytorch_model.bin"),
)
# Output heads of sequence classifiers: their first dimension is the number of classes.
_HEAD_SUFFIXES = ("classifier.weight", "classifier.out_proj.weight", "score.weight",
                  "classification_head.out_proj.weight", "logits_proj.weight")


def has_tokenizer(folder: Path) -> bool:
    return folder.is_dir() and any((folder / n).is_file() for n in _TOKENIZER_MARKERS)


def has_weights(folder: Path) -> bool:
    return any((folder / n).is_file() for layout in _WEIGHT_LAYOUTS for n in layout)


def weight_files(folder: Path) -> list[Path]:
    """The weight files ``from_pretrained`` would read: the index and its shards, or the single
    file; safetensors before ``pytorch_model.bin``."""
    for index_name, single in _WEIGHT_LAYOUTS:
        index = folder / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                shards = sorted(set(weight_map.values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                raise EnsembleError(f"{index}: not a valid shard index (needs a weight_map); re-save the model") from None
            for s in shards:
                if not isinstance(s, str) or Path(s).name != s:
                    raise EnsembleError(f"{index}: shard name {s!r} is not a plain file name")
                if not (folder / s).is_file():
                    raise EnsembleError(f"{folder / s}: shard listed in the index is missing; re-copy the model")
            return [index] + [folder / s for s in shards]
        if (folder / single).is_file():
            return [folder / single]
    raise EnsembleError(f"{folder}: no model.safetensors, sharded index or pytorch_model.bin; is the model folder complete?")


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise EnsembleError(f"{path}: not found; a model folder needs its config.json") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EnsembleError(f"{path}: not valid JSON; restore it from the training run") from None
    if not isinstance(config, dict):
        raise EnsembleError(f"{path}: is not a JSON object; restore it from the training run")
    return config


def classifier_rows(folder: Path) -> int | None:
    """The number of rows of the classification head in the safetensors weights, or None when
    it cannot be told from the headers (no safetensors file, unknown head name)."""
    from .tensorio import SafetensorsFile

    for path in weight_files(folder):
        if path.suffix != ".safetensors":
            continue
        with SafetensorsFile(path) as f:
            for name, info in f.tensors.items():
                if name.endswith(_HEAD_SUFFIXES) and len(info.shape) == 2:
                    return info.shape[0]
    return None


def dtype_kwarg(dtype) -> dict:
    """``from_pretrained``'s dtype argument: ``dtype=`` in transformers 5, ``torch_dtype=`` in 4.x."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}


def load_torch_bin(path: Path) -> dict:
    """A legacy ``pytorch_model.bin`` as a state dict, read with ``torch.load(weights_only=True)``:
    never unpickled. A file whose pickle holds more than tensors is a one-line error naming it
    (the payload never runs), with torch's warnings about pickle protocols silenced."""
    import pickle
    import warnings

    import torch  # only legacy checkpoints pay for importing torch

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore")
            try:
                sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:  # old (non-zip) serialization cannot be memory-mapped
                if "mmap" not in str(e):
                    raise
                sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EnsembleError(
            f"{path}: refused to load, the pickle holds more than tensors ({first[:120]}); "
            "convert the checkpoint to safetensors with a trusted tool"
        ) from None
    except Exception as e:
        raise EnsembleError(f"{path}: cannot read as a PyTorch weights file ({type(e).__name__}); "
                            "re-save it as safetensors") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise EnsembleError(f"{path}: is not a state dict of tensors; re-save it as safetensors")
    return sd
