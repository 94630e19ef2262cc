"""What a model does with a text: the forwards a :class:`~ensemble.inference.session.ModelSession`
runs, the Auto class each loads with, the settings each adds to the cache key, and their outputs.

``FORWARDS`` names them:

``"sequence"``
    A sequence classifier (``AutoModelForSequenceClassification``): one row of logits per text,
    (n, C). The default.
``"tokens"``
    A token classifier (``AutoModelForTokenClassification``): per-token probabilities (a softmax
    over the tags) projected onto the characters of each text through the fast tokenizer's
    ``offset_mapping`` (a :class:`~ensemble.core.outputs.Ragged`), or, with ``words``, onto the
    pre-split words of each row through ``word_ids``. A character no token covers (a
    space, a character the tokenizer drops) gets a row of NaN. A text longer than the token limit
    runs as overlapping windows (``stride`` tokens shared by neighbours) and a character that
    several windows cover gets the mean of their probabilities: nothing is cut. Inside a token no
    character begins an entity: on each character of a token but its first, the share of a tag
    that begins one (``B-X``, and BIOES/BILOU's ``S-X``/``U-X``) moves to its ``I-X``
    (:func:`continue_inside_tokens`), so that members with other tokenizers average alike.
    Cached, as the sequence forward's logits are (with ``return_offsets``, computed every time).
``"generation"``
    A sequence-to-sequence model (``AutoModelForSeq2SeqLM``, for a config with
    ``is_encoder_decoder``) or a decoder-only one (``AutoModelForCausalLM``): ``model.generate``
    with the settings given, ``num_return_sequences`` texts per input and their sequence scores
    (a :class:`~ensemble.core.outputs.Texts`).

Only the registry and the output containers live here; torch and transformers are imported by
the session that runs a model.
"""

from __future__ import annotations

import dataclasses
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.inference.models import ModelRef
from ensemble.io.modelfiles import has_tokenizer, head_of, read_config

__all__ = ['Forward', 'SequenceForward', 'TokenForward', 'GenerationForward', 'FORWARDS', 'forward_named',
           'as_forward', 'open_model', 'generation_config_digest', 'entry_settings',
           'project_onto_characters', 'project_onto_words', 'uncovered_as_nan', 'WORD_RULES', 'inside_columns', 'continue_inside_tokens', 'token_spans',
           'mean_token_logprob', 'eos_ids_of']


# how a word takes its sub-tokens' probabilities (TokenForward.words)
WORD_RULES = ("first", "mean")


# --------------------------------------------------------------------------- the forwards


