"""A model zoo of tiny classifiers built from configs: the backbones competitions use, each saved
as a base model folder with a character-level WordPiece tokenizer (no download), so that they can
be trained with the real ``Trainer`` (:func:`ensemble.cli.example.train_run`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

# family -> (config class, its keyword arguments, whether its forward takes token_type_ids)
_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def _configs():
    import transformers as t

    return {
        "bert": (t.BertConfig, dict(_TINY, max_position_embeddings=128), True),
        "roberta": (t.RobertaConfig, dict(_TINY, max_position_embeddings=130, type_vocab_size=1), False),
        "xlm-roberta": (t.XLMRobertaConfig, dict(_TINY, max_position_embeddings=130, type_vocab_size=1), False),
        "electra": (t.ElectraConfig, dict(_TINY, embedding_size=32, max_position_embeddings=128), True),
        "distilbert": (t.DistilBertConfig, dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                                max_position_embeddings=128), False),
        "deberta-v2": (t.DebertaV2Config, dict(_TINY, max_position_embeddings=128, relative_attention=True,
                                               position_buckets=16, pos_att_type=["p2c", "c2p"], type_vocab_size=0),
                       False),
        "modernbert": (getattr(t, "ModernBertConfig", None),  # transformers 4.48 and later
                       dict(_TINY, max_position_embeddings=128, global_attn_every_n_layers=2, local_attention=16),
                       False),
        "mpnet": (t.MPNetConfig, dict(_TINY, max_position_embeddings=130), False),
        "llama": (t.LlamaConfig, dict(_TINY, num_key_value_heads=2, max_position_embeddings=128), False),
    }


def has_family(family: str) -> bool:
    """Whether the installed transformers has ``family``'s classes."""
    import transformers

    return family != "modernbert" or hasattr(transformers, "ModernBertConfig")


FAMILIES = ("bert", "roberta", "xlm-roberta", "electra", "distilbert", "deberta-v2", "modernbert", "mpnet", "llama")


def make_zoo_model(family: str, folder: str | Path, texts: Sequence[str], labels: Sequence[str], *, seed: int = 0,
                   head: str = "sequence", pad_token: bool = True, chat_template: bool = False):
    """A randomly initialised ``<Family>For<Head>Classification`` and its tokenizer in ``folder``,
    saved as a downloaded base model is. ``head``: "sequence" or "token"; ``chat_template``: the
    tokenizer carries one (as instruction-tuned decoders' do). Returns the folder."""
    import torch
    import transformers

    from ensemble.cli.example import make_tokenizer, write_vocab

    folder = Path(folder)
    tokenizer = make_tokenizer(write_vocab(texts, folder / "vocab.txt"))
    cls, kw, token_types = _configs()[family]
    if not token_types:  # saved in tokenizer_config.json (init_kwargs: transformers 4.x writes only those)
        tokenizer.model_input_names = ["input_ids", "attention_mask"]
        tokenizer.init_kwargs["model_input_names"] = ["input_ids", "attention_mask"]
    if chat_template:
        tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.cls_token_id,
           "eos_token_id": tokenizer.sep_token_id}
    if family == "modernbert":
        ids.update(cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id)
    if not pad_token:
        ids["pad_token_id"] = None
    config = cls(vocab_size=len(tokenizer), num_labels=len(labels), id2label=dict(enumerate(labels)),
                 label2id={lab: i for i, lab in enumerate(labels)}, **ids, **kw)
    auto = transformers.AutoModelForSequenceClassification if head == "sequence" else \
        transformers.AutoModelForTokenClassification
    torch.manual_seed(seed)
    model = auto.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# A classifier with its own code, as a Hub repository or a competition notebook ships it: mean
# pooling over BERT's tokens, with weights named like BertForSequenceClassification's.
MEANPOOL_CODE = '''
import torch
from transformers import BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class BertMeanPool(BertPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        logits = self.classifier((hidden * mask).sum(1) / mask.sum(1))
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)
'''


def make_meanpool_model(folder: str | Path, texts: Sequence[str], labels: Sequence[str], *, seed: int = 0) -> Path:
    """A base model folder whose class is its own code: ``modeling_meanpool.py`` beside
    ``config.json``, whose ``auto_map`` names it for AutoModelForSequenceClassification."""
    import importlib.util
    import sys

    import torch
    from transformers import BertConfig

    from ensemble.cli.example import make_tokenizer, write_vocab

    folder = Path(folder)
    tokenizer = make_tokenizer(write_vocab(texts, folder / "vocab.txt"))
    code = folder.parent / "meanpool_src" / "modeling_meanpool.py"
    code.parent.mkdir(parents=True, exist_ok=True)
    code.write_text(MEANPOOL_CODE)
    spec = importlib.util.spec_from_file_location("modeling_meanpool", code)
    module = importlib.util.module_from_spec(spec)
    sys.modules["modeling_meanpool"] = module
    spec.loader.exec_module(module)
    module.BertMeanPool.register_for_auto_class("AutoModelForSequenceClassification")
    config = BertConfig(vocab_size=len(tokenizer), num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={lab: i for i, lab in enumerate(labels)}, max_position_embeddings=128, **_TINY)
    torch.manual_seed(seed)
    module.BertMeanPool(config).save_pretrained(folder)  # writes auto_map and copies the code file
    tokenizer.save_pretrained(folder)
    return folder


