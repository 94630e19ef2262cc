"""Members with many classes, without training: model folders that `ensemble` opens (config,
a classification head in safetensors, a vocabulary) and their logits put in the logit cache, as
``ensemble predict`` would have cached them. Used by the many-class tests and
``benchmarks/bench_many_classes.py``.

The logits are realistic in the ways that matter to the combining half: members share part of
their errors (shared noise), differ in strength, and are miscalibrated (each has its own scale).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

RHO = 0.5


def draw(n: int, classes: int, strengths, scales, rng, prior=None) -> tuple[list[np.ndarray], np.ndarray]:
    """M members' logits (n, C) and the true classes: ``scale_m * (strength_m * onehot(y) +
    sqrt(rho) * shared + sqrt(1 - rho) * own_m)``."""
    y = rng.choice(classes, size=n, p=prior)
    shared = rng.normal(size=(n, classes))
    members = []
    for s, t in zip(strengths, scales):
        z = np.sqrt(RHO) * shared + np.sqrt(1 - RHO) * rng.normal(size=(n, classes))
        z[np.arange(n), y] += s
        members.append((t * z).astype(np.float32))
    return members, y


def make_members(root: Path, *, valid_rows: int, test_rows: int, models: int, classes: int, seed: int = 0,
                 strength: float = 3.0):
    """Write ``models`` fake model folders, ``data/valid.csv`` and ``data/test.csv`` under ``root``
    and cache every member's logits on both splits (in ``root/.ensemble/cache``).

    Returns (members {name: folder}, data {split: path}, cache_dir, labels)."""
    rng = np.random.default_rng(seed)
    labels = [f"intent_{c:03d}" for c in range(classes)]
    prior = rng.dirichlet(np.full(classes, 30.0))  # unequal classes, none so rare that a fold lacks it
    strengths = strength * np.linspace(1.0, 0.7, models)
    scales = np.linspace(0.6, 1.8, models)  # from under- to over-confident
    valid, yv = draw(valid_rows, classes, strengths, scales, rng, prior)
    test, yt = draw(test_rows, classes, strengths, scales, rng, prior)
    (root / "data").mkdir(parents=True, exist_ok=True)
    data = {"valid": root / "data" / "valid.csv", "test": root / "data" / "test.csv"}
    pd.DataFrame({"id": [f"v{i}" for i in range(valid_rows)], "text": "x",
                  "label": [labels[c] for c in yv]}).to_csv(data["valid"], index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(test_rows)], "text": "x"}).to_csv(data["test"], index=False)
    cache_dir = root / ".ensemble" / "cache"
    members = {}
    for m in range(models):
        members[f"m{m}"] = cache_fake_model(root / "models" / f"m{m}", f"m{m}", labels, {},
                                            {"valid": valid[m], "test": test[m]}, data, cache_dir, rng)
    return members, data, cache_dir, labels


def draw_values(task: str, n: int, names, strengths, rng, *, rho: float = RHO, offsets=None, scales=None):
    """Regression: the truth y (n, T) ~ N(0, 1) and M members' outputs ``offset_m + scale_m *
    (y + noise / strength_m)``, their noise partly shared. Multi-label: y (n, L) 0/1 with label
    shares from 5% to 40%, and M members' logits ``strength_m * (2y - 1) + noise - 1``."""
    T, M = len(names), len(strengths)
    offsets = np.zeros(M) if offsets is None else np.asarray(offsets)
    scales = np.ones(M) if scales is None else np.asarray(scales)
    shared = rng.normal(size=(n, T))
    if task == "regression":
        y = rng.normal(size=(n, T))
    else:
        y = (rng.random((n, T)) < np.linspace(0.05, 0.4, T)).astype(np.float64)
    members = []
    for s, o, c in zip(strengths, offsets, scales):
        noise = np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(size=(n, T))
        out = o + c * (y + noise / s) if task == "regression" else s * (2 * y - 1) + noise - 1
        members.append(out.astype(np.float32))
    return members, y


