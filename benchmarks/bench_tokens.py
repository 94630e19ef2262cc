"""Named entities: what averaging on characters costs, and what it gains.

1. Cost. The token forward's projection onto characters (``project_onto_characters``), its shift
   of B- to I- inside tokens (``continue_inside_tokens``) and the decoding of every row's spans
   (``decode_rows``), timed inside one run of the forward, against the rest of that run (the
   model's forward pass, tokenizing and batching). Two model sizes built from configs: BERT-base's
   (768 hidden, 12 layers; random weights: the cost does not depend on them) and the tests' tiny
   one (32 hidden, 2 layers), the worst case for the ratio. Goal: under 10% of inference time.
2. Gain. Two tiny taggers with different tokenizers (single characters; WordPiece pieces) trained
   with the real Trainer on KLUE-NER (``../shared/data/klue-ner``: the first rows train, the rest
   are scored), combined three ways: each alone, averaged on characters (this package), and
   averaged position by position (token i of one with token i of the other, projected through the
   first's offsets: what mixing unrelated pieces gives). Entity micro F1 on the scored rows, with
   the paired bootstrap interval of character averaging minus the best single member. Reported as
   measured.

    python benchmarks/bench_tokens.py [--train 1500] [--steps 600] [--cost-rows 200]
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
SHARED = ROOT.parent / "shared" / "data" / "klue-ner" / "klue-ner-v1.1_dev_first2000.tsv"
SLICE = ROOT / "tests" / "data" / "klue-ner" / "klue-ner-v1.1_dev_first300.tsv"
TAGS = ["O"] + [f"{p}-{t}" for t in ("PS", "LC", "OG", "DT", "TI", "QT") for p in "BI"]


def _split(folder: Path, texts, name: str):
    import pandas as pd

    from ensemble.data.splits import load_split

    path = folder / f"{name}.csv"
    pd.DataFrame({"id": [f"{name}-{i}" for i in range(len(texts))], "text": texts}).to_csv(path, index=False)
    return load_split(path)


def cost(folder: Path, tokenizer, texts, hidden: int, layers: int) -> dict:
    """One uncached run of the token forward over ``texts`` with a random BERT of that size,
    the projection, shift and decoding timed apart from the rest."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    import ensemble.inference.session as session_mod
    from ensemble.inference.forwards import open_model
    from ensemble.inference.session import ModelSession
    from ensemble.inference.settings import InferenceSettings
    from ensemble.tasks.entities.combination import align_units, decode_rows

    model_dir = folder / f"bert-{hidden}x{layers}"
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                        max_position_embeddings=512, num_labels=len(TAGS), id2label=dict(enumerate(TAGS)),
                        label2id={t: i for i, t in enumerate(TAGS)})
    torch.manual_seed(0)
    BertForTokenClassification(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    split = _split(folder, texts, "cost")
    spent = {"projection": 0.0}

    def timed(fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent["projection"] += time.perf_counter() - t0
        return wrapper

    saved = session_mod.project_onto_characters, session_mod.continue_inside_tokens
    session_mod.project_onto_characters, session_mod.continue_inside_tokens = map(timed, saved)
    try:
        session = ModelSession(open_model(model_dir, "tokens"), InferenceSettings(batch_size=32, device="cpu",
                                                                                  dtype="float32"), None, "tokens")
        session.model  # noqa: B018 - loaded before the clock starts
        t0 = time.perf_counter()
        out = session.run(split)
        total = time.perf_counter() - t0
    finally:
        session_mod.project_onto_characters, session_mod.continue_inside_tokens = saved
    t0 = time.perf_counter()
    al = align_units([out])
    decode_rows(al.values[0], al.offsets, al.tags, list(texts))
    decoding = time.perf_counter() - t0
    rest = total - spent["projection"]
    return {"rows": len(texts), "chars": int(out.offsets[-1]), "inference_s": rest, "projection_s": spent["projection"],
            "decode_s": decoding, "ratio": (spent["projection"] + decoding) / rest}


def token_probs(folder: Path, texts):
    """Each text's per-token probabilities and character spans (specials (0, 0)), one pass."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    out = []
    with torch.no_grad():
        for text in texts:
            enc = tok(text, return_offsets_mapping=True, truncation=True, max_length=512)
            p = torch.softmax(model(input_ids=torch.tensor([enc["input_ids"]])).logits[0], -1).numpy()
            out.append((p, np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)))
    return out


def position_wise(a, b, texts, tags):
    """Token i of one member averaged with token i of the other, onto the first's characters."""
    from ensemble.inference.forwards import continue_inside_tokens, project_onto_characters
    from ensemble.tasks.entities.projection import decode

    spans = []
    for (pa, sa), (pb, _), text in zip(a, b, texts):
        mixed = pa.copy()
        n = min(len(pa), len(pb))
        mixed[:n] = (pa[:n] + pb[:n]) / 2
        values, offsets = project_onto_characters([mixed], [sa], np.array([0]), [len(text)], len(tags))
        values = continue_inside_tokens(values, offsets, [sa], np.array([0]), tags)
        spans.append(decode(values, tags, text))
    return spans


def gain(folder: Path, data: Path, n_train: int, steps: int, hidden: int) -> dict:
    from ensemble.cli.entities_example import train_tag_tokenizers, train_tagger

    from ensemble.tasks.entities.estimate import resampled_f
    from ensemble.tasks.entities.klue import read_klue_ner
    from ensemble.tasks.entities.spans import micro_f, row_counts, tags_from_spans
    from ensemble.tasks.entities.vote import entity_spans
    from ensemble.workflows.predict import predict_forward

    frame = read_klue_ner(data)
    texts = list(frame["text"])
    gold = [[tuple(e) for e in ents] for ents in frame["entities"]]
    char_tags = [tags_from_spans(g, len(t)) for g, t in zip(gold, texts)]
    tokenizers = train_tag_tokenizers(texts[:n_train])  # the scored rows' words unseen by the tokenizers
    scored = texts[n_train:]
    split = _split(folder, scored, "scored")
    outputs, members = {}, {}
    t0 = time.perf_counter()
    for name, tok in tokenizers.items():
        train_tagger(folder / name, tok, texts[:n_train], char_tags[:n_train], TAGS, steps=steps, max_steps=steps,
                     hidden=hidden, lr=2e-3)
        members[name] = folder / name / f"checkpoint-{steps}"
        outputs[name] = predict_forward(members[name], split, "tokens", device="cpu", progress=False, cache=False,
                                        name=name)
    trained = time.perf_counter() - t0
    truth = gold[n_train:]
    spans = {name: entity_spans([out], scored) for name, out in outputs.items()}
    spans["characters"] = entity_spans(list(outputs.values()), scored)
    probs = {name: token_probs(path, scored) for name, path in members.items()}
    spans["positions"] = position_wise(probs["chars"], probs["pieces"], scored, TAGS)
    counts = {k: row_counts(truth, s) for k, s in spans.items()}
    f = {k: float(micro_f(c.sum(axis=0))) for k, c in counts.items()}
    best = max(("chars", "pieces"), key=f.get)
    draws = resampled_f({"characters": counts["characters"], "best": counts[best], "positions": counts["positions"]},
                        n_resamples=2000, seed=0)
    d = draws["characters"] - draws["best"]
    p = draws["characters"] - draws["positions"]
    return {"f": f, "best": best, "train_rows": n_train, "scored_rows": len(scored), "train_s": trained,
            "gain_interval": np.quantile(d, [0.025, 0.975]).tolist(),
            "over_positions_interval": np.quantile(p, [0.025, 0.975]).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=1500, help="KLUE-NER rows the taggers train on; the rest are scored")
    ap.add_argument("--steps", type=int, default=600, help="training steps of each tagger (batches of 16)")
    ap.add_argument("--hidden", type=int, default=64, help="the taggers' hidden size")
    ap.add_argument("--cost-rows", type=int, default=200, help="rows the cost is timed on")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on tests/data's slice: that it runs end to end "
                                                         "(the test suite), not its figures")
    args = ap.parse_args()
    data = SHARED if SHARED.is_file() and not args.smoke else SLICE
    if args.smoke:
        args.train, args.steps, args.hidden, args.cost_rows = 240, 20, 32, 20
    from ensemble.cli.entities_example import train_tag_tokenizers
    from ensemble.tasks.entities.klue import read_klue_ner

    texts = list(read_klue_ner(data)["text"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pieces = train_tag_tokenizers(texts)["pieces"]
        sizes = [(32, 2)] if args.smoke else [(768, 12), (32, 2)]
        print(f"cost: {args.cost_rows} KLUE-NER rows, batch 32, float32, 2 CPU threads as the machine has")
        print(f"{'model':>14} {'inference s':>12} {'projection s':>13} {'decode s':>9} {'ratio':>7}")
        for hidden, layers in sizes:
            c = cost(folder, pieces, texts[:args.cost_rows], hidden, layers)
            print(f"{f'bert {hidden}x{layers}':>14} {c['inference_s']:>12.3f} {c['projection_s']:>13.4f} "
                  f"{c['decode_s']:>9.4f} {c['ratio']:>7.2%}")
        g = gain(folder, data, args.train, args.steps, args.hidden)
        print(f"\ngain: {data.name}, {g['train_rows']} rows trained on, {g['scored_rows']} scored; two taggers "
              f"(hidden {args.hidden}, {args.steps} steps), trained in {g['train_s']:.0f} s")
        for k in ("chars", "pieces", "characters", "positions"):
            label = {"characters": "averaged on characters", "positions": "averaged by position"}.get(k, f"{k} alone")
            print(f"  {label:<26} entity F1 {g['f'][k]:.4f}")
        lo, hi = g["gain_interval"]
        print(f"  characters - best single ({g['best']}): {g['f']['characters'] - g['f'][g['best']]:+.4f}, "
              f"95% paired bootstrap over rows [{lo:+.4f}, {hi:+.4f}]")
        lo, hi = g["over_positions_interval"]
        print(f"  characters - positions: {g['f']['characters'] - g['f']['positions']:+.4f} [{lo:+.4f}, {hi:+.4f}]")


if __name__ == "__main__":
    main()
