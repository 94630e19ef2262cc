"""Inference speed of ``predict_logits`` against the two usual notebook ways, in one run.

A bert-base-size classifier (random weights from a ``BertConfig``, no download) over real Korean
comments from ``../shared/data/korean-hate-speech/train.tsv``; every variant is timed end to
end from the texts (tokenization included), with max_length 128 and batch size 32:

  (a) ``Trainer.predict`` on texts tokenized with ``padding="max_length"`` (the usual notebook)
  (b) ``Trainer.predict`` with ``DataCollatorWithPadding``, in file order
  (c) ``predict_logits``: length-sorted batches padded to their own longest row (a cache miss)

It prints sequences/s and the ratios, the largest logit difference against (b), the achieved
GFLOP/s of (c) as a fraction of a ``torch.matmul`` of the same width timed in the same run, and
a cache hit's time against the miss. ``--device cuda`` measures fp32, bf16 and fp16 on a GPU.

    python benchmarks/bench_predict.py [--n 2000] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "korean-hate-speech" / "train.tsv"
MAX_LENGTH, BATCH = 128, 32


def build_model(folder: Path, corpus: list[str], tiny: bool = False) -> None:
    """bert-base shapes, random weights, and a WordPiece vocabulary trained on the whole
    train.tsv with the tokenizers library: subword units like a Korean BERT's (about 18 tokens
    per comment), not characters."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForSequenceClassification

    from ensemble.cli.example import make_tokenizer

    wordpiece = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=False, strip_accents=False,
                                       lowercase=False)
    wordpiece.train_from_iterator(corpus, vocab_size=32000, min_frequency=2, show_progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    wordpiece.save_model(str(folder))
    tok = make_tokenizer(folder / "vocab.txt")
    torch.manual_seed(0)
    shape = (dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64) if tiny else
             dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072))
    config = BertConfig(vocab_size=len(tok), **shape, max_position_embeddings=512, num_labels=3,
                        id2label={0: "none", 1: "offensive", 2: "hate"},
                        label2id={"none": 0, "offensive": 1, "hate": 2})
    BertForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)


def trainer_predict(folder: Path, texts: list[str], pad_to_max: bool, workdir: Path) -> np.ndarray:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    enc = tok(texts, truncation=True, max_length=MAX_LENGTH, padding="max_length" if pad_to_max else False)
    rows = [{k: enc[k][i] for k in enc} for i in range(len(texts))]

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    args = TrainingArguments(output_dir=str(workdir / "trainer"), per_device_eval_batch_size=BATCH,
                             report_to=[], use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
    trainer = Trainer(model=model, args=args, data_collator=DataCollatorWithPadding(tok))
    return trainer.predict(Rows()).predictions


def matmul_gflops(device: str) -> float:
    import torch

    a = torch.randn(BATCH * 64, 768, device=device)
    b = torch.randn(768, 3072, device=device)
    for _ in range(3):
        a @ b
    n, t0 = 20, time.perf_counter()
    for _ in range(n):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * a.shape[0] * 768 * 3072 * n / (time.perf_counter() - t0) / 1e9


def model_flops(lengths: np.ndarray, layers=12, hidden=768, inter=3072) -> float:
    """Forward FLOPs of the batches predict_logits runs: length-sorted, padded per batch."""
    order = np.sort(lengths)[::-1]
    total = 0.0
    for i in range(0, len(order), BATCH):
        b, L = len(order[i:i + BATCH]), int(order[i])
        tokens = b * L
        per_layer = 2 * tokens * (4 * hidden * hidden + 2 * hidden * inter) + 4 * b * L * L * hidden
        total += layers * per_layer
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-trainer", action="store_true", help="Only (c) and the GPU dtypes.")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not "
                                                         "its figures; the comments in tests/data, a tiny BERT")
    args = ap.parse_args()
    data = DATA
    if args.smoke:
        args.n, data = 16, ROOT / "tests" / "data" / "korean-hate-speech" / "train-sample.tsv"

    import pandas as pd
    import torch

    from ensemble.data.splits import load_split
    from ensemble.workflows.predict import predict_logits

    corpus = pd.read_csv(data, sep="\t", quoting=3 if args.smoke else 0)["comments"].astype(str).tolist()
    texts = corpus[:args.n]
    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    try:
        folder = work / "bert-base"
        build_model(folder, corpus, tiny=args.smoke)
        csv = work / "valid.csv"
        pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(csv, index=False)
        print(f"{len(texts)} texts, torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
        results = {}

        t0 = time.perf_counter()
        split = load_split(csv)
        ours = predict_logits(folder, split, batch_size=BATCH, max_length=MAX_LENGTH, device=args.device,
                              dtype="float32", cache=work / "cache", progress=False)
        results["c"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        hit = predict_logits(folder, load_split(csv), batch_size=BATCH, max_length=MAX_LENGTH, device=args.device,
                             dtype="float32", cache=work / "cache", progress=False)
        results["hit"] = time.perf_counter() - t0
        assert hit.meta["cached"] and np.array_equal(hit.values, ours.values)

        from transformers import AutoTokenizer

        lengths = np.array([len(x) for x in AutoTokenizer.from_pretrained(folder)(
            texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]])
        gflops = model_flops(lengths) / results["c"] / 1e9
        peak = matmul_gflops(args.device)

        if not args.skip_trainer:
            for name, pad in (("a", True), ("b", False)):
                t0 = time.perf_counter()
                logits = trainer_predict(folder, texts, pad, work)
                results[name] = time.perf_counter() - t0
                results[f"diff_{name}"] = float(np.abs(logits - ours.values).max())

        n = len(texts)
        print(f"mean tokens per text {lengths.mean():.1f}, max {lengths.max()}")
        for k, label in (("a", "(a) Trainer.predict, padding=max_length"),
                         ("b", "(b) Trainer.predict, DataCollatorWithPadding, file order"),
                         ("c", "(c) predict_logits, length-sorted (cache miss)")):
            if k in results:
                print(f"{label:<58} {results[k]:7.1f} s  {n / results[k]:7.1f} seq/s")
        if "a" in results:
            print(f"speed-up of (c): {results['a'] / results['c']:.2f}x over (a), {results['b'] / results['c']:.2f}x over (b)")
            print(f"max |logit difference| vs (c): (a) {results['diff_a']:.2e}, (b) {results['diff_b']:.2e}")
        print(f"(c) achieved {gflops:.1f} GFLOP/s = {gflops / peak:.2f} of a {BATCH * 64}x768x3072 matmul ({peak:.1f} GFLOP/s)")
        print(f"cache hit {results['hit'] * 1000:.0f} ms vs miss {results['c']:.1f} s: {results['c'] / results['hit']:.0f}x faster")

        if args.device.startswith("cuda"):
            for dtype in ("bfloat16", "float16"):
                t0 = time.perf_counter()
                lg = predict_logits(folder, split, batch_size=BATCH, max_length=MAX_LENGTH, device=args.device,
                                    dtype=dtype, cache=False, progress=False)
                dt = time.perf_counter() - t0
                diff = float(np.abs(lg.values - ours.values).max())
                print(f"{dtype:<9} {dt:6.2f} s  {n / dt:8.1f} seq/s  max |diff| vs fp32 {diff:.2e}  "
                      f"argmax agreement {(lg.predictions() == ours.predictions()).mean():.4f}")
        print(json.dumps({k: round(v, 6) for k, v in results.items()}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