def make_value_members(root: Path, task: str, *, valid_rows: int, test_rows: int, models: int, targets: int,
                       seed: int = 0):
    """Fake regression or multi-label model folders and data files under ``root``, every member's
    outputs cached on both splits, as :func:`make_members` does for classifiers.

    Returns (members {name: folder}, data {split: path}, cache_dir, names, truth {split: y})."""
    rng = np.random.default_rng(seed)
    names = [f"t{j}" for j in range(targets)]
    strengths = np.linspace(2.0, 0.8, models)
    valid, yv = draw_values(task, valid_rows, names, strengths, rng)
    test, yt = draw_values(task, test_rows, names, strengths, rng)
    data = write_value_files(root, task, names, yv, test_rows)
    cache_dir = root / ".ensemble" / "cache"
    members = {}
    problem = "regression" if task == "regression" else "multi_label_classification"
    for m in range(models):
        members[f"m{m}"] = cache_fake_model(root / "models" / f"m{m}", f"m{m}", names, {"problem_type": problem},
                                            {"valid": valid[m], "test": test[m]}, data, cache_dir, rng,
                                            label={"valid": names})
    return members, data, cache_dir, names, {"valid": yv, "test": yt}


def write_value_files(root: Path, task: str, columns, yv: np.ndarray, test_rows: int) -> dict:
    """``root/data/valid.csv`` (ids, the text "x", the truth ``yv`` under ``columns``) and an
    unlabelled ``test.csv`` of ``test_rows`` rows: {split: path}."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    data = {"valid": root / "data" / "valid.csv", "test": root / "data" / "test.csv"}
    frame = pd.DataFrame({"id": [f"v{i}" for i in range(len(yv))], "text": "x"})
    for j, c in enumerate(columns):
        frame[c] = yv[:, j] if task == "regression" else yv[:, j].astype(int)
    frame.to_csv(data["valid"], index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(test_rows)], "text": "x"}).to_csv(data["test"], index=False)
    return data


def cache_fake_model(folder: Path, name: str, labels, config: dict, outputs: dict, data: dict, cache_dir: Path, rng,
                     label: dict | None = None) -> Path:
    """A fake model folder (config with ``labels`` as id2label and ``config``'s keys, a head in
    safetensors, a vocabulary) and its ``outputs`` {split: (n, C)} cached as predict caches them."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["BertForSequenceClassification"], "model_type": "bert", **config,
        "id2label": {str(i): c for i, c in enumerate(labels)}, "label2id": {c: i for i, c in enumerate(labels)}}))
    save_file({"classifier.weight": rng.normal(size=(len(labels), 4)).astype(np.float32),
               "classifier.bias": np.zeros(len(labels), dtype=np.float32)}, folder / "model.safetensors")
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nx\n")
    cache_outputs(folder, name, labels, outputs, data, cache_dir, label)
    return folder


def cache_outputs(folder: Path, name: str, labels, outputs: dict, data: dict, cache_dir: Path,
                  label: dict | None = None) -> None:
    """A model folder's ``outputs`` {split: (n, C)} on the files ``data`` {split: path} put in the
    cache as ``ensemble predict`` puts them."""
    from ensemble.core.outputs import Logits
    from ensemble.data.splits import load_split
    from ensemble.inference.cache import OutputCache
    from ensemble.inference.models import ModelRef
    from ensemble.inference.settings import InferenceSettings, recorded_settings

    cache = OutputCache(cache_dir)
    ref = ModelRef.open(folder, name)
    digest = ref.fingerprint(cache.file_digest)
    for split_name, values in outputs.items():
        split = load_split(data[split_name], name=split_name, label=(label or {}).get(split_name))
        lg = Logits(split.ids, values, tuple(labels), name, split_name)
        settings = recorded_settings(ref, InferenceSettings())  # as predict on the CPU records them
        cache.put(cache.make_key({"model": digest, "data": split.digest}), lg,
                  {"model_digest": digest, "data_digest": split.digest, "settings": settings})



