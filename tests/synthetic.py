"""Synthetic BERT weights at any shape, the same on every machine, so a bert-base-sized golden test needs
no 440 MB checkpoint in the repository: make_golden.py and the tests build identical weights from here."""
import numpy as np

BERT_BASE_CONFIG = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, hidden_act="gelu", max_position_embeddings=512,
                        type_vocab_size=2, layer_norm_eps=1e-12)

# Two sequences of 24 tokens, the second padded after 17: [CLS] ... [SEP] ... [SEP] [PAD]...
GOLDEN_INPUT_IDS = np.array([
    [101] + list(range(2000, 2009)) + [102] + list(range(7000, 7012)) + [102],
    [101] + list(range(3000, 3007)) + [102] + list(range(9000, 9007)) + [102] + [0] * 7,
], dtype=np.int64)


def weight_makers(rng, dense_std):
    """(uniform, dense, layer_norm) drawing from rng: uniform(*shape, std) a float32 uniform law with this standard
    deviation; dense(prefix, n_in, n_out, std=dense_std) and layer_norm(prefix, n) an HF-named layer's weight and
    bias (biases with standard deviation 0.2, LayerNorm weights around 1)."""
    def uniform(*shape, std):
        return ((rng.random(shape, dtype=np.float32) - np.float32(0.5)) * np.float32(std * 12 ** 0.5))

    def dense(prefix, n_in, n_out, std=dense_std):
        return {prefix + ".weight": uniform(n_out, n_in, std=std), prefix + ".bias": uniform(n_out, std=0.2)}

    def layer_norm(prefix, n):
        return {prefix + ".weight": 1 + uniform(n, std=0.3), prefix + ".bias": uniform(n, std=0.2)}

    return uniform, dense, layer_norm


def synthetic_state_dict(config, seed=0, dense_std=0.05):
    """HF BertForPreTraining names -> float32 arrays: uniform weights (dense ones with standard deviation
    dense_std) with non-trivial LayerNorms and biases."""
    uniform, dense, layer_norm = weight_makers(np.random.default_rng(seed), dense_std)
    H, I, V = config["hidden_size"], config["intermediate_size"], config["vocab_size"]

    state = {"bert.embeddings.word_embeddings.weight": uniform(V, H, std=0.5),
             "bert.embeddings.position_embeddings.weight": uniform(config["max_position_embeddings"], H, std=0.5),
             "bert.embeddings.token_type_embeddings.weight": uniform(config["type_vocab_size"], H, std=0.5),
             **layer_norm("bert.embeddings.LayerNorm", H)}
    for i in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            state.update(dense(p + "attention.self." + name, H, H))
        state.update({**dense(p + "attention.output.dense", H, H),
                      **layer_norm(p + "attention.output.LayerNorm", H),
                      **dense(p + "intermediate.dense", H, I), **dense(p + "output.dense", I, H),
                      **layer_norm(p + "output.LayerNorm", H)})
    state.update({**dense("bert.pooler.dense", H, H), **dense("cls.predictions.transform.dense", H, H),
                  **layer_norm("cls.predictions.transform.LayerNorm", H),
                  "cls.predictions.bias": uniform(V, std=0.2), **dense("cls.seq_relationship", H, 2)})
    if not config.get("tie_word_embeddings", True):  # an MLM decoder of its own, drawn last: the rest is unchanged
        state["cls.predictions.decoder.weight"] = uniform(V, H, std=0.2)
    return state
