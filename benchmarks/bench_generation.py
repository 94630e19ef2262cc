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

3. MBR's honest estimate against unseen rows. A simulation of candidates of known quality
   (tests/synthetic_members.py's references: random word strings): per repeat, 4 members whose
   drafts keep each reference word with probability about 0.75, 0.7, 0.55 and 0.4 (jittered
   per repeat), each with 2 to 4 candidates (its draft first, the others the draft with a few
   words changed, as an n-best list's are alike); a labelled validation set (150 rows) and an
   unseen set (1000 rows) from the same distribution; the metric "rouge" (R1 + R2 + RL F1) over
   whitespace tokens. On the validation rows each rule is estimated out of fold
   (``estimate_rules``) and fitted on them all (its apparent score, on the same rows); auto's
   choice is ``choose_rule``'s. Each rule as fitted on the validation rows is then scored on the
   unseen rows: the truth the estimate is judged by. Per rule, the means over repeats of the
   cross-validated estimate, the apparent score, the unseen score and the two biases (estimate -
   unseen, apparent - unseen), and the share of repeats whose interval covers the unseen score;
   auto's estimate against its unseen score; the best single member chosen on the validation
   rows; the oracle (an upper bound: it reads the references) on the unseen rows.

    python benchmarks/bench_generation.py [--rows 256] [--beams 1] [--sim-repeats 20] [--parts 123]
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
    from ensemble.tasks.summarization.vote import mbr_summaries

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
        mbr_summaries(outs, tokenizer=tokenizer)  # what the vote runs: the pool, the utilities, the choice
        out[tokenizer] = time.perf_counter() - t0
    return out


KEEPS = (0.75, 0.7, 0.55, 0.4)  # each member's share of reference words its draft keeps
NEAR = 0.85  # the share of its draft's words a member's later candidates keep


def _member_texts(refs, keep: float, candidates: int, rng) -> list[list[str]]:
    """A member's candidates per row: its draft (each reference word kept with probability
    ``keep``, else another word) first, then ``candidates - 1`` variants of the draft."""
    from tests.synthetic_members import noisy_summary

    out = []
    for r in refs:
        draft = noisy_summary(r, keep, rng)
        out.append([draft, *(noisy_summary(draft, NEAR, rng) for _ in range(candidates - 1))])
    return out


def _labelled(n: int, keeps, candidates, split: str, rng):
    """``n`` rows of references and the members' candidates, pooled and scored."""
    from ensemble.core.outputs import Texts
    from ensemble.tasks.summarization.estimate import candidates_of
    from ensemble.tasks.summarization.task import align_texts
    from tests.synthetic_members import draw_summaries

    refs = draw_summaries(n, rng)
    ids = np.array([f"{split[0]}{i}" for i in range(n)], dtype=object)
    outs = [Texts(ids, _member_texts(refs, k, c, rng), -rng.random(n * c).astype(np.float32), None, f"m{m}", split)
            for m, (k, c) in enumerate(zip(keeps, candidates))]
    return candidates_of(align_texts(outs), refs, tokenizer="whitespace")


def _se(x: np.ndarray) -> float:
    """The standard error of ``x``'s mean (0 for one value)."""
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def simulation(repeats: int, valid_rows: int, test_rows: int, seed: int = 2) -> dict:
    """Each rule's cross-validated estimate and apparent score on labelled rows against its score
    on unseen rows of the same distribution, over ``repeats`` draws of members and rows."""
    from ensemble.tasks.summarization.estimate import RULES, choose, estimate_rules, fit_rule, oracle
    from ensemble.tasks.summarization.vote import AUTO_RULES, choose_rule

    rng = np.random.default_rng(seed)
    keys = ("estimate", "low", "high", "apparent", "unseen")
    per = {m: {k: [] for k in keys} for m in RULES}
    auto = {"rule": [], "estimate": [], "unseen": [], "uniform": []}
    best_right, oracles = 0, []
    for _ in range(repeats):
        keeps = np.clip(np.array(KEEPS) + rng.uniform(-0.05, 0.05, size=len(KEEPS)), 0.05, 0.95)
        candidates = rng.integers(2, 5, size=len(KEEPS))
        valid = _labelled(valid_rows, keeps, candidates, "valid", rng)
        test = _labelled(test_rows, keeps, candidates, "test", rng)
        every = np.arange(len(test))
        estimates = estimate_rules(valid, RULES)
        unseen = {}
        for m in RULES:
            e, fit = estimates[m], fit_rule(valid, m)
            unseen[m] = float(test.scored(choose(test, fit.method, fit.weights), every).mean())
            for k, v in zip(keys, (e.score, *e.interval, e.apparent, unseen[m])):
                per[m][k].append(v)
            if m == "best":
                best_right += int(np.argmax(fit.weights) == np.argmax(test.member_quality()))
        rule, _ = choose_rule({m: estimates[m] for m in ("uniform", *AUTO_RULES)}, valid.metric)
        for k, v in zip(auto, (rule, estimates[rule].score, unseen[rule], unseen["uniform"])):
            auto[k].append(v)
        oracles.append(float(oracle(test).mean()))
    rules = {}
    for m, d in per.items():
        a = {k: np.asarray(v) for k, v in d.items()}
        rules[m] = {"estimate": float(a["estimate"].mean()), "apparent": float(a["apparent"].mean()),
                    "unseen": float(a["unseen"].mean()), "cv_bias": float((a["estimate"] - a["unseen"]).mean()),
                    "cv_bias_se": _se(a["estimate"] - a["unseen"]),
                    "apparent_bias": float((a["apparent"] - a["unseen"]).mean()),
                    "apparent_bias_se": _se(a["apparent"] - a["unseen"]),
                    "half_width": float(((a["high"] - a["low"]) / 2).mean()),
                    "covered": float(((a["low"] <= a["unseen"]) & (a["unseen"] <= a["high"])).mean())}
    est, uns, uni = (np.asarray(auto[k]) for k in ("estimate", "unseen", "uniform"))
    chosen = {m: auto["rule"].count(m) for m in ("uniform", *AUTO_RULES) if m in auto["rule"]}
    fitted = np.array([r != "uniform" for r in auto["rule"]])
    return {"repeats": repeats, "valid_rows": valid_rows, "test_rows": test_rows, "rules": rules,
            "auto": {"chosen": chosen, "estimate": float(est.mean()), "unseen": float(uns.mean()),
                     "bias": float((est - uns).mean()), "bias_se": _se(est - uns),
                     "at_least_uniform": float((uns >= uni - 1e-12).mean()),
                     "fitted": int(fitted.sum()), "fitted_above_uniform": int((uns > uni + 1e-12)[fitted].sum())},
            "best_is_best_unseen": best_right / repeats, "oracle": float(np.mean(oracles))}


def print_simulation(s: dict) -> None:
    print(f"MBR honest estimate: {s['repeats']} repeats, members keeping ~"
          f"{'/'.join(f'{k:.2f}' for k in KEEPS)} of the words (+-0.05), 2 to 4 candidates each, "
          f"{s['valid_rows']} labelled rows, {s['test_rows']} unseen; rouge (R1 + R2 + RL F1), whitespace tokens")
    print(f"  {'rule':9s} {'cv est':>7s} {'apparent':>8s} {'unseen':>7s} {'est-unseen (se)':>17s} "
          f"{'app-unseen (se)':>17s} {'interval':>8s} {'covers':>6s}")
    for m, r in s["rules"].items():
        print(f"  {m:9s} {r['estimate']:7.4f} {r['apparent']:8.4f} {r['unseen']:7.4f} "
              f"{r['cv_bias']:+8.4f} ({r['cv_bias_se']:.4f}) {r['apparent_bias']:+8.4f} ({r['apparent_bias_se']:.4f}) "
              f"{'+-' + format(r['half_width'], '.4f'):>8s} {r['covered']:6.0%}")
    a = s["auto"]
    chosen = ", ".join(f"{m} {n}" for m, n in a["chosen"].items())
    print(f"  auto ({chosen}): estimate {a['estimate']:.4f}, unseen {a['unseen']:.4f} (est-unseen "
          f"{a['bias']:+.4f}, se {a['bias_se']:.4f}); at least uniform's unseen score in {a['at_least_uniform']:.0%} "
          f"of repeats (a fitted rule chosen {a['fitted']} times, above uniform unseen {a['fitted_above_uniform']})")
    print(f"  best single member chosen on the labelled rows: the best on the unseen rows in "
          f"{s['best_is_best_unseen']:.0%} of repeats; oracle (reads the references) {s['oracle']:.4f} unseen")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--mbr-rows", type=int, default=500)
    ap.add_argument("--sim-repeats", type=int, default=20, help="part 3: draws of members and rows")
    ap.add_argument("--sim-valid", type=int, default=150, help="part 3: labelled rows per repeat")
    ap.add_argument("--sim-test", type=int, default=1000, help="part 3: unseen rows per repeat")
    ap.add_argument("--sim-seed", type=int, default=2, help="part 3: the seed of the draws")
    ap.add_argument("--parts", default="123", help="which parts to run (1 throughput, 2 MBR cost, 3 the simulation)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite)")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.new_tokens, args.d_model, args.layers, args.mbr_rows = 24, 4, 32, 1, 10
        args.sim_repeats, args.sim_valid, args.sim_test = 2, 20, 40
    if "1" in args.parts:
        import transformers

        transformers.logging.set_verbosity_error()
        with tempfile.TemporaryDirectory() as tmp:
            t = throughput(Path(tmp), args.rows, args.beams, args.new_tokens, args.d_model, args.layers)
        print(f"throughput: {t['rows']} rows, beams {args.beams}, {args.new_tokens} new tokens, BART {args.d_model} x "
              f"{args.layers} layers, batch 16, CPU")
        print(f"  ModelSession (length-sorted)      {t['rows'] / t['ours_s']:8.2f} rows/s  ({t['ours_s']:.2f} s)")
        print(f"  Seq2SeqTrainer.predict            {t['rows'] / t['trainer_s']:8.2f} rows/s  ({t['trainer_s']:.2f} s)")
        print(f"  ratio {t['speedup']:.2f}x; the same text in {t['same']:.0%} of rows")
    if "2" in args.parts:
        m = mbr_cost(args.mbr_rows, 5, 4)
        print(f"MBR: {args.mbr_rows} rows x 5 members x 4 candidates: whitespace {m['whitespace']:.1f} s, "
              f"morphemes {m['morphemes']:.1f} s")
    if "3" in args.parts:
        t0 = time.perf_counter()
        s = simulation(args.sim_repeats, args.sim_valid, args.sim_test, args.sim_seed)
        print_simulation(s)
        print(f"  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