def make_task_members(task: str, root: Path, *, valid_rows: int = 240, test_rows: int = 60, models: int = 3,
                      outputs: int = 3, seed: int = 0):
    """Fake members of any registered task (its name), their outputs cached on a labelled
    validation split and a test split, for the task contract (tests/tasks/test_contract.py).

    Returns (members {name: folder}, data {split: path}, cache_dir, columns, names): ``columns``
    as vote and report take them, ``names`` the classes, targets or labels in column order."""
    if task == "classification":
        members, data, cache_dir, labels = make_members(root, valid_rows=valid_rows, test_rows=test_rows,
                                                        models=models, classes=outputs, seed=seed)
        return members, data, cache_dir, {}, list(labels)
    if task in ("regression", "multi_label"):
        members, data, cache_dir, names, _ = make_value_members(root, task, valid_rows=valid_rows, test_rows=test_rows,
                                                                models=models, targets=outputs, seed=seed)
        return members, data, cache_dir, {"label": list(names)}, list(names)
    if task == "entities":
        members, data, cache_dir = make_entity_members(root, valid_rows=valid_rows, test_rows=test_rows,
                                                       models=models, seed=seed)
        return members, data, cache_dir, {"label": "entities"}, ["entities"]
    if task == "summarization":
        members, data, cache_dir = make_summary_members(root, valid_rows=min(valid_rows, 80), test_rows=test_rows,
                                                        models=models, seed=seed)
        return members, data, cache_dir, {"label": "summary"}, ["summary"]
    raise KeyError(f"no synthetic members for task {task!r}: add them to tests/synthetic_members.py")


