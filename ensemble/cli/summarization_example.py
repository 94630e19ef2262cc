"""Tiny real ``Seq2SeqTrainer`` runs of sequence-to-sequence models, and the example that
``ensemble example --task summarization`` writes with them: short Korean-looking daily dialogues
(``#Person1#: ...`` turns, as in AI Stages' dialogue summarization) and their one-sentence
summaries, two tokenizers with different vocabularies (single characters with the speaker tags
whole, and Unigram pieces trained on the texts), a tiny BART and a tiny T5.
"""

from __future__ import annotations

import collections
import inspect
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["train_summary_tokenizers", "train_summarizer", "rouge1", "dialogue_task", "make_summarization_example"]

SPEAKERS = ("#Person1#", "#Person2#")


# ---------------------------------------------------------------------- tokenizers

def train_summary_tokenizers(texts: Sequence[str]) -> dict:
    """Two fast tokenizers with different vocabularies over ``texts``, each decoding back to the
    text it encoded (spaces and punctuation as they were).

    Parameters
    ----------
    texts : sequence of str
        The texts whose characters (``chars``) or pieces (``pieces``) make the vocabularies.

    Returns
    -------
    dict
        ``chars``: BART's special tokens (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3), the
        speaker tags whole, then WordPiece over single characters and their ``##`` continuations,
        every text as ``<s> ... </s>``. ``pieces``: T5's special tokens (``<pad>`` 0, ``</s>``
        1, ``<unk>`` 2) and Unigram pieces trained on the texts (``▁`` marking a word's start),
        every text as ``... </s>``. Both ``PreTrainedTokenizerFast``.
    """
    import json

    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    chars = sorted({c for t in texts for c in t if not c.isspace()})
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    by_char = Tokenizer(models.WordPiece({w: i for i, w in enumerate([*specials, *SPEAKERS, *chars,
                                                                         *("##" + c for c in chars)])},
                                         unk_token="<unk>", max_input_chars_per_word=200))
    by_char.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    by_char.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    by_char.post_processor = processors.TemplateProcessing(single="<s> $A </s>",
                                                           special_tokens=[("<s>", 0), ("</s>", 2)])
    pieces = Tokenizer(models.Unigram())
    pieces.normalizer = normalizers.Replace(Regex(r"\s+"), " ")
    pieces.pre_tokenizer = pre_tokenizers.Metaspace()
    pieces.decoder = decoders.Metaspace()
    pieces.train_from_iterator(list(texts), trainers.UnigramTrainer(
        vocab_size=1000, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", max_piece_length=16))
    learned = json.loads(pieces.to_str())["model"]["vocab"]  # renumbered in a fixed order, ties by name
    order = learned[:3] + sorted(learned[3:], key=lambda p: (-p[1], p[0]))
    pieces.model = models.Unigram([tuple(p) for p in order], unk_id=2, byte_fallback=False)
    pieces.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return {"chars": PreTrainedTokenizerFast(tokenizer_object=by_char, bos_token="<s>", eos_token="</s>",
                                             pad_token="<pad>", unk_token="<unk>", model_max_length=192),
            "pieces": PreTrainedTokenizerFast(tokenizer_object=pieces, eos_token="</s>", pad_token="<pad>",
                                              unk_token="<unk>", model_max_length=192)}


# ---------------------------------------------------------------------- training

def rouge1(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The mean ROUGE-1 F1 of ``predictions`` against ``references`` over whitespace tokens (the
    AI Stages baseline's metric, without its morpheme analyser): the unigrams both hold, counted
    with their multiplicity."""
    scores = []
    for pred, ref in zip(predictions, references):
        p, r = collections.Counter(pred.split()), collections.Counter(ref.split())
        both = sum((p & r).values())
        scores.append(0.0 if not both else 2 * both / (sum(p.values()) + sum(r.values())))
    return float(np.mean(scores)) if scores else 0.0


def _model(kind: str, tokenizer, max_length: int, seed: int):
    """A randomly initialised tiny ``bart`` or ``t5`` (d_model 32) over ``tokenizer``'s ids, its
    generation config the AI Stages baseline's (beam search, no repeated bigram, a length limit)."""
    import torch
    from transformers import (BartConfig, BartForConditionalGeneration, GenerationConfig, T5Config,
                              T5ForConditionalGeneration)

    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if kind == "bart":
        ids = dict(pad_token_id=pad, bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                   decoder_start_token_id=eos)
        config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
                            encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                            decoder_ffn_dim=64, max_position_embeddings=192, **ids)
        build = BartForConditionalGeneration
    else:
        ids = dict(pad_token_id=pad, eos_token_id=eos, decoder_start_token_id=pad)
        config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
                          num_heads=4, relative_attention_num_buckets=16, **ids)
        build = T5ForConditionalGeneration
    torch.manual_seed(seed)
    model = build(config)
    model.generation_config = GenerationConfig(num_beams=2, max_length=max_length, no_repeat_ngram_size=2,
                                               forced_eos_token_id=eos, **ids)
    return model


def train_summarizer(out_dir: str | os.PathLike, kind: str, tokenizer, sources: Sequence[str],
                     targets: Sequence[str], eval_sources: Sequence[str], eval_targets: Sequence[str], *,
                     steps: int = 60, max_steps: int = 240, seed: int = 0, lr: float = 1e-2):
    """A tiny ``bart`` or ``t5`` trained with the real ``Seq2SeqTrainer`` on ``(sources,
    targets)``, evaluated on ``(eval_sources, eval_targets)`` (loss, and ROUGE-1 of greedy
    generations) and saved every ``steps`` steps in ``out_dir/checkpoint-N``, with its tokenizer
    and generation config. Returns the ``Trainer``.

    Parameters
    ----------
    out_dir : path
        The run's folder (its ``output_dir``).
    kind : {"bart", "t5"}
        The architecture.
    tokenizer : PreTrainedTokenizerFast
        One of :func:`train_summary_tokenizers`' tokenizers.
    sources, targets, eval_sources, eval_targets : sequence of str
        Dialogues and their summaries, to train on and to rank the checkpoints on.
    steps, max_steps, seed, lr : int, int, int, float
        Evaluation and saving interval, training length, seed and learning rate.
    """
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Seq2SeqTrainer, Seq2SeqTrainingArguments

    from ensemble.cli.example import threads_for

    def rows(src, tgt):
        return [{"input_ids": tokenizer(s, truncation=True, max_length=192)["input_ids"],
                 "labels": tokenizer(t, truncation=True, max_length=64)["input_ids"]} for s, t in zip(src, tgt)]

    train, held = rows(sources, targets), rows(eval_sources, eval_targets)
    model = _model(kind, tokenizer, max(len(r["labels"]) for r in train) + 4, seed)

    def compute_metrics(pred):
        predictions, labels = (np.where(np.asarray(a) < 0, tokenizer.pad_token_id, a)  # -100: padding
                               for a in (pred.predictions, pred.label_ids))
        decode = lambda ids: tokenizer.batch_decode(ids, skip_special_tokens=True)  # noqa: E731
        return {"rouge1": rouge1(decode(predictions), decode(labels))}

    args = Seq2SeqTrainingArguments(output_dir=str(out_dir), per_device_train_batch_size=16,
                                    per_device_eval_batch_size=64, max_steps=max_steps, learning_rate=lr,
                                    eval_strategy="steps", save_strategy="steps", eval_steps=steps, save_steps=steps,
                                    logging_steps=steps, predict_with_generate=True, generation_num_beams=1,
                                    report_to="none", use_cpu=True, disable_tqdm=True, seed=seed)
    # transformers >= 4.46 takes the tokenizer as processing_class, older ones as tokenizer
    key = "processing_class" if "processing_class" in inspect.signature(Seq2SeqTrainer.__init__).parameters \
        else "tokenizer"
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=train, eval_dataset=held,
                             data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
                             compute_metrics=compute_metrics, **{key: tokenizer})
    trainer.remove_callback(PrinterCallback)
    with threads_for(trainer.model):
        trainer.train()
    return trainer


# ---------------------------------------------------------------------- the example's data

_SLOTS = {"P": ("시장", "도서관", "공원", "병원", "은행", "영화관", "카페", "식당", "학교", "백화점", "우체국",
                "수영장", "박물관", "미용실", "약국", "편의점"),
          "I": ("사과", "우유", "책", "우산", "신발", "모자", "빵", "커피", "가방", "시계", "꽃", "케이크", "안경",
                "김치", "라면", "바지"),
          "T": ("내일", "오늘 저녁", "주말", "다음 주", "금요일", "월요일 아침", "토요일", "오후", "모레", "일요일"),
          "N": ("민수", "서연", "지훈", "유진", "하늘", "도윤", "수아", "서준", "예린", "태현", "지민", "세훈")}

# (dialogue, summary): {P}, {I}, {T}, {N} are filled (the same value everywhere in a row, {Q} a
# second place); {x|a|b} is a particle, a after a closed syllable (batchim) of x's value, else b
_TEMPLATES = (
    ("#Person1#: {T} {P}에 같이 갈래요?\n#Person2#: 좋아요. 뭐 사려고요?\n#Person1#: {I}{I|을|를} 사려고요.\n"
     "#Person2#: 그럼 {T} 만나요.", "#Person1#은 #Person2#에게 {T} {P}에서 {I}{I|을|를} 사자고 한다."),
    ("#Person1#: {I}{I|을|를} 잃어버렸어요.\n#Person2#: 어디서요?\n#Person1#: {P}에서요.\n#Person2#: 같이 찾아봐요.",
     "#Person1#은 {P}에서 {I}{I|을|를} 잃어버렸고 #Person2#가 같이 찾아 주기로 한다."),
    ("#Person1#: {T} 뭐 해요?\n#Person2#: {N}{N|과|와} {P}에 가요.\n#Person1#: 재미있겠네요.\n#Person2#: 같이 갈래요?",
     "#Person2#는 {T} {N}{N|과|와} {P}에 간다."),
    ("#Person1#: {N}의 생일이 {T}{T|이에요|예요}.\n#Person2#: 선물은 샀어요?\n#Person1#: 아직요. {I}{I|이|가} 좋을까요?\n"
     "#Person2#: 좋아요. {P}에 가 봐요.", "#Person1#은 {N}의 생일 선물로 {I}{I|을|를} 사러 {P}에 간다."),
    ("#Person1#: 이 {I} 얼마예요?\n#Person2#: 만 원이에요.\n#Person1#: 조금 비싸네요.\n#Person2#: {T}까지 할인해 드릴게요.",
     "#Person2#는 #Person1#에게 {I}{I|을|를} {T}까지 할인해 준다."),
    ("#Person1#: 실례지만 {P}{P|이|가} 어디에 있어요?\n#Person2#: 저기 {Q} 옆에 있어요.\n#Person1#: 감사합니다.",
     "#Person1#은 #Person2#에게 {P}의 위치를 묻고 {P}{P|은|는} {Q} 옆에 있다."),
    ("#Person1#: 미안해요. {T} 약속을 못 지킬 것 같아요.\n#Person2#: 무슨 일 있어요?\n"
     "#Person1#: {N}{N|이|가} 아파서 {P}에 가야 해요.\n#Person2#: 괜찮아요. 다음에 봐요.",
     "#Person1#은 {N}{N|이|가} 아파서 {T} 약속을 취소한다."),
)


def _closed(word: str) -> bool:
    """Whether ``word`` ends in a Hangul syllable with a final consonant (batchim)."""
    code = ord(word[-1]) - 0xAC00
    return 0 <= code < 11172 and code % 28 != 0


def _fill(template: str, values: dict) -> str:
    """``template`` with its slots and particles filled from ``values``."""
    out, at = "", 0
    while "{" in template[at:]:
        a = template.index("{", at)
        b = template.index("}", a)
        slot, *particles = template[a + 1:b].split("|")
        out += template[at:a] + (values[slot] if not particles else particles[0 if _closed(values[slot]) else 1])
        at = b + 1
    return out + template[at:]


def dialogue_task(n: int, *, seed: int = 0, seen: bool = False) -> tuple[list[str], list[str]]:
    """``n`` dialogues from templates and their summaries, which name what the dialogue says
    (who goes where, buys or loses what, when, with whom), the slots filled at random: with
    ``seen``, from the first 60% of each slot's values (the training rows'), else from all of
    them, so that the other rows hold places, things and names the runs never saw."""
    rng = np.random.default_rng(seed)
    pools = {k: v[: int(0.6 * len(v))] if seen else v for k, v in _SLOTS.items()}
    dialogues, summaries = [], []
    for _ in range(n):
        dialogue, summary = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
        values = {k: str(rng.choice(v)) for k, v in pools.items()}
        values["Q"] = str(rng.choice([p for p in pools["P"] if p != values["P"]]))
        dialogues.append(_fill(dialogue, values))
        summaries.append(_fill(summary, values))
    return dialogues, summaries


_PROJECT = """\
# Made by `ensemble example --task summarization`: a tiny BART and a tiny T5 over two tokenizers.
[data]
task = "summarization"
valid = "data/valid.csv"
test = "data/test.csv"
sample_submission = "data/sample_submission.csv"
id = "fname"
quoting = "csv"   # dialogues span lines, quoted
text = "dialogue"
label = "summary"
rouge_tokenizer = "morphemes"   # ROUGE over morphemes, as AI Stages scores Korean summaries

# Seq2SeqTrainer runs that `ensemble run` averages into weights/<name>-top<k> (best k by eval_loss)
[runs]
bart-chars = { path = "runs/bart-chars", k = 2, metric = "loss" }     # one token per character
bart-chars-b = { path = "runs/bart-chars-b", k = 2, metric = "loss" } # the same, another seed
t5-pieces = { path = "runs/t5-pieces", k = 2, metric = "loss" }       # Unigram pieces trained on the texts

[vote]
weights = "auto"
"""


def make_summarization_example(folder: str | os.PathLike, *, seed: int = 0, progress: bool = False,
                               folds: int | None = None) -> Path:
    """``ensemble example --task summarization``: data (``train``, ``valid``, ``test``, a sample
    submission, with AI Stages' columns ``fname``, ``dialogue``, ``summary``), three tiny
    ``Seq2SeqTrainer`` runs over two tokenizers and ``ensemble.toml``.

    Parameters
    ----------
    folder : path
        A new or empty folder.
    seed : int
        The data's and the runs' seed.
    progress : bool
        A progress bar over the runs.
    folds : int, optional
        Refused: only the classification example has a K-fold form.

    Returns
    -------
    Path
        ``folder``.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from ensemble.cli.example import new_example_folder

    folder, data = new_example_folder(folder, folds, "summarization")
    (train, yt), (valid, yv), (test, _) = (dialogue_task(600, seed=seed, seen=True),
                                           dialogue_task(100, seed=seed + 1), dialogue_task(100, seed=seed + 2))
    held, yh = dialogue_task(32, seed=seed + 3)  # the runs rank their checkpoints here, never on valid.csv
    ids = lambda prefix, rows: [f"{prefix}_{i}" for i in range(len(rows))]  # noqa: E731
    pd.DataFrame({"fname": ids("train", train), "dialogue": train, "summary": yt}).to_csv(data / "train.csv",
                                                                                         index=False)
    pd.DataFrame({"fname": ids("dev", valid), "dialogue": valid, "summary": yv}).to_csv(data / "valid.csv",
                                                                                       index=False)
    pd.DataFrame({"fname": ids("test", test), "dialogue": test}).to_csv(data / "test.csv", index=False)
    pd.DataFrame({"fname": ids("test", test), "summary": ""}).to_csv(data / "sample_submission.csv", index=False)
    # made from every dialogue, as a pretrained tokenizer covers the language
    tokenizers = train_summary_tokenizers([*train, *yt, *valid, *test, *held])
    runs = [("bart-chars", "bart", "chars", seed), ("bart-chars-b", "bart", "chars", seed + 1),
            ("t5-pieces", "t5", "pieces", seed + 2)]
    with tqdm(total=len(runs), desc="training", unit="run", disable=not progress, leave=False) as bar:
        for name, kind, tok, s in runs:
            log.info("training runs/%s", name)
            train_summarizer(folder / "runs" / name, kind, tokenizers[tok], train, yt, held, yh, seed=s)
            bar.update(1)
    (folder / "ensemble.toml").write_text(_PROJECT, encoding="utf-8")
    log.info("example written (data, three Seq2SeqTrainer runs, ensemble.toml); next: cd into it and ensemble run")
    return folder
