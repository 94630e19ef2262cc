"""Tiny real ``Trainer`` runs of token-classification heads, and the example that ``ensemble
example --task ner`` writes with them: Korean-looking sentences with people, places,
organisations and dates, two tokenizers with different vocabularies (single characters, and
WordPiece pieces trained on the texts), one run with its tags in another order.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["train_tag_tokenizers", "train_tagger", "ner_task", "make_entities_example"]

_TINY = dict(num_hidden_layers=2, num_attention_heads=4)


def train_tag_tokenizers(texts: Sequence[str]) -> dict:
    """Two fast tokenizers with different vocabularies over ``texts``: ``chars`` (WordPiece over
    single characters and their ``##`` continuations) and ``pieces`` (WordPiece pieces of several
    characters trained on the texts), both adding [CLS] and [SEP]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]"]
    chars = sorted({c for t in texts for c in t if not c.isspace()})
    by_char = Tokenizer(models.WordPiece({w: i for i, w in enumerate([*specials, *chars, *("##" + c for c in chars)])},
                                         unk_token="[UNK]"))
    pieces = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    pieces.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=8000, special_tokens=specials))
    learned = pieces.get_vocab()  # renumbered in a fixed order (the trainer numbers in hash order)
    order = [*specials, *sorted(t for t in learned if t not in specials)]
    pieces.model = models.WordPiece(vocab={t: i for i, t in enumerate(order)}, unk_token="[UNK]")
    out = {}
    for name, tok in (("chars", by_char), ("pieces", pieces)):
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
        out[name] = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                            cls_token="[CLS]", sep_token="[SEP]")
    return out