SUMMARY_WORDS = tuple("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split())


def draw_summaries(n: int, rng) -> list[str]:
    """``n`` reference summaries: 4 to 8 lowercase words each (rouge-score's tokens are the same)."""
    return [" ".join(rng.choice(SUMMARY_WORDS, size=rng.integers(4, 9))) for _ in range(n)]


def noisy_summary(reference: str, keep: float, rng) -> str:
    """``reference`` with each word kept with probability ``keep``, else another word."""
    return " ".join(w if rng.random() < keep else str(rng.choice(SUMMARY_WORDS)) for w in reference.split())


def make_summary_members(root: Path, *, valid_rows: int, test_rows: int, models: int, seed: int = 0,
                         candidates: int = 2):
    """Fake generation folders (a BART config, weights, a fast tokenizer) and their candidates
    (each reference with a member's share of its words replaced, ``candidates`` per row) cached as
    ``ensemble predict`` caches them, on a labelled ``valid.csv`` (``id``, ``text``, ``summary``)
    and a ``test.csv``. The first member keeps most words.

    Returns (members {name: folder}, data {split: path}, cache_dir)."""
    from ensemble.core.outputs import Texts
    from ensemble.data.splits import load_split

    rng = np.random.default_rng(seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    data = {"valid": root / "data" / "valid.csv", "test": root / "data" / "test.csv"}
    refs = {}
    for split, n in (("valid", valid_rows), ("test", test_rows)):
        refs[split] = draw_summaries(n, rng)
        frame = pd.DataFrame({"id": [f"{split[0]}{i}" for i in range(n)],
                              "text": [f"dialogue about {r}" for r in refs[split]]})
        if split == "valid":
            frame["summary"] = refs[split]
        frame.to_csv(data[split], index=False)
    cache_dir = root / ".ensemble" / "cache"
    members = {}
    for m, keep in enumerate(np.linspace(0.8, 0.5, models)):
        folder = root / "models" / f"m{m}"
        _generation_folder(folder, rng)
        for split in data:
            texts = [[noisy_summary(r, keep, rng) for _ in range(candidates)] for r in refs[split]]
            ids = np.array([f"{split[0]}{i}" for i in range(len(texts))], dtype=object)
            out = Texts(ids, texts, -rng.random(len(texts) * candidates).astype(np.float32), None, f"m{m}", split)
            cache_texts_split(folder, f"m{m}", out, load_split(data[split], name=split,
                                                                label={"valid": "summary"}.get(split)), cache_dir)
        members[f"m{m}"] = folder
    return members, data, cache_dir


def _generation_folder(folder: Path, rng) -> None:
    """A sequence-to-sequence folder: a BART config, weights, a generation config and a fast
    tokenizer."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["BartForConditionalGeneration"],
                                                    "model_type": "bart", "is_encoder_decoder": True}))
    (folder / "generation_config.json").write_text(json.dumps({"num_beams": 2, "max_length": 16}))
    save_file({"lm_head.weight": rng.normal(size=(8, 4)).astype(np.float32)}, folder / "model.safetensors")
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>", *SUMMARY_WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                             "unk_token": "<unk>", "pad_token": "<pad>"}))


def cache_texts_split(folder: Path, name: str, out, split, cache_dir: Path) -> None:
    """One split's candidates in the cache: the inference settings and the generation forward's
    own (its settings and the generation config's digest) in the entry, as the session writes them."""
    from ensemble.inference.cache import OutputCache
    from ensemble.inference.forwards import GenerationForward, entry_settings, open_model
    from ensemble.inference.settings import InferenceSettings, recorded_settings

    cache = OutputCache(cache_dir)
    ref = open_model(folder, "generation", name)
    digest = ref.fingerprint(cache.file_digest)
    settings = {**recorded_settings(ref, InferenceSettings()),
                **entry_settings(GenerationForward(), folder, cache.file_digest)}
    cache.put(cache.make_key({"model": digest, "data": split.digest, "settings": settings}), out,
              {"model_digest": digest, "data_digest": split.digest, "settings": settings})


ENTITY_TAGS = ("O", "B-LC", "I-LC", "B-PS", "I-PS")


def draw_entities(n: int, rng, *, words: tuple[int, int] = (3, 8)) -> tuple[list[str], list[list[tuple]]]:
    """``n`` texts of lowercase words and their gold spans: each word an entity with probability
    0.3, of a random type (LC or PS), the span its characters."""
    texts, gold = [], []
    for _ in range(n):
        parts, spans, at = [], [], 0
        for _ in range(rng.integers(*words)):
            w = "".join(rng.choice(list("abcdefghij"), size=rng.integers(2, 6)))
            if rng.random() < 0.3:
                spans.append((at, at + len(w), str(rng.choice(["LC", "PS"]))))
            parts.append(w)
            at += len(w) + 1
        texts.append(" ".join(parts))
        gold.append(spans)
    return texts, gold


def entity_probabilities(texts, gold, strength: float, rng, shared: list, tags=ENTITY_TAGS) -> list[np.ndarray]:
    """One member's per-character tag probabilities (a softmax of ``strength`` on the true tag
    plus noise, partly ``shared`` between members), in ``tags`` order; a space is all zeros, as
    the cache holds a character no token covers."""
    from ensemble.tasks.entities.spans import tags_from_spans

    index = {t: j for j, t in enumerate(tags)}
    out = []
    for text, spans, common in zip(texts, gold, shared):
        z = np.sqrt(RHO) * common + np.sqrt(1 - RHO) * rng.normal(size=common.shape)
        for c, t in enumerate(tags_from_spans(spans, len(text))):
            z[c, index[t]] += strength
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[[c for c, ch in enumerate(text) if ch == " "]] = 0.0
        out.append(p.astype(np.float32))
    return out


def make_entity_members(root: Path, *, valid_rows: int, test_rows: int, models: int, seed: int = 0):
    """Fake token-classification folders (the last with its tags in another order) and their
    per-character tag probabilities cached as ``ensemble predict`` caches them, on a labelled
    ``valid.csv`` (``id``, ``text``, ``entities`` as JSON spans) and a ``test.csv``.

    Returns (members {name: folder}, data {split: path}, cache_dir)."""
    from ensemble.core.outputs import Ragged

    rng = np.random.default_rng(seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    data = {"valid": root / "data" / "valid.csv", "test": root / "data" / "test.csv"}
    drawn = {}
    for split, n in (("valid", valid_rows), ("test", test_rows)):
        texts, gold = draw_entities(n, rng)
        frame = pd.DataFrame({"id": [f"{split[0]}{i}" for i in range(n)], "text": texts})
        if split == "valid":
            frame["entities"] = [json.dumps([list(s) for s in g]) for g in gold]
        frame.to_csv(data[split], index=False)
        drawn[split] = (frame["id"].to_numpy(), texts, gold, [rng.normal(size=(len(t), len(ENTITY_TAGS))) for t in texts])
    cache_dir = root / ".ensemble" / "cache"
    members = {}
    for m, strength in enumerate(np.linspace(2.5, 1.5, models)):
        tags = ENTITY_TAGS if m < models - 1 else tuple(reversed(ENTITY_TAGS))
        folder = root / "models" / f"m{m}"
        _token_folder(folder, tags, rng)
        outputs = {}
        for split, (ids, texts, gold, shared) in drawn.items():
            p = entity_probabilities(texts, gold, strength, rng, shared)
            order = [ENTITY_TAGS.index(t) for t in tags]
            offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])])
            outputs[split] = Ragged(ids, np.concatenate(p)[:, order], offsets, tags, f"m{m}", split)
        cache_ragged(folder, f"m{m}", outputs, data, cache_dir)
        members[f"m{m}"] = folder
    return members, data, cache_dir


