"""Fixtures of the entities task: the KLUE-NER slice, two tokenizers with different vocabularies,
and tiny token classifiers trained on the slice with the real ``Trainer``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from ensemble.tasks.entities.klue import read_klue_ner
from ensemble.tasks.entities.spans import tags_from_spans

from ...zoo import train_tag_tokenizers, train_tagger

SLICE = Path(__file__).resolve().parents[2] / "data" / "klue-ner" / "klue-ner-v1.1_dev_first300.tsv"
TAGS = ["O"] + [f"{p}-{t}" for t in ("PS", "LC", "OG", "DT", "TI", "QT") for p in "BI"]
N_TRAIN = 240


@pytest.fixture(scope="session")
def klue():
    return read_klue_ner(SLICE)


@pytest.fixture(scope="session")
def tokenizers(klue):
    return train_tag_tokenizers(list(klue["text"]))


@dataclass
class Taggers:
    """Members trained on the slice's first 240 sentences; ``valid``: the other 60 as a data file
    (``id``, ``text``), ``texts`` and ``gold`` their spans."""

    members: dict
    valid: Path
    texts: list
    gold: list


@pytest.fixture(scope="session")
def taggers(klue, tokenizers, tmp_path_factory) -> Taggers:
    """``chars`` and ``pieces`` (the two tokenizers), and ``pieces-reordered``: trained with its
    tags in another order (types last-first, I- before B-)."""
    root = tmp_path_factory.mktemp("taggers")
    texts = list(klue["text"])
    char_tags = [tags_from_spans([tuple(e) for e in ents], len(t)) for t, ents in zip(texts, klue["entities"])]
    reordered = ["O"] + [f"{p}-{t}" for t in ("QT", "TI", "DT", "OG", "LC", "PS") for p in "IB"]
    members = {}
    for name, tok, tags, seed in (("chars", "chars", TAGS, 0), ("pieces", "pieces", TAGS, 0),
                                  ("pieces-reordered", "pieces", reordered, 1)):
        train_tagger(root / name, tokenizers[tok], texts[:N_TRAIN], char_tags[:N_TRAIN], tags, steps=100,
                     max_steps=200, seed=seed)
        members[name] = root / name / "run" / "checkpoint-200"
    valid = root / "valid.csv"
    pd.DataFrame({"id": [f"klue-{i}" for i in range(N_TRAIN, len(texts))], "text": texts[N_TRAIN:]}).to_csv(valid,
                                                                                                           index=False)
    gold = [[tuple(e) for e in ents] for ents in klue["entities"][N_TRAIN:]]
    return Taggers(members, valid, texts[N_TRAIN:], gold)
