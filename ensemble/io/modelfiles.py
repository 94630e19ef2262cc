"""The files a Hugging Face model folder consists of: config, weights, tokenizer.

Shared by averaging (which copies them), inference (which loads them) and the logit cache
(which hashes them), so that all three agree on what a model folder is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ensemble.core.errors import EnsembleError

__all__ = ['TOKENIZER_FILES', 'PROCESSOR_FILES', 'PROCESSOR_FOLDERS', 'MODEL_FILES', 'code_files', 'Head', 'head_of', 'SINGLE_LABEL', 'has_tokenizer', 'has_weights', 'weight_files', 'read_config', 'classifier_rows', 'dtype_kwarg', 'load_torch_bin']

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
    "spm.model",
    "source.spm",
    "target.spm",
    "entity_vocab.json",
)
# What a processor adds to a tokenizer, and its chat templates: read by AutoProcessor and
# apply_chat_template, so an average carries them too.
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "chat_template.json")
PROCESSOR_FOLDERS = ("additional_chat_templates",)
# Read by from_pretrained / generate beside config.json: an average without it generates otherwise.
MODEL_FILES = ("generation_config.json",)
_TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                      "spiece.model", "sentencepiece.bpe.model", "tokenizer.model", "spm.model")
# In the order transformers prefers them: safetensors first.
_WEIGHT_LAYOUTS = (
    ("model.safetensors.index.json", "model.safetensors"),
    ("pytorch_model.bin.index.json", "pytorch_model.bin"),
)
# Output heads of sequence classifiers: their first dimension is the number of classes.
_HEAD_SUFFIXES = ("classifier.weight", "classifier.out_proj.weight", "score.weight",
                  "classification_head.out_proj.weight", "logits_proj.weight")


def code_files(folder: Path, config_name: str = "config.json") -> tuple[list[str], list[Path]]:
    """``(modules auto_map names, the *.py files the folder ships)`` for the code a model or a
    tokenizer brings with it (``auto_map`` in ``config.json`` or ``tokenizer_config.json``). A
    module of another repository (``org/repo--modeling_x.Cls``) is named but has no file here;
    every ``*.py`` of the folder is listed, since a module may import its siblings."""
    try:
        auto_map = json.loads((folder / config_name).read_text(encoding="utf-8")).get("auto_map") or {}
    except (OSError, ValueError, AttributeError):
        auto_map = {}
    refs = []
    for value in (auto_map.values() if isinstance(auto_map, dict) else ()):
        for ref in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(ref, str) and "." in ref:
                refs.append(ref.rsplit(".", 1)[0])
    modules = sorted(set(refs))
    return modules, (sorted(folder.glob("*.py")) if modules else [])


# Class-name endings of transformers' task heads, and the kind of head each is.
_HEAD_ENDINGS = (
    ("ForSequenceClassification", "sequence classification"),
    ("ForTokenClassification", "token classification"),
    ("ForConditionalGeneration", "sequence-to-sequence generation"),
    ("ForSeq2SeqLM", "sequence-to-sequence generation"),
    ("ForCausalLM", "causal language modelling"),
    ("LMHeadModel", "causal language modelling"),
    ("ForQuestionAnswering", "question answering"),
    ("ForMultipleChoice", "multiple choice"),
    ("ForMaskedLM", "masked language modelling (a pretraining head)"),
    ("ForPreTraining", "pretraining"),
    ("ForNextSentencePrediction", "next-sentence prediction (a pretraining head)"),
    ("Model", "none (a base model without a task head)"),
)
# What predict, vote and report run today.
SINGLE_LABEL = "single-label classification"


@dataclass(frozen=True)
class Head:
    """What a model folder's ``config.json`` says its head is, before anything is loaded.

    Attributes
    ----------
    kind : str
        "single-label classification", "regression", "multi-label classification", "token
        classification", "sequence-to-sequence generation", "causal language modelling",
        "question answering", ... or "custom" (a class whose name says no known head).
    architecture : str or None
        ``architectures[0]``; None when the config names none.
    outputs : int
        The number of outputs of a sequence-classification head (``id2label``, else ``num_labels``).
    custom_code : bool
        ``auto_map`` names an ``AutoModelForSequenceClassification`` class shipped with the model.
    problem_type : str or None
        The config's ``problem_type`` when it says one (what the head was trained as); None when
        unsaid, which a task given by the user may fill in.
    """

    kind: str
    architecture: str | None
    outputs: int
    custom_code: bool = False
    problem_type: str | None = None

    def describe(self) -> str:
        arch = f" ({self.architecture})" if self.architecture else ""
        if self.kind == "regression":
            return (f"a regression head{arch}, {self.outputs} output{'s' if self.outputs != 1 else ''} "
                    "(problem_type regression, or num_labels=1)")
        if self.kind == "multi-label classification":
            return f"a multi-label head{arch} (problem_type multi_label_classification: a sigmoid per label)"
        if self.kind == "custom":
            return (f"a custom class{arch} that AutoModelForSequenceClassification does not build: it would load "
                    "transformers' own classifier for this model_type instead, with another head")
        return f"a {self.kind} head{arch}" if not self.kind.startswith("none") else f"no task head{arch}"


def head_of(config: dict) -> Head:
    """The :class:`Head` that ``config`` (a parsed ``config.json``) describes: the class in
    ``architectures``, then, for a sequence classifier, ``problem_type`` and the number of
    outputs (one output and no problem type is regression, as transformers treats it)."""
    archs = config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    id2label = config.get("id2label")
    num = config.get("num_labels")
    outputs = len(id2label) if isinstance(id2label, dict) and id2label else num if isinstance(num, int) else 2
    auto_map = config.get("auto_map")
    custom = isinstance(auto_map, dict) and "AutoModelForSequenceClassification" in auto_map
    kind = "sequence classification" if arch is None else next(
        (k for ending, k in _HEAD_ENDINGS if arch.endswith(ending)), "custom")
    problem = config.get("problem_type")
    problem = problem if problem in ("regression", "single_label_classification", "multi_label_classification") else None
    if kind == "sequence classification":
        if problem == "regression" or (problem is None and outputs == 1):
            kind = "regression"
        elif problem == "multi_label_classification":
            kind = "multi-label classification"
        else:
            kind = SINGLE_LABEL if outputs >= 2 else "one-output classification"
    return Head(kind, arch, outputs, custom, problem if kind in (SINGLE_LABEL, "regression",
                                                                 "multi-label classification") else None)


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
    from ensemble.io.tensors import SafetensorsFile

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