def _token_folder(folder: Path, tags, rng) -> None:
    """A token-classification folder: config (id2label ``tags``), a head in safetensors and a
    fast tokenizer (``tokenizer.json``), which the token forward asks for."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["BertForTokenClassification"], "model_type": "bert",
        "id2label": {str(i): t for i, t in enumerate(tags)}, "label2id": {t: i for i, t in enumerate(tags)}}))
    save_file({"classifier.weight": rng.normal(size=(len(tags), 4)).astype(np.float32),
               "classifier.bias": np.zeros(len(tags), dtype=np.float32)}, folder / "model.safetensors")
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *"abcdefghij"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                             "unk_token": "[UNK]", "pad_token": "[PAD]"}))


def cache_ragged(folder: Path, name: str, outputs: dict, data: dict, cache_dir: Path) -> None:
    """A token member's per-character outputs {split: Ragged} on the files ``data`` {split: path}
    put in the cache as ``ensemble predict`` puts them (:func:`cache_ragged_split`)."""
    from ensemble.data.splits import load_split

    for split_name, rg in outputs.items():
        split = load_split(data[split_name], name=split_name, label={"valid": "entities"}.get(split_name))
        cache_ragged_split(folder, name, rg, split, cache_dir)


def cache_ragged_split(folder: Path, name: str, rg, split, cache_dir: Path) -> None:
    """One split's (a :class:`~ensemble.data.splits.Split`, a fold's rows too) per-character
    outputs in the cache: the inference settings and the token forward's own in the entry."""
    from ensemble.inference.cache import OutputCache
    from ensemble.inference.forwards import TokenForward, open_model
    from ensemble.inference.settings import InferenceSettings, recorded_settings

    cache = OutputCache(cache_dir)
    ref = open_model(folder, "tokens", name)
    digest = ref.fingerprint(cache.file_digest)
    settings = {**recorded_settings(ref, InferenceSettings()), **TokenForward().key_settings()}
    cache.put(cache.make_key({"model": digest, "data": split.digest, "forward": "tokens"}), rg,
              {"model_digest": digest, "data_digest": split.digest, "settings": settings})


def make_entity_fold_members(root: Path, *, train_rows: int = 150, test_rows: int = 30, k: int = 3,
                             groups: int = 2, seed: int = 0):
    """Fold groups of fake token classifiers (``runs/g<i>-fold<k>``: fold model k's outputs
    cached on the training rows of fold k and on the test rows) and a full-data refit of the first
    (``runs/g0-full``, cached on the test rows), with ``data/train.csv`` (labelled),
    ``data/test.csv`` and ``data/folds.csv``.

    Returns (groups {name: path with {fold}}, refit folder, data {split: path}, folds path,
    cache_dir)."""
    from ensemble.core.outputs import Ragged
    from ensemble.data.splits import load_split
    from ensemble.workflows.foldgroups import held_out, open_training_folds

    rng = np.random.default_rng(seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    data = {"train": root / "data" / "train.csv", "test": root / "data" / "test.csv"}
    train_texts, train_gold = draw_entities(train_rows, rng)
    test_texts, test_gold = draw_entities(test_rows, rng)
    pd.DataFrame({"id": [f"r{i}" for i in range(train_rows)], "text": train_texts,
                  "entities": [json.dumps([list(s) for s in g]) for g in train_gold]}).to_csv(data["train"], index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(test_rows)], "text": test_texts}).to_csv(data["test"], index=False)
    folds = root / "data" / "folds.csv"
    pd.DataFrame({"id": [f"r{i}" for i in range(train_rows)], "fold": np.arange(train_rows) % k}).to_csv(folds,
                                                                                                      index=False)
    train = load_split(data["train"], name="train", label="entities")
    test = load_split(data["test"], name="test")
    training = open_training_folds(train, folds)
    shared = {"train": [rng.normal(size=(len(t), len(ENTITY_TAGS))) for t in train_texts],
              "test": [rng.normal(size=(len(t), len(ENTITY_TAGS))) for t in test_texts]}
    cache_dir = root / ".ensemble" / "cache"

    def ragged(texts, gold, common, ids, strength, name, split):
        p = entity_probabilities(texts, gold, strength, rng, common)
        offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])])
        return Ragged(np.asarray(ids), np.concatenate(p), offsets, ENTITY_TAGS, name, split)

    made = {}
    for g, strength in enumerate(np.linspace(2.5, 1.5, groups)):
        for f in range(k):
            folder = root / "runs" / f"g{g}-fold{f}"
            _token_folder(folder, ENTITY_TAGS, rng)
            rows = training.rows(f)
            part = held_out(training, f)
            cache_ragged_split(folder, f"g{g}-fold{f}", ragged([train_texts[r] for r in rows], [train_gold[r] for r in rows],
                                                               [shared["train"][r] for r in rows], part.ids, strength,
                                                               f"g{g}-fold{f}", part.name), part, cache_dir)
            cache_ragged_split(folder, f"g{g}-fold{f}", ragged(test_texts, test_gold, shared["test"], test.ids, strength,
                                                               f"g{g}-fold{f}", "test"), test, cache_dir)
        made[f"g{g}"] = str(root / "runs" / f"g{g}-fold{{fold}}")
    refit = root / "runs" / "g0-full"
    _token_folder(refit, ENTITY_TAGS, rng)
    cache_ragged_split(refit, "g0-full", ragged(test_texts, test_gold, shared["test"], test.ids, 3.0, "g0-full", "test"),
                       test, cache_dir)
    return made, refit, data, folds, cache_dir