def train_regressor(out_dir: str | Path, texts: Sequence[str], targets: Sequence[float], *, steps: int = 2,
                    epochs: float = 2, seed: int = 0):
    """A ``num_labels=1`` BERT regressor trained with the real ``Trainer`` on ``(texts, targets)``,
    evaluated and saved every ``steps`` steps, ``metric_for_best_model="mse"`` with
    ``greater_is_better=False``, as a regression run is set up. Returns the ``Trainer``."""
    import numpy as np
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from ensemble.cli.example import make_tokenizer, write_vocab

    out_dir = Path(out_dir)
    tokenizer = make_tokenizer(write_vocab(texts, out_dir / "base" / "vocab.txt"))
    config = BertConfig(vocab_size=len(tokenizer), num_labels=1, problem_type="regression",
                        max_position_embeddings=128, **_TINY)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    enc = tokenizer(list(texts), truncation=True, max_length=64, padding="max_length")
    rows = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": float(y)}
            for i, y in enumerate(targets)]

    def mse(pred):
        return {"mse": float(np.mean((np.ravel(pred.predictions) - pred.label_ids) ** 2))}

    args = TrainingArguments(output_dir=str(out_dir / "run"), per_device_train_batch_size=16, num_train_epochs=epochs,
                             learning_rate=5e-3, eval_strategy="steps", save_strategy="steps", eval_steps=steps,
                             save_steps=steps, logging_steps=steps, metric_for_best_model="mse", greater_is_better=False,
                             report_to="none", use_cpu=True, disable_tqdm=True, seed=seed)
    trainer = Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows[: len(rows) // 2],
                      compute_metrics=mse, processing_class=tokenizer)
    trainer.train()
    return trainer


def train_seq2seq(out_dir: str | Path, sources: Sequence[str], targets: Sequence[str], *, steps: int = 2,
                  epochs: float = 2, seed: int = 0):
    """A tiny BART trained with the real ``Seq2SeqTrainer``, whose generation config (beam search,
    a length limit, no repeated bigrams) the checkpoints save beside ``config.json``."""
    import torch
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        DataCollatorForSeq2Seq,
        GenerationConfig,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
    )

    from ensemble.cli.example import make_tokenizer, write_vocab

    out_dir = Path(out_dir)
    tokenizer = make_tokenizer(write_vocab([*sources, *targets], out_dir / "base" / "vocab.txt"))
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
               eos_token_id=tokenizer.sep_token_id, decoder_start_token_id=tokenizer.cls_token_id)
    config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                        max_position_embeddings=128, **ids)
    torch.manual_seed(seed)
    model = BartForConditionalGeneration(config)
    model.generation_config = GenerationConfig(num_beams=3, max_length=12, no_repeat_ngram_size=2,
                                               length_penalty=0.5, **ids)
    rows = [{"input_ids": tokenizer(s, truncation=True, max_length=48)["input_ids"],
             "labels": tokenizer(t, truncation=True, max_length=12)["input_ids"]} for s, t in zip(sources, targets)]
    args = Seq2SeqTrainingArguments(output_dir=str(out_dir / "run"), per_device_train_batch_size=16,
                                    num_train_epochs=epochs, learning_rate=5e-3, eval_strategy="steps",
                                    save_strategy="steps", eval_steps=steps, save_steps=steps, logging_steps=steps,
                                    report_to="none", use_cpu=True, disable_tqdm=True, seed=seed)
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=rows, eval_dataset=rows[:16],
                             data_collator=DataCollatorForSeq2Seq(tokenizer, model=model), processing_class=tokenizer)
    trainer.train()
    return trainer


@contextlib.contextmanager
def auto_mapping_restored():
    """transformers 4.x registers a remote-code class for its config class process-wide when it
    loads one (BertConfig -> BertMeanPool): every later BERT of the test session would be built
    as it. Put the Auto classes' mappings back afterwards."""
    import transformers

    mappings = [getattr(getattr(transformers, name), "_model_mapping", None)
                for name in ("AutoModel", "AutoModelForSequenceClassification")]
    saved = [(m._extra_content, dict(m._extra_content)) for m in mappings if isinstance(getattr(m, "_extra_content",
                                                                                              None), dict)]
    try:
        yield
    finally:
        for extra, before in saved:
            extra.clear()
            extra.update(before)


# --------------------------------------------------------------------------- token classification


def train_tag_tokenizers(texts: Sequence[str]) -> dict:
    """The example's two tokenizers (:func:`ensemble.cli.entities_example.train_tag_tokenizers`)."""
    from ensemble.cli.entities_example import train_tag_tokenizers as train

    return train(texts)


def train_tagger(out_dir: str | Path, tokenizer, texts: Sequence[str], char_tags: Sequence[Sequence[str]],
                 tags: Sequence[str], **kwargs):
    """The example's tiny token classifier (:func:`ensemble.cli.entities_example.train_tagger`),
    its checkpoints under ``out_dir/run``."""
    from ensemble.cli.entities_example import train_tagger as train

    return train(Path(out_dir) / "run", tokenizer, texts, char_tags, tags, **kwargs)
