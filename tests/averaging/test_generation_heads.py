"""Averages of generation runs (issue 36, item 1): a T5 trained with the real ``Seq2SeqTrainer``
and a GPT-2 with ``Trainer`` average into folders that load with ``AutoModelForSeq2SeqLM`` /
``AutoModelForCausalLM``, hold the float64 mean of the chosen checkpoints' tensors, keep their
embeddings tied as the checkpoints have them and the run's ``generation_config.json``, and
generate as the averaged weights do; ``eval_rouge*`` ranks higher-is-better."""

from __future__ import annotations

import json

import pytest
import torch

from ensemble.averaging.build import average_checkpoints
from ensemble.averaging.checkpoints import infer_greater_is_better

TEXTS = [f"오늘 회의 {i} 에서 결정 했다 내일 다시 만나 기로" for i in range(32)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """runs/t5 (Seq2SeqTrainer, beams in its generation config) and runs/gpt2 (Trainer), four
    checkpoints each, every step evaluated."""
    from transformers import (DataCollatorForLanguageModeling, DataCollatorForSeq2Seq, GenerationConfig,
                              GPT2Config, GPT2LMHeadModel, Seq2SeqTrainer, Seq2SeqTrainingArguments, T5Config,
                              T5ForConditionalGeneration, Trainer, TrainingArguments)

    from ensemble.cli.example import make_tokenizer, write_vocab

    root = tmp_path_factory.mktemp("gen-runs")
    tok = make_tokenizer(write_vocab(TEXTS, root / "vocab.txt"))
    ids = dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id)
    common = dict(per_device_train_batch_size=8, max_steps=4, eval_strategy="steps", save_strategy="steps",
                  eval_steps=1, save_steps=1, report_to="none", use_cpu=True, disable_tqdm=True, learning_rate=5e-3)
    torch.manual_seed(0)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                                             decoder_start_token_id=tok.pad_token_id, **ids))
    t5.generation_config = GenerationConfig(num_beams=2, max_length=10, decoder_start_token_id=tok.pad_token_id, **ids)
    rows = [{"input_ids": tok(t)["input_ids"], "labels": tok(t[:6])["input_ids"]} for t in TEXTS]
    Seq2SeqTrainer(model=t5, args=Seq2SeqTrainingArguments(output_dir=str(root / "t5"), **common), train_dataset=rows,
                   eval_dataset=rows[:8], data_collator=DataCollatorForSeq2Seq(tok, model=t5),
                   processing_class=tok).train()
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=4, n_positions=64,
                                     bos_token_id=tok.cls_token_id, **ids))
    lm_rows = [{"input_ids": tok(t)["input_ids"]} for t in TEXTS]
    Trainer(model=gpt, args=TrainingArguments(output_dir=str(root / "gpt2"), **common), train_dataset=lm_rows,
            eval_dataset=lm_rows[:8], data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
            processing_class=tok).train()
    return root, tok


def _mean_of_chosen(folder):
    from safetensors.torch import load_file

    chosen = [(folder / c["path"]).resolve() for c in json.loads((folder / "ensemble_manifest.json").read_text())[
        "checkpoints"]]  # paths relative to the average's folder
    parts = [load_file(c / "model.safetensors") for c in chosen]
    return {k: sum(p[k].double() for p in parts).div(len(parts)).float() for k in parts[0]}, chosen


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_an_average_of_generation_checkpoints_loads_exact_and_tied(runs, arch):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, GenerationConfig

    root, tok = runs
    out = root / f"{arch}-avg"
    average_checkpoints(root / arch, k=2, metric="loss", out=out)
    expected, chosen = _mean_of_chosen(out)
    got = load_file(out / "model.safetensors")
    assert set(got) == set(expected)  # tied tensors stored once, as the checkpoints store them
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    auto = AutoModelForSeq2SeqLM if arch == "t5" else AutoModelForCausalLM
    model = auto.from_pretrained(out).eval()
    embeddings = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight.data_ptr() == embeddings.data_ptr()  # tied as trained
    source = GenerationConfig.from_pretrained(chosen[0])
    assert GenerationConfig.from_pretrained(out).to_dict() == source.to_dict()
    if arch == "t5":
        assert source.num_beams == 2
        reference = auto.from_pretrained(chosen[0]).eval()
        reference.load_state_dict(expected, strict=False)
        batch = tok(TEXTS[:4], return_tensors="pt", padding=True, return_token_type_ids=False)
        with torch.no_grad():
            assert torch.equal(model.generate(**batch), reference.generate(**batch, generation_config=source))


def test_rouge_metrics_rank_higher_is_better():
    for name in ("eval_rouge1", "rouge2", "eval_rougeL", "eval_rougeLsum"):
        assert infer_greater_is_better(name) is True, name
