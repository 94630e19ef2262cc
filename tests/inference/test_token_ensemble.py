"""Token-level ensembling: one search whose every step's next-token probability is the members'
weighted mean, against ``model.generate`` for one member and a step-by-step loop by hand for two;
members with other vocabularies, decoder-only members and sampling refused in one line."""

from __future__ import annotations

import json
import shutil

import pytest

from ensemble.core.errors import EnsembleError
from ensemble.inference.token_ensemble import generate_together

from tests.inference.test_forwards import GEN_TEXTS, _korean, _split, _train_tokenizer

SPECIALS = {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}


def _bart(folder, tok, seed, **generation):
    import torch
    from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig

    ids = {k: tok.convert_tokens_to_ids(v) for k, v in (("bos", "<s>"), ("pad", "<pad>"), ("eos", "</s>"))}
    config = BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                        pad_token_id=ids["pad"], bos_token_id=ids["bos"], eos_token_id=ids["eos"],
                        decoder_start_token_id=ids["eos"], forced_eos_token_id=None, init_std=0.3)
    torch.manual_seed(seed)
    model = BartForConditionalGeneration(config)
    model.final_logits_bias[0, ids["eos"]] = 2.0  # some rows end early
    model.generation_config = GenerationConfig(**{"max_new_tokens": 7, "decoder_start_token_id": ids["eos"],
                                                  "eos_token_id": ids["eos"], "pad_token_id": ids["pad"],
                                                  **generation})
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("together")
    tok = _train_tokenizer(_korean(), SPECIALS, ("<s>", "</s>"), vocab_size=200)
    other = _train_tokenizer(_korean(), SPECIALS, ("<s>", "</s>"), vocab_size=200)
    other.add_tokens(["회의록"])  # one token more: another vocabulary
    return {"a": _bart(root / "a", tok, 1), "b": _bart(root / "b", tok, 2), "c": _bart(root / "c", other, 3),
            "root": root}


def _generate(folder, text, **kw):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(folder, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok([text], return_tensors="pt")
    enc.pop("token_type_ids", None)
    with torch.no_grad():
        out = model.generate(**enc, **kw)
    return tok.batch_decode(out, skip_special_tokens=True)


@pytest.mark.parametrize("beams", [1, 3])
def test_one_member_alone_is_its_own_generate(members, tmp_path, beams):
    """Weights (1, 0), or the member twice: the search is the member's own, greedy or beams."""
    split = _split(tmp_path, GEN_TEXTS)
    alone = generate_together([members["a"], members["b"]], split, weights=[1, 0], num_beams=beams, batch_size=3,
                              device="cpu", progress=False)
    twice = generate_together([members["a"], members["a"]], split, num_beams=beams, batch_size=3, device="cpu",
                              progress=False)
    other = generate_together([members["a"], members["b"]], split, weights=[0, 1], num_beams=beams, batch_size=3,
                              device="cpu", progress=False)  # the second member's, under the first's generation config
    for i, t in enumerate(GEN_TEXTS):
        own = _generate(members["a"], t, num_beams=beams)
        assert list(alone.texts[i]) == own and list(twice.texts[i]) == own, (i, t)
        assert list(other.texts[i]) == _generate(members["b"], t, num_beams=beams), (i, t)


@pytest.mark.parametrize("mean", ["probability", "log"])
def test_two_members_follow_the_mean_of_their_probabilities_step_by_step(members, tmp_path, mean):
    """Greedy over two members: each token the argmax of their weighted mean next-token probability
    (or of their log-probabilities' weighted mean), by a loop over each member's own forward pass."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    split = _split(tmp_path, GEN_TEXTS)
    out = generate_together({"a": members["a"], "b": members["b"]}, split, weights=[0.7, 0.3], num_beams=1,
                            batch_size=4, device="cpu", progress=False, mean=mean)
    models = [AutoModelForSeq2SeqLM.from_pretrained(members[k], attn_implementation="eager").eval() for k in "ab"]
    tok = AutoTokenizer.from_pretrained(members["a"])
    eos, start = models[0].config.eos_token_id, models[0].config.decoder_start_token_id
    differs = 0
    for i, t in enumerate(GEN_TEXTS):
        enc = tok([t], return_tensors="pt")
        enc.pop("token_type_ids", None)
        seq = [start]
        with torch.no_grad():
            for _ in range(7):
                logp = [torch.log_softmax(m(**enc, decoder_input_ids=torch.tensor([seq])).logits[0, -1], -1)
                        for m in models]
                mixed = 0.7 * logp[0].exp() + 0.3 * logp[1].exp() if mean == "probability" else 0.7 * logp[0] + 0.3 * logp[1]
                nxt = int(torch.argmax(mixed))
                seq.append(nxt)
                if nxt == eos:
                    break
        assert list(out.texts[i]) == [tok.decode(seq, skip_special_tokens=True)], (i, t)
        differs += out.texts[i][0] != _generate(members["a"], t, num_beams=1)[0]
    assert differs > 0  # the second member changes some rows
    assert out.model == "together" and out.meta["weights"] == pytest.approx([0.7, 0.3]) and out.meta["mean"] == mean


def test_what_cannot_be_averaged_token_by_token_is_refused(members, tmp_path):
    split = _split(tmp_path, GEN_TEXTS[:2])
    with pytest.raises(EnsembleError, match=r"c: its vocabulary differs from .*a's .*combine these members by MBR"):
        generate_together([members["a"], members["c"]], split, device="cpu", progress=False)
    with pytest.raises(EnsembleError, match="sampling \\(do_sample\\) is not ensembled token by token"):
        generate_together([members["a"], members["b"]], split, do_sample=True, device="cpu", progress=False)
    warm = shutil.copytree(members["a"], tmp_path / "warm")
    config = json.loads((warm / "generation_config.json").read_text())
    (warm / "generation_config.json").write_text(json.dumps({**config, "repetition_penalty": 1.3}))
    with pytest.raises(EnsembleError, match="repetition_penalty 1.3 rescales the first member's scores alone"):
        generate_together([warm, members["b"]], split, device="cpu", progress=False)
    with pytest.raises(EnsembleError, match="mean must be one of probability, log; got 'max'"):
        generate_together([members["a"], members["b"]], split, mean="max", device="cpu", progress=False)
    with pytest.raises(EnsembleError, match="two or more members"):
        generate_together([members["a"]], split, device="cpu", progress=False)
    with pytest.raises(EnsembleError, match="weights must be 2 numbers"):
        generate_together([members["a"], members["b"]], split, weights=[1, -1], device="cpu", progress=False)