def train_tagger(out_dir: str | os.PathLike, tokenizer, texts: Sequence[str], char_tags: Sequence[Sequence[str]],
                 tags: Sequence[str], *, steps: int = 10, max_steps: int = 30, seed: int = 0, lr: float = 3e-3,
                 hidden: int = 32, eval_texts: Sequence[str] | None = None,
                 eval_tags: Sequence[Sequence[str]] | None = None):
    """A tiny ``BertForTokenClassification`` trained with the real ``Trainer`` on texts tagged by
    character (each token labelled with its first character's tag, specials -100), its tags in
    the order ``tags`` (``id2label``), evaluated (on ``eval_texts``, else a quarter of the
    training rows) and saved every ``steps`` steps in ``out_dir/checkpoint-N``. Returns the
    ``Trainer``."""
    import torch
    from transformers import (BertConfig, BertForTokenClassification, DataCollatorForTokenClassification,
                              PrinterCallback, Trainer, TrainingArguments)

    from ensemble.cli.example import threads_for

    index = {t: i for i, t in enumerate(tags)}

    def rows(texts, char_tags):
        out = []
        for text, ct in zip(texts, char_tags):
            enc = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=128)
            labels = [index[ct[a]] if b > a else -100 for a, b in enc.pop("offset_mapping")]
            out.append({**{k: list(v) for k, v in enc.items()}, "labels": labels})
        return out

    train = rows(texts, char_tags)
    held = rows(eval_texts, eval_tags) if eval_texts is not None else train[: max(1, len(train) // 4)]
    config = BertConfig(vocab_size=len(tokenizer), num_labels=len(tags), id2label=dict(enumerate(tags)),
                        label2id=dict(index), max_position_embeddings=128,
                        **dict(_TINY, hidden_size=hidden, intermediate_size=2 * hidden))
    torch.manual_seed(seed)
    model = BertForTokenClassification(config)
    args = TrainingArguments(output_dir=str(out_dir), per_device_train_batch_size=16, max_steps=max_steps,
                             learning_rate=lr, eval_strategy="steps", save_strategy="steps", eval_steps=steps,
                             save_steps=steps, logging_steps=steps, report_to="none", use_cpu=True, disable_tqdm=True,
                             seed=seed)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=held,
                      data_collator=DataCollatorForTokenClassification(tokenizer), processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    with threads_for(trainer.model):
        trainer.train()
    return trainer


# ---------------------------------------------------------------------- the example's data

_NAMES = {"PS": ("김민수", "이서연", "박지훈", "최유진", "정하늘", "강도윤", "조수아", "윤서준", "장예린", "임태현",
                 "한지민", "오세훈", "신유나", "송민호", "배수지", "홍길동"),
          "LC": ("서울", "부산", "대구", "인천", "광주", "대전", "울산", "제주", "수원", "강릉", "전주", "포항",
                 "춘천", "여수", "목포", "안동"),
          "OG": ("삼성전자", "한국은행", "서울대", "카카오", "네이버", "국회", "기상청", "현대차", "엘지화학",
                 "대한항공", "고려대", "경찰청", "통계청", "쿠팡"),
          "DT": ("어제", "오늘", "내일", "지난주", "3월 2일", "2024년", "올해", "작년", "다음 달", "5월 8일",
                 "주말", "1월 1일")}
_TEMPLATES = ("{PS} 씨는 {DT} {LC}에서 {OG} 사람들을 만났다", "{OG}는 {LC}에 새 사무실을 열었다고 {PS} 씨가 말했다",
              "{DT} {LC} 날씨는 맑겠다", "{PS} 씨는 {OG}에서 일한다", "{LC}와 {LC} 사이 길이 막혔다",
              "{OG} 발표에 따르면 {DT}부터 바뀐다", "{PS} 씨의 고향은 {LC}이다", "그는 조용히 책을 읽었다",
              "{DT} {PS} 씨와 {PS} 씨가 {OG} 앞에서 만났다", "우리는 {LC}까지 기차를 탔다")
TYPES = ("PS", "LC", "OG", "DT")


def ner_task(n: int, *, seed: int = 0, seen: bool = False) -> tuple[list[str], list[list[list]]]:
    """``n`` sentences from templates and each one's entities ``[start, end, type]`` (end
    exclusive), a template's slots filled at random: with ``seen``, from the first 60% of each
    type's names (the training rows'), else from all of them, so that the other rows hold names
    the runs never saw and only their context says what they are."""
    rng = np.random.default_rng(seed)
    names = {k: v[: int(0.6 * len(v))] if seen else v for k, v in _NAMES.items()}
    texts, spans = [], []
    for _ in range(n):
        template = str(rng.choice(_TEMPLATES))
        text, found, at = "", [], 0
        while "{" in template[at:]:
            a = template.index("{", at)
            b = template.index("}", a)
            kind = template[a + 1:b]
            name = str(rng.choice(names[kind]))
            text += template[at:a]
            found.append([len(text), len(text) + len(name), kind])
            text += name
            at = b + 1
        texts.append(text + template[at:])
        spans.append(found)
    return texts, spans


def _char_tags(spans, n: int) -> list[str]:
    """The training tags of a template sentence's characters: ``B-``/``I-`` over each entity the
    template placed (never overlapping), ``O`` elsewhere."""
    tags = ["O"] * n
    for a, b, kind in spans:
        tags[a:b] = [f"B-{kind}"] + [f"I-{kind}"] * (b - a - 1)
    return tags


_PROJECT = """\
# Made by `ensemble example --task ner`: token classifiers over two tokenizers, averaged on characters.
[data]
task = "entities"
valid = "data/valid.csv"
test = "data/test.csv"
sample_submission = "data/sample_submission.csv"
id = "id"
text = "text"
label = "entities"   # each row's gold spans: [[start, end, "TYPE"], ...], end exclusive

# Trainer runs that `ensemble run` averages into weights/<name>-top<k> (best k by eval_loss)
[runs]
tag-chars = { path = "runs/tag-chars", k = 2, metric = "loss" }     # one token per character
tag-pieces = { path = "runs/tag-pieces", k = 2, metric = "loss" }   # WordPiece pieces of several characters
tag-reordered = { path = "runs/tag-reordered", k = 2, metric = "loss" }   # pieces, its tags in another order

[vote]
weights = "auto"   # a fitted rule only when its cross-validated gain over uniform is sure
metric = "f1"      # entity F1 (exact span and type); "f5" weighs recall as PII Data Detection does
"""


def make_entities_example(folder: str | os.PathLike, *, seed: int = 0, progress: bool = False,
                          folds: int | None = None) -> Path:
    """``ensemble example --task ner``: data (``train``, ``valid``, ``test``, a sample
    submission), three tiny token-classification runs over two tokenizers (one with its tags in
    another order) and ``ensemble.toml``."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ensemble.cli.example import new_example_folder

    folder, data = new_example_folder(folder, folds, "ner")
    (train, yt), (valid, yv), (test, _) = (ner_task(400, seed=seed, seen=True), ner_task(150, seed=seed + 1),
                                           ner_task(100, seed=seed + 2))
    held, yh = ner_task(60, seed=seed + 3)  # the runs rank their checkpoints here, never on valid.csv
    cells = lambda spans: [json.dumps(s, ensure_ascii=False) for s in spans]  # noqa: E731
    pd.DataFrame({"id": [f"tr{i}" for i in range(len(train))], "text": train, "entities": cells(yt)}).to_csv(
        data / "train.csv", index=False)
    pd.DataFrame({"id": [f"va{i}" for i in range(len(valid))], "text": valid, "entities": cells(yv)}).to_csv(
        data / "valid.csv", index=False)
    pd.DataFrame({"id": [f"te{i}" for i in range(len(test))], "text": test}).to_csv(data / "test.csv", index=False)
    pd.DataFrame({"id": [f"te{i}" for i in range(len(test))], "entities": "[]"}).to_csv(
        data / "sample_submission.csv", index=False)
    tokenizers = train_tag_tokenizers(train)
    tags = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]
    reordered = ["O"] + [f"{p}-{t}" for t in TYPES[::-1] for p in "IB"]
    char_tags = [_char_tags(spans, len(t)) for t, spans in zip(train, yt)]
    eval_tags = [_char_tags(spans, len(t)) for t, spans in zip(held, yh)]
    runs = [("tag-chars", "chars", tags, seed), ("tag-pieces", "pieces", tags, seed + 1),
            ("tag-reordered", "pieces", reordered, seed + 2)]
    with tqdm(total=len(runs), desc="training", unit="run", disable=not progress, leave=False) as bar:
        for name, tok, order, s in runs:
            log.info("training runs/%s", name)
            train_tagger(folder / "runs" / name, tokenizers[tok], train, char_tags, order, steps=30, max_steps=150,
                         seed=s, eval_texts=held, eval_tags=eval_tags)
            bar.update(1)
    (folder / "ensemble.toml").write_text(_PROJECT, encoding="utf-8")
    log.info("example written (data, three Trainer runs, ensemble.toml); next: cd into it and ensemble run")
    return folder