@dataclass(frozen=True)
class Forward:
    """What a model does. Subclasses set ``name``, ``auto_classes`` and ``heads`` (the head kinds
    of :func:`~ensemble.io.modelfiles.head_of` that they run); their fields are the settings that
    enter the cache key beside :func:`~ensemble.inference.settings.recorded_settings`'."""

    name: ClassVar[str] = ""
    auto_classes: ClassVar[tuple[str, ...]] = ()
    heads: ClassVar[tuple[str, ...]] = ()

    def auto_class(self, config: Mapping) -> str:
        """The transformers Auto class that loads a model of ``config`` (a parsed config.json)."""
        return self.auto_classes[0]

    def settings(self) -> dict:
        """This forward's own settings, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def key_settings(self) -> dict:
        """What this forward adds to a cache entry's settings: nothing for "sequence" (today's
        keys), else ``forward`` (its name) and its settings."""
        return {"forward": self.name, **self.settings()}


@dataclass(frozen=True)
class SequenceForward(Forward):
    """Sequence classification: (n, C) logits, one row per text (or text pair)."""

    name: ClassVar[str] = "sequence"
    auto_classes: ClassVar[tuple[str, ...]] = ("AutoModelForSequenceClassification",)
    heads: ClassVar[tuple[str, ...]] = ("single-label classification", "regression", "multi-label classification",
                                        "one-output classification")

    def key_settings(self) -> dict:
        return {}


@dataclass(frozen=True)
class TokenForward(Forward):
    """Token classification: per-character tag probabilities, or per-word ones.

    Parameters
    ----------
    stride : int, optional
        Tokens that neighbouring windows of a text longer than the token limit share. Default:
        a quarter of the text tokens a window holds. Must be smaller than that number.
    return_offsets : bool, default False
        Also return each text's token spans: the (start, end) characters of every token of the
        text (a token of several windows once), ``meta["spans"]`` of the :class:`~ensemble.core.outputs.Ragged`.
        Not cached (the cache holds the probabilities only): computed every time.
    words : {"first", "mean"}, optional
        The text column holds pre-split words (a list of strings per row; a JSON list in a CSV),
        run with ``is_split_into_words`` and projected onto the words through ``word_ids``
        (:func:`project_onto_words`): each word takes its first sub-token's probabilities
        (``"first"``, the token Trainer's recipes label) or the mean over its sub-tokens
        (``"mean"``). Default None: the column holds texts, projected onto characters.
    """

    name: ClassVar[str] = "tokens"
    auto_classes: ClassVar[tuple[str, ...]] = ("AutoModelForTokenClassification",)
    heads: ClassVar[tuple[str, ...]] = ("token classification",)

    stride: int | None = None
    return_offsets: bool = False
    words: str | None = None

    def __post_init__(self):
        _check_int("stride", self.stride, 0)
        if not isinstance(self.return_offsets, bool):
            raise EnsembleError(f"return_offsets must be true or false, got {self.return_offsets!r}")
        if self.words is not None and self.words not in WORD_RULES:
            raise EnsembleError(f"words must be one of {', '.join(WORD_RULES)} (or unset, for texts); "
                                f"got {self.words!r}")
        if self.words is not None and self.return_offsets:
            raise EnsembleError("return_offsets gives character spans, and with words the units are words; "
                                "drop one of them")

    def window_stride(self, room: int) -> int:
        """The stride of windows holding ``room`` text tokens each."""
        return room // 4 if self.stride is None else self.stride


@dataclass(frozen=True)
class GenerationForward(Forward):
    """Generation with ``model.generate``. A setting left None is the model's own
    (``generation_config.json``, whose digest enters the cache key).

    Parameters
    ----------
    num_beams, max_new_tokens, length_penalty, no_repeat_ngram_size, num_return_sequences, do_sample
        Passed to ``generate``.
    prompt : str, optional
        A template each text is put in before it is encoded, ``{text}`` where the text goes
        (``"Summarize the dialogue:\n{text}\nSummary:"`` for a decoder-only member); a text too
        long for the model is cut from its end, as any text is.
    seed : int, default 0
        Each batch is seeded with ``seed`` plus its place in the length-sorted list of batches, so
        that sampling gives the same texts however many processes share the batches.
    """

    name: ClassVar[str] = "generation"
    auto_classes: ClassVar[tuple[str, ...]] = ("AutoModelForSeq2SeqLM", "AutoModelForCausalLM")
    heads: ClassVar[tuple[str, ...]] = ("sequence-to-sequence generation", "causal language modelling")

    num_beams: int | None = None
    max_new_tokens: int | None = None
    length_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    num_return_sequences: int | None = None
    do_sample: bool | None = None
    seed: int = 0
    prompt: str | None = None

    def __post_init__(self):
        for name in ("num_beams", "max_new_tokens", "num_return_sequences"):
            _check_int(name, getattr(self, name), 1)
        _check_int("no_repeat_ngram_size", self.no_repeat_ngram_size, 0)
        _check_int("seed", self.seed, 0)
        if self.length_penalty is not None and (isinstance(self.length_penalty, bool)
                                                or not isinstance(self.length_penalty, (int, float))):
            raise EnsembleError(f"length_penalty must be a number, got {self.length_penalty!r}")
        if self.do_sample is not None and not isinstance(self.do_sample, bool):
            raise EnsembleError(f"do_sample must be true or false, got {self.do_sample!r}")
        if self.prompt is not None and (not isinstance(self.prompt, str) or "{text}" not in self.prompt):
            raise EnsembleError(f"prompt must be a template with {{text}} where each text goes, got {self.prompt!r}")
        k = self.num_return_sequences or 1
        if self.num_beams is not None and k > self.num_beams and not self.do_sample:  # else generate judges
            raise EnsembleError(f"num_return_sequences {k} needs num_beams >= {k} or do_sample; "
                                f"set num_beams={k}")

    def auto_class(self, config: Mapping) -> str:
        return self.auto_classes[0] if config.get("is_encoder_decoder") else self.auto_classes[1]

    def generate_kwargs(self) -> dict:
        """The keyword arguments of ``generate`` that these settings set (None: the model's own)."""
        return {k: v for k, v in self.settings().items() if k not in ("seed", "prompt") and v is not None}

    def prompted(self, texts: Sequence[str]) -> list[str]:
        """``texts`` in the :attr:`prompt` template (as they are without one)."""
        return list(texts) if self.prompt is None else [self.prompt.replace("{text}", str(t)) for t in texts]


FORWARDS: dict[str, type[Forward]] = {f.name: f for f in (SequenceForward, TokenForward, GenerationForward)}


def forward_named(name: str) -> type[Forward]:
    """The :class:`Forward` class called ``name`` (a key of :data:`FORWARDS`)."""
    try:
        return FORWARDS[name]
    except (KeyError, TypeError):
        raise EnsembleError(f"unknown forward {name!r}; expected {', '.join(FORWARDS)}") from None


def as_forward(value: str | Forward | None = None, **settings) -> Forward:
    """``value`` as a Forward: None ("sequence"), a name (with ``settings``), or a Forward."""
    cls = type(value) if isinstance(value, Forward) else forward_named("sequence" if value is None else value)
    known = {f.name for f in dataclasses.fields(cls)}
    if isinstance(value, Forward) and not settings:
        return value
    unknown = sorted(set(settings) - known)
    if unknown:
        raise EnsembleError(f"unknown setting {unknown[0]!r} of the {cls.name} forward; expected "
                            f"{', '.join(sorted(known)) or 'none'}")
    return dataclasses.replace(value, **settings) if isinstance(value, Forward) else cls(**settings)


def split_forward(value: str | Forward | None, split) -> Forward:
    """The forward ``value`` as it runs over ``split``: with its ``words`` setting when the
    split's text column holds pre-split words (:attr:`~ensemble.data.splits.Split.words`); a forward
    that reads no words refuses them in one line."""
    fw, words = as_forward(value), getattr(split, "words", None)
    generate = dict(getattr(split, "generate", ()) or ())
    if generate:
        if fw.name != "generation":
            raise EnsembleError(f"{split.path}: generate settings ({', '.join(generate)}) are for generation members; "
                                f"the {fw.name} forward takes none: drop them")
        fw = as_forward(fw, **generate)
    if words is None:
        return fw
    if "words" not in {f.name for f in dataclasses.fields(fw)}:
        raise EnsembleError(f"{split.path}: words = {words!r} says its text column holds pre-split words, which the "
                            f"{fw.name} forward does not read (token classifiers do); drop it")
    return as_forward(fw, words=words)


def _check_int(name: str, value, low: int) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
        raise EnsembleError(f"{name} must be an integer >= {low}, got {value!r}")


# --------------------------------------------------------------------------- model folders


def open_model(path: str | os.PathLike, forward: str | Forward | None = None, name: str | None = None,
               tokenizer: str | os.PathLike | None = None) -> ModelRef:
    """A model folder opened for ``forward``: :meth:`ModelRef.open` for "sequence"; for the others
    the same checks of the folder and its tokenizer, and a head of the forward's kind (a config
    whose ``architectures`` names another head is refused in one line). A token classifier's tags
    are its ``id2label``; a generator has none."""
    fw = as_forward(forward)
    if fw.name == "sequence":
        return ModelRef.open(path, name, tokenizer)
    folder = Path(path)
    if not folder.is_dir():
        raise EnsembleError(f"{folder}: not a folder; pass a model folder (config.json, weights, tokenizer)")
    config = read_config(folder)
    head = head_of(dict(config))
    if head.architecture is not None and head.kind not in fw.heads:
        raise EnsembleError(f"{folder / 'config.json'}: {head.describe()}; the {fw.name} forward runs "
                            f"{' or '.join(fw.heads)} models ({' / '.join(fw.auto_classes)})")
    labels = _tag_names(folder, config) if fw.name == "tokens" else ()
    tok = Path(tokenizer) if tokenizer is not None else folder
    if not has_tokenizer(tok):
        raise EnsembleError(f"{tok}: no tokenizer files (tokenizer.json, vocab.txt...); copy the base model's "
                            "tokenizer files into it")
    return ModelRef(folder, name or folder.resolve().name, labels, tok, config)


def _tag_names(folder: Path, config: Mapping) -> tuple[str, ...]:
    """A token classifier's tags: ``id2label`` in index order (0..C-1, each once)."""
    path = folder / "config.json"
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise EnsembleError(f"{path}: no id2label; add the tag names (id2label) of the trained head")
    try:
        by_index = {int(k): unicodedata.normalize("NFC", str(v)) for k, v in id2label.items()}
    except (TypeError, ValueError):
        raise EnsembleError(f"{path}: id2label keys must be tag indices 0..C-1; fix config.json") from None
    if sorted(by_index) != list(range(len(by_index))):
        raise EnsembleError(f"{path}: id2label keys must be 0..{len(by_index) - 1}, got {sorted(by_index)}; "
                            "fix config.json")
    tags = tuple(by_index[i] for i in range(len(by_index)))
    if len(set(tags)) != len(tags):
        raise EnsembleError(f"{path}: id2label names a tag twice ({tags}); give each tag its own name")
    return tags


def entry_settings(forward: Forward, folder: Path, digest) -> dict:
    """What ``forward`` adds to a cache entry's settings for the model in ``folder``: its
    :meth:`Forward.key_settings`, and for generation the digest of the folder's
    ``generation_config.json`` (which ``generate`` reads): an edited one is another entry, for the
    session that writes entries and the workflows that look them up alike."""
    out = forward.key_settings()
    if forward.name == "generation":
        out["generation_config"] = generation_config_digest(Path(folder), digest)
    return out


def generation_config_digest(folder: Path, digest) -> str | None:
    """The digest of ``generation_config.json`` (what ``generate`` reads beside config.json), or
    None when the folder has none."""
    path = folder / "generation_config.json"
    return digest(path) if path.is_file() else None


# --------------------------------------------------------------------------- outputs


# --------------------------------------------------------------------------- projection


def uncovered_as_nan(out):
    """A cached :class:`~ensemble.core.outputs.Ragged` of the tokens forward with its units that no
    token covered as NaN rows again (the cache stores them as zeros; a softmax row never sums to 0)."""
    values = np.array(out.values, dtype=np.float32)
    values[~values.any(axis=1)] = np.nan
    return dataclasses.replace(out, values=values)


def project_onto_characters(probs: Sequence[np.ndarray], spans: Sequence[np.ndarray], text_of: np.ndarray,
                            lengths: Sequence[int], classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows' per-token probabilities as per-character rows.

    ``probs[w]`` (L_w, C) and ``spans[w]`` (L_w, 2) are window w's tokens and their (start, end)
    characters in text ``text_of[w]`` (a token with end <= start, a special token, covers
    nothing); ``lengths`` are the texts' lengths in characters. Returns ``(values, offsets)``:
    float32 (sum(lengths), C), each character the mean of the tokens covering it (NaN where
    none does), and int64 (n + 1,) row offsets.
    """
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    total = np.zeros((int(offsets[-1]), classes), dtype=np.float64)
    count = np.zeros(int(offsets[-1]), dtype=np.int64)
    for p, sp, t in zip(probs, spans, text_of):
        sp = np.asarray(sp, dtype=np.int64).reshape(-1, 2)
        keep = sp[:, 1] > sp[:, 0]
        if not keep.any():
            continue
        start, width = sp[keep, 0], sp[keep, 1] - sp[keep, 0]
        token = np.repeat(np.flatnonzero(keep), width)
        within = np.arange(int(width.sum())) - np.repeat(np.cumsum(width) - width, width)
        chars = offsets[t] + np.repeat(start, width) + within
        np.add.at(total, chars, np.asarray(p, dtype=np.float64)[token])
        np.add.at(count, chars, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (total / count[:, None]).astype(np.float32)  # 0/0: NaN rows where no token is
    return values, offsets


def project_onto_words(probs: Sequence[np.ndarray], units: Sequence[np.ndarray], text_of: np.ndarray,
                       n_words: Sequence[int], labels: Sequence[str], how: str = "first") -> tuple[np.ndarray, np.ndarray]:
    """Windows' per-token probabilities as per-word rows (texts given as pre-split words).

    ``probs[w]`` (L_w, C) are window w's tokens, ``units[w]`` (L_w, 2) each token's word (its
    ``word_ids``) and its place among its text's tokens (-1, -1 for special tokens), in text
    ``text_of[w]``; ``n_words`` are the texts' numbers of words. A token that several windows
    hold first takes the mean of their probabilities; then each word takes its first token's
    (``how="first"``) or the mean over its tokens (``"mean"``: each entity type's share, its
    ``B-``, ``I-`` (and ``S-``/``U-``) tags together, averaged over the tokens, then split between
    those tags as the first token splits it, so that a word begins an entity as its first token
    does). Returns ``(values, offsets)``: float32 (sum(n_words), C), NaN for a word no token
    covers (whitespace), and int64 (n + 1,) row offsets.
    """
    if how not in WORD_RULES:
        raise EnsembleError(f"how must be one of {', '.join(WORD_RULES)}; got {how!r}")
    offsets = np.zeros(len(n_words) + 1, dtype=np.int64)
    np.cumsum(np.asarray(n_words, dtype=np.int64), out=offsets[1:])
    values = np.full((int(offsets[-1]), len(labels)), np.nan)
    # (C, C): tag j in the group of column inside[j], B-X with I-X
    group = np.eye(len(labels))[inside_columns(labels)] if how == "mean" else None
    windows_of: dict[int, list[int]] = {}
    for w, t in enumerate(np.asarray(text_of, dtype=np.int64).tolist()):
        windows_of.setdefault(t, []).append(w)
    for t, ws in windows_of.items():
        keep = [np.asarray(units[w], dtype=np.int64).reshape(-1, 2)[:, 0] >= 0 for w in ws]
        word = np.concatenate([np.asarray(units[w], dtype=np.int64).reshape(-1, 2)[k, 0] for w, k in zip(ws, keep)])
        place = np.concatenate([np.asarray(units[w], dtype=np.int64).reshape(-1, 2)[k, 1] for w, k in zip(ws, keep)])
        if not len(place):
            continue
        p = np.concatenate([np.asarray(probs[w], dtype=np.float64)[k] for w, k in zip(ws, keep)])
        total, count = np.zeros((place.max() + 1, len(labels))), np.zeros(place.max() + 1)
        np.add.at(total, place, p)
        np.add.at(count, place, 1)
        held = np.flatnonzero(count)
        token = total[held] / count[held, None]
        word_at = np.zeros(place.max() + 1, dtype=np.int64)
        word_at[place] = word
        word_at = word_at[held]  # held is sorted: each word's first token comes first
        found, first = np.unique(word_at, return_index=True)
        if how == "first":
            values[offsets[t] + found] = token[first]
            continue
        mass, n = np.zeros((len(found), len(labels))), np.zeros(len(found))
        slot = np.searchsorted(found, word_at)
        np.add.at(mass, slot, token @ group)
        np.add.at(n, slot, 1)
        head = token[first]
        within = head @ group @ group.T  # each column: its group's total on the first token
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(within > 0, head / within, np.diag(group)[None, :].repeat(len(found), axis=0))
        values[offsets[t] + found] = (mass / n[:, None]) @ group.T * share
    return values.astype(np.float32), offsets


# the prefixes of a tag that begins an entity: BIO's B-, BIOES's S- (single), BILOU's U- (unit)
_BEGINS = ("B-", "S-", "U-")


def inside_columns(labels: Sequence[str]) -> np.ndarray:
    """For each tag column, the column its share moves to on a token's later characters: ``B-X``,
    ``S-X`` and ``U-X`` to ``I-X``, every other tag to itself. A tag that begins an entity without
    its ``I-X`` is an error naming the tag."""
    index = {str(t): j for j, t in enumerate(labels)}
    out = np.arange(len(labels))
    for j, t in enumerate(map(str, labels)):
        if t[:2] in _BEGINS:
            inside = "I-" + t[2:]
            if inside not in index:
                raise EnsembleError(f"tag {t!r} has no {inside!r} among the tags ({', '.join(map(str, labels))}): a "
                                    "token's later characters could not continue its entity; give the model both")
            out[j] = index[inside]
    return out


def continue_inside_tokens(values: np.ndarray, offsets: np.ndarray, spans: Sequence[np.ndarray], text_of: np.ndarray,
                           labels: Sequence[str]) -> np.ndarray:
    """Per-character tag probabilities (``values`` (N, C), rows of text i at ``offsets[i]:offsets[i+1]``,
    as :func:`project_onto_characters` gives them) with, on every character of a token but its first
    (``spans[w]``: window w's token spans in text ``text_of[w]``), each share of a tag that begins
    an entity moved to its ``I-`` tag (:func:`inside_columns`); values of another dtype are kept
    in theirs."""
    later = np.zeros(len(values), dtype=bool)
    for sp, t in zip(spans, text_of):
        sp = np.asarray(sp, dtype=np.int64).reshape(-1, 2)
        sp = sp[sp[:, 1] - sp[:, 0] > 1]
        if len(sp):
            width = sp[:, 1] - sp[:, 0] - 1
            within = np.arange(int(width.sum())) - np.repeat(np.cumsum(width) - width, width)
            later[offsets[t] + np.repeat(sp[:, 0] + 1, width) + within] = True
    columns = inside_columns(labels)
    if not later.any() or (columns == np.arange(len(columns))).all():
        return values
    out = np.array(values)
    moved = np.zeros((int(later.sum()), out.shape[1]), dtype=np.float64)
    np.add.at(moved.T, columns, np.asarray(values[later], dtype=np.float64).T)
    out[later] = moved
    return out


def token_spans(spans: Sequence[np.ndarray], text_of: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each text's distinct token spans, sorted (a token of two windows once): ``(spans (m, 2),
    offsets (n + 1,))``."""
    per_text: list[list[np.ndarray]] = [[] for _ in range(n)]
    for sp, t in zip(spans, text_of):
        sp = np.asarray(sp, dtype=np.int64).reshape(-1, 2)
        per_text[t].append(sp[sp[:, 1] > sp[:, 0]])
    rows = [np.unique(np.concatenate(p), axis=0) if p else np.zeros((0, 2), dtype=np.int64) for p in per_text]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    out = np.concatenate(rows) if rows else np.zeros((0, 2), dtype=np.int64)
    return out.reshape(-1, 2).astype(np.int64), offsets


def mean_token_logprob(transition: Any, generated: Any, eos_ids: Sequence[int]) -> Any:
    """The mean log-probability per candidate of its generated tokens up to and with the first of
    ``eos_ids`` (torch tensors: ``transition`` (N, T) from ``compute_transition_scores``, the
    ``generated`` (N, T) token ids it scores)."""
    import torch

    if eos_ids:
        is_eos = torch.isin(generated, torch.as_tensor(list(eos_ids), device=generated.device))
    else:
        is_eos = torch.zeros_like(generated, dtype=torch.bool)
    ended = (torch.cumsum(is_eos.long(), dim=1) - is_eos.long()) > 0  # an end came before this token
    mask = ~ended
    total = torch.where(mask, transition.float(), torch.zeros((), device=transition.device)).sum(dim=1)
    return total / mask.sum(dim=1).clamp(min=1)


def eos_ids_of(generation_config) -> tuple[int, ...]:
    """The end-of-sequence ids of a ``GenerationConfig`` (an int, a list, or None)."""
    eos = getattr(generation_config, "eos_token_id", None)
    if eos is None:
        return ()
    return tuple(int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]))

