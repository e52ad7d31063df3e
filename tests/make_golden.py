"""Generate the golden files the model tests compare against, with HF transformers as the reference.

Needs torch==2.13.0 and transformers (never needed to run the tests). Writes under tests/golden/:
  tiny-gelu/, tiny-gelu-new/   small random BertForPreTraining checkpoints (config.json, vocab.txt,
                               tokenizer_config.json, model.safetensors) and expected.npz: HF's outputs
                               for a padded batch of sentence pairs (and tiny-gelu/expected-relu.npz: the
                               same weights with hidden_act "relu")
  bert-base-shape.npz          HF's outputs at bert-base shape for the weights synthetic.py builds
  minilm.npz                   HF's last hidden states of the real all-MiniLM-L6-v2 on a few sentences

Run from the repository root:  python tests/make_golden.py
"""
import json
import os
import shutil

import numpy as np
import torch
from transformers import BertConfig, BertForPreTraining, BertModel, BertTokenizer

from conftest import GOLDEN_DIR, minilm_dir
from synthetic import BERT_BASE_CONFIG, GOLDEN_INPUT_IDS, synthetic_state_dict

PAIRS = [
    ("The apple doesn't fall far from the tree.", "Instead, it falls on Newton's head."),
    ("She said hello.", "The weather was cold and the river froze over during the long winter night."),
    ("Where is the [MASK] station?", "Take the second road on the left."),
]
SENTENCES = [
    "A man is eating food.",
    "The new movie is awesome, I loved every minute of it!",
    "Numpy arrays are fast.",
    "Paris est la capitale de la France.",
    "東京は日本の首都です。",
]
TINY_CONFIGS = {
    "tiny-gelu": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                      hidden_act="gelu", max_position_embeddings=64, type_vocab_size=2,
                      layer_norm_eps=1e-12),
    "tiny-gelu-new": dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=96,
                          hidden_act="gelu_new", max_position_embeddings=40, type_vocab_size=3,
                          layer_norm_eps=1e-5),
}


def small_vocab(path):
    """The special tokens, single characters and the ~1,500 most frequent words of bert-base-uncased."""
    with open(os.path.join(minilm_dir(), "vocab.txt"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + lines[999:3500]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return len(tokens)


def perturb(model, seed):
    """Non-trivial LayerNorm scales and biases everywhere: identity LayerNorms and zero biases hide bugs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("LayerNorm.weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))


def make_tiny(name, cfg, seed):
    folder = os.path.join(GOLDEN_DIR, name)
    os.makedirs(folder, exist_ok=True)
    vocab_size = small_vocab(os.path.join(folder, "vocab.txt"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True}, f)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, initializer_range=0.2, **cfg)
    model = BertForPreTraining(config).eval()
    perturb(model, seed)
    model.save_pretrained(folder)  # config.json + model.safetensors (the tied decoder weight is left out)
    tok = BertTokenizer(os.path.join(folder, "vocab.txt"), do_lower_case=True)
    enc = tok([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
    np.savez_compressed(os.path.join(folder, "expected.npz"), text_a=[a for a, _ in PAIRS],
                        text_b=[b for _, b in PAIRS], **inputs_and_outputs(model, enc))
    if cfg["hidden_act"] == "gelu":  # the same weights with ReLU: only the encoder and NSP outputs, to stay small
        model.config.hidden_act = "relu"
        relu = BertForPreTraining(model.config).eval()
        relu.load_state_dict(model.state_dict())
        expected = inputs_and_outputs(relu, enc)
        del expected["mlm_logits"]
        np.savez_compressed(os.path.join(folder, "expected-relu.npz"), **expected)


def inputs_and_outputs(model, enc):
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
        pooled = model.bert.pooler(out.hidden_states[-1])
    return dict(input_ids=enc["input_ids"].numpy(), segment_ids=enc["token_type_ids"].numpy(),
                attention_mask=enc["attention_mask"].numpy(), hidden=out.hidden_states[-1].numpy(),
                pooled=pooled.numpy(), mlm_logits=out.prediction_logits.numpy(),
                nsp_logits=out.seq_relationship_logits.numpy())


def make_bert_base_shape():
    """bert-base shape (12 x 768) with synthetic weights: only the outputs are stored, the test rebuilds
    the same weights with synthetic.py."""
    config = BertConfig(**BERT_BASE_CONFIG)
    model = BertForPreTraining(config).eval()
    state = {k: torch.from_numpy(v) for k, v in synthetic_state_dict(BERT_BASE_CONFIG).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) <= {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}, missing
    assert not unexpected, unexpected
    model.tie_weights()
    ids = torch.from_numpy(GOLDEN_INPUT_IDS)
    segments = (torch.arange(ids.shape[1]) >= 10).long().expand_as(ids) * (ids != 0)
    mask = (ids != 0).long()
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=segments, attention_mask=mask, output_hidden_states=True)
        pooled = model.bert.pooler(out.hidden_states[-1])
    positions = np.array([1, 5, 9, 13])  # MLM logits at a few positions keep the file small
    np.savez_compressed(
        os.path.join(GOLDEN_DIR, "bert-base-shape.npz"), input_ids=ids.numpy(), segment_ids=segments.numpy(),
        attention_mask=mask.numpy(), hidden=out.hidden_states[-1].numpy(), pooled=pooled.numpy(),
        mlm_positions=positions, mlm_logits=out.prediction_logits[:, positions].numpy(),
        nsp_logits=out.seq_relationship_logits.numpy())


def make_minilm():
    folder = minilm_dir()
    tok = BertTokenizer(os.path.join(folder, "vocab.txt"), do_lower_case=True)
    model = BertModel.from_pretrained(folder).eval()
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc)
    np.savez_compressed(
        os.path.join(GOLDEN_DIR, "minilm.npz"), input_ids=enc["input_ids"].numpy(),
        segment_ids=enc["token_type_ids"].numpy(), attention_mask=enc["attention_mask"].numpy(),
        hidden=out.last_hidden_state.numpy(), pooled=out.pooler_output.numpy())


def main():
    torch.set_num_threads(2)
    for seed, (name, cfg) in enumerate(TINY_CONFIGS.items()):
        shutil.rmtree(os.path.join(GOLDEN_DIR, name), ignore_errors=True)
        make_tiny(name, cfg, seed)
    make_bert_base_shape()
    make_minilm()
    print("wrote", GOLDEN_DIR)


if __name__ == "__main__":
    main()
