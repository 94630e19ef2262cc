"""A model folder as a member: its digest, its head checked before anything is loaded, its class
names."""

from __future__ import annotations

import json
import logging
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Mapping

from ensemble.core.errors import EnsembleError, option
from ensemble.io.modelfiles import (
    TOKENIZER_FILES,
    classifier_rows,
    has_tokenizer,
    head_of,
    read_config,
    weight_files,
)

log = logging.getLogger(__name__)

__all__ = ['ModelRef', 'check_head', 'SEQUENCE_HEADS']

# The heads of *ForSequenceClassification, whichever problem_type they were trained with: the ones
# a task said by the user (task = "multi_label" for a model saved without its problem_type) may relabel.
SEQUENCE_HEADS = ("single-label classification", "regression", "multi-label classification")

# Architectures whose position ids start after the padding index (RoBERTa's offset of 2).
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer",
                     "roberta-prelayernorm", "xmod", "ibert", "luke", "mpnet"}
_MAX_SANE_LENGTH = 1_000_000  # tokenizers without a limit report ~1e30


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
    # the member's task (an ensemble.tasks Task), set by the layer that knows the tasks
    # (ensemble.tasks.read_as); inference only asks it to check a split's labels
    task: object = field(default=None, repr=False, compare=False)

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

    @property
    def head(self):
        """The head its ``config.json`` describes (:class:`~ensemble.io.modelfiles.Head`)."""
        return head_of(dict(self.config))

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
    inference does not run (:data:`SEQUENCE_HEADS`: token classification, generation...): its
    outputs read as another kind's would be silently wrong (a softmax over one regression output
    votes a constant). The message names the head. Which task reads a head's outputs is
    :func:`ensemble.tasks.open_member`'s to say."""
    head = head_of(dict(config))
    if head.kind in SEQUENCE_HEADS or (head.kind == "custom" and head.custom_code):
        return  # a model with its own code (auto_map) runs as the classifier its code defines
    if head.kind == "custom":
        fix = ("run it with its own code (auto_map in config.json and " + option("trust_remote_code") + "), or re-save "
               "it as a transformers *ForSequenceClassification model")
    else:
        fix = (f"ensemble runs {', '.join(SEQUENCE_HEADS)} heads (*ForSequenceClassification) and token "
               "classification heads (*ForTokenClassification) only for now")
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
        if num is None:  # transformers' default, which 5.x leaves out of config.json
            num = 2
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
