"""Summarization (issue 36): what generating through this package costs, and what MBR costs.

1. Throughput. A BART built from a config (random weights: the cost does not depend on them)
   generates the same rows, with the same generation settings (greedy or beams, a fixed
   ``max_new_tokens``), through ``ModelSession`` (batches sorted by length, so that each batch pads
   to rows of its own length) and through ``Seq2SeqTrainer.predict`` with
   ``predict_with_generate`` (batches in row order, padded to their longest row), batch 16. The
   rows' lengths vary from a few tokens to a few hundred, as dialogues do. Rows per second of
   each and their ratio, in one run. Goal: at least 1.5x.
2. MBR. Selection over 500 rows x 5 members x 4 candidates (20 to 24 morphemes each): seconds
   with whitespace tokens and with kiwipiepy's morphemes. Goal: under a minute on 2 cores.

The third figure the issue asks for (the honest estimate of MBR against unseen rows, in a
simulation of candidates of known quality) comes with the summarization task's vote.

    python benchmarks/bench_generation.py [--rows 256] [--beams 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORDS = ("사람 오늘 회의 에서 결정 했다 내일 다시 만나 기로 약속 프로젝트 일정 이 늦어 졌다 고객 에게 연락 한다 "
         "#Person1#: #Person2#: 그래 정말 좋아 알겠어 어디 언제 왜").split()


def _bart(folder: Path, texts, d_model: int, layers: int):
    from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig

    from ensemble.cli.example import make_tokenizer, write_vocab

    tok = make_tokenizer(write_vocab(texts, folder / "vocab.txt"))
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
               decoder_start_token_id=tok.cls_token_id)
    config = BartConfig(vocab_size=len(tok), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=2 * d_model,
                        decoder_ffn_dim=2 * d_model, max_position_embeddings=512, forced_eos_token_id=None, **ids)
    model = BartForConditionalGeneration(config)
    model.generation_config = GenerationConfig(**ids)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def throughput(folder: Path, rows: int, beams: int, new_tokens: int, d_model: int, layers: int) -> dict:
    import pandas as pd
    import torch
    from transformers import (AutoModelForSeq2SeqLM, AutoTokenizer, DataCollatorWithPadding, Seq2SeqTrainer,
                              Seq2SeqTrainingArguments)

    from ensemble.data.splits import load_split
    from ensemble.inference.forwards import GenerationForward, open_model
    from ensemble.inference.session import ModelSession
    from ensemble.inference.settings import InferenceSettings

    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(3.5, 0.9, size=rows).astype(int), 3, 400)  # words per row
    texts = [" ".join(rng.choice(WORDS, size=n)) for n in lengths]
    model_dir = _bart(folder / "bart", texts, d_model, layers)
    pd.DataFrame({"id": [f"r{i}" for i in range(rows)], "dialogue": texts}).to_csv(folder / "test.csv", index=False)
    split = load_split(folder / "test.csv", text="dialogue")
    torch.set_num_threads(2)
    fw = GenerationForward(num_beams=beams, max_new_tokens=new_tokens)
    session = ModelSession(open_model(model_dir, fw), InferenceSettings(batch_size=16, device="cpu"), forward=fw)
    session.model  # noqa: B018 - loaded before the clock, as the Trainer's is
    t0 = time.perf_counter()
    ours = session.run(split)
    ours_s = time.perf_counter() - t0
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    enc = [{"input_ids": tok(t, truncation=True, max_length=512, return_token_type_ids=False)["input_ids"]}
           for t in texts]
    args = Seq2SeqTrainingArguments(output_dir=str(folder / "trainer"), per_device_eval_batch_size=16,
                                    predict_with_generate=True, generation_num_beams=beams, report_to="none",
                                    use_cpu=True, disable_tqdm=True)
    # DataCollatorWithPadding: no labels key (DataCollatorForSeq2Seq leaves one, and the Trainer then asks for a loss)
    trainer = Seq2SeqTrainer(model=model, args=args, data_collator=DataCollatorWithPadding(tok), processing_class=tok)
    t0 = time.perf_counter()
    out = trainer.predict(enc, max_new_tokens=new_tokens, num_beams=beams)
    theirs_s = time.perf_counter() - t0
    preds = np.where(out.predictions < 0, tok.pad_token_id, out.predictions)
    theirs = tok.batch_decode(preds, skip_special_tokens=True)
    same = float(np.mean([a[0] == b for a, b in zip(ours.texts, theirs)]))
    return {"rows": rows, "ours_s": ours_s, "trainer_s": theirs_s, "speedup": theirs_s / ours_s, "same": same}


def mbr_cost(rows: int, members: int, candidates: int) -> dict:
    from ensemble.core.outputs import Texts
    from ensemble.tasks.summarization.mbr import mbr_select, pool_candidates, rouge_utility
    from ensemble.tasks.summarization.rouge import Rouge

    rng = np.random.default_rng(1)
    outs = []
    for m in range(members):
        texts = [[" ".join(rng.choice(WORDS[:20], size=rng.integers(12, 25))) for _ in range(candidates)]
                 for _ in range(rows)]
        offsets = np.arange(0, rows * candidates + 1, candidates)
        outs.append(Texts(np.array([f"r{i}" for i in range(rows)]), texts,
                          np.zeros(rows * candidates, dtype=np.float32), offsets, f"m{m}", "test"))
    out = {}
    for tokenizer in ("whitespace", "morphemes"):
        t0 = time.perf_counter()
        mbr_select(pool_candidates(outs), rouge_utility(Rouge(tokenizer)))
        out[tokenizer] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--mbr-rows", type=int, default=500)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite)")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.new_tokens, args.d_model, args.layers, args.mbr_rows = 24, 4, 32, 1, 10
    import transformers

    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        t = throughput(Path(tmp), args.rows, args.beams, args.new_tokens, args.d_model, args.layers)
    print(f"throughput: {t['rows']} rows, beams {args.beams}, {args.new_tokens} new tokens, BART {args.d_model} x "
          f"{args.layers} layers, batch 16, CPU")
    print(f"  ModelSession (length-sorted)      {t['rows'] / t['ours_s']:8.2f} rows/s  ({t['ours_s']:.2f} s)")
    print(f"  Seq2SeqTrainer.predict            {t['rows'] / t['trainer_s']:8.2f} rows/s  ({t['trainer_s']:.2f} s)")
    print(f"  ratio {t['speedup']:.2f}x; the same text in {t['same']:.0%} of rows")
    m = mbr_cost(args.mbr_rows, 5, 4)
    print(f"MBR: {args.mbr_rows} rows x 5 members x 4 candidates: whitespace {m['whitespace']:.1f} s, "
          f"morphemes {m['morphemes']:.1f} s")


if __name__ == "__main__":
    main()