def make_summary_fold_members(root: Path, *, train_rows: int = 90, test_rows: int = 20, k: int = 3, groups: int = 2,
                              seed: int = 0):
    """Fold groups of fake generation members (``runs/g<i>-fold<k>``: fold model k's candidates
    cached on the training rows of fold k and on the test rows) and a full-data refit of the first
    (``runs/g0-full``, cached on the test rows), with ``data/train.csv`` (``id``, ``text``,
    ``summary``), ``data/test.csv`` and ``data/folds.csv``.

    Returns (groups {name: path with {fold}}, refit folder, data {split: path}, folds path,
    cache_dir)."""
    from ensemble.core.outputs import Texts
    from ensemble.data.splits import load_split
    from ensemble.workflows.foldgroups import held_out, open_training_folds

    rng = np.random.default_rng(seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    data = {"train": root / "data" / "train.csv", "test": root / "data" / "test.csv"}
    refs = {"train": draw_summaries(train_rows, rng), "test": draw_summaries(test_rows, rng)}
    pd.DataFrame({"id": [f"r{i}" for i in range(train_rows)], "text": [f"about {r}" for r in refs["train"]],
                  "summary": refs["train"]}).to_csv(data["train"], index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(test_rows)], "text": [f"about {r}" for r in refs["test"]]}).to_csv(
        data["test"], index=False)
    folds = root / "data" / "folds.csv"
    pd.DataFrame({"id": [f"r{i}" for i in range(train_rows)], "fold": np.arange(train_rows) % k}).to_csv(folds,
                                                                                                      index=False)
    train = load_split(data["train"], name="train", label="summary")
    test = load_split(data["test"], name="test")
    training = open_training_folds(train, folds)
    cache_dir = root / ".ensemble" / "cache"

    def texts(split, references, keep, name):
        rows = [[noisy_summary(r, keep, rng) for _ in range(2)] for r in references]
        return Texts(np.asarray(split.ids), rows, -rng.random(2 * len(rows)).astype(np.float32), None, name,
                     split.name)

    made = {}
    for g, keep in enumerate(np.linspace(0.8, 0.5, groups)):
        for f in range(k):
            name, folder = f"g{g}-fold{f}", root / "runs" / f"g{g}-fold{f}"
            _generation_folder(folder, rng)
            part = held_out(training, f)
            cache_texts_split(folder, name, texts(part, [refs["train"][r] for r in training.rows(f)], keep, name),
                              part, cache_dir)
            cache_texts_split(folder, name, texts(test, refs["test"], keep, name), test, cache_dir)
        made[f"g{g}"] = str(root / "runs" / f"g{g}-fold{{fold}}")
    refit = root / "runs" / "g0-full"
    _generation_folder(refit, rng)
    cache_texts_split(refit, "g0-full", texts(test, refs["test"], 0.9, "g0-full"), test, cache_dir)
    return made, refit, data, folds, cache_dir
