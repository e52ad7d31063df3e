"""HF checkpoint names <-> numpy-bert's params tree (the layout in README.md), with NumPy alone.

to_params maps the names of BertModel, BertForPreTraining, BertForSequenceClassification,
BertForTokenClassification and BertForQuestionAnswering checkpoints (2019-era gamma/beta LayerNorm names
too) to params: query, key and value fused into one (H, 3H) matrix, every weight stored (in, out).
to_state_dict is the inverse, for writing a checkpoint that transformers loads. DistilBERT checkpoints (its
encoder is BERT's without segment embeddings; its classifier's pre_classifier + ReLU plays the pooler) are
read as BERT ones: distilbert_config and distilbert_state rename their config and weights.
"""
import re

import numpy as np

LEGACY_LAYER_NORM = {"gamma": "weight", "beta": "bias"}
QKV = ("query", "key", "value")
HEADS = {"pooler": "pooler.dense", "classifier": "classifier", "qa": "qa_outputs", "nsp": "cls.seq_relationship"}


# DistilBERT's weight names -> BERT's: (pattern, replacement), applied in order
DISTILBERT_NAMES = [(r"^distilbert\.", "bert."), (r"transformer\.layer\.", "encoder.layer."),
                    (r"attention\.q_lin\.", "attention.self.query."), (r"attention\.k_lin\.", "attention.self.key."),
                    (r"attention\.v_lin\.", "attention.self.value."),
                    (r"attention\.out_lin\.", "attention.output.dense."),
                    (r"sa_layer_norm\.", "attention.output.LayerNorm."), (r"ffn\.lin1\.", "intermediate.dense."),
                    (r"ffn\.lin2\.", "output.dense."), (r"output_layer_norm\.", "output.LayerNorm."),
                    (r"^pre_classifier\.", "bert.pooler.dense."),
                    (r"^vocab_transform\.", "cls.predictions.transform.dense."),
                    (r"^vocab_layer_norm\.", "cls.predictions.transform.LayerNorm."),
                    (r"^vocab_projector\.bias$", "cls.predictions.bias")]
# DistilBERT's config keys -> BERT's, and DistilBertConfig's defaults
DISTILBERT_CONFIG = {"dim": ("hidden_size", 768), "n_layers": ("num_hidden_layers", 6),
                     "n_heads": ("num_attention_heads", 12), "hidden_dim": ("intermediate_size", 3072),
                     "activation": ("hidden_act", "gelu"), "vocab_size": ("vocab_size", 30522),
                     "max_position_embeddings": ("max_position_embeddings", 512)}


def distilbert_config(config):
    """A DistilBERT config.json as BERT's hparams: its sizes under BERT's names, LayerNorm's epsilon 1e-12,
    two segment types (all-zero embeddings), and the pooler's activation ReLU (its classifier's pre_classifier)."""
    renamed = {bert: config.get(key, default) for key, (bert, default) in DISTILBERT_CONFIG.items()}
    return {**config, **renamed, "layer_norm_eps": 1e-12, "type_vocab_size": 2, "pooler_act": "relu"}


def distilbert_state(state, hidden_size):
    """A DistilBERT checkpoint's {name: array} under BERT's names, with all-zero segment embeddings (DistilBERT
    has none) and without the MLM decoder's weight (tied to the word embeddings, as BERT's)."""
    renamed = {}
    for name, array in state.items():
        for pattern, replacement in DISTILBERT_NAMES:
            name = re.sub(pattern, replacement, name)
        renamed[name] = array
    renamed.pop("vocab_projector.weight", None)
    prefix = "bert." if any(name.startswith("bert.") for name in renamed) else ""
    renamed[prefix + "embeddings.token_type_embeddings.weight"] = np.zeros((2, hidden_size), np.float32)
    return renamed


def to_params(state, n_layers, tied=True):
    """{HF name: array} -> params. Heads (pooler, mlm, nsp, classifier, qa) are in params only when the
    checkpoint has them; a missing encoder weight is a ValueError naming it. tied: the MLM decoder is the word
    embeddings (config.json's tie_word_embeddings, true by default, as in HF); else it is the checkpoint's own
    cls.predictions.decoder.weight, params["mlm"]["decoder"] [V, H]."""
    sd = {re.sub(r"(?<=LayerNorm\.)(gamma|beta)$", lambda m: LEGACY_LAYER_NORM[m[0]], name.removeprefix("bert.")):
          array for name, array in state.items()}

    def dense(prefix):
        return {"w": sd[prefix + ".weight"].T, "b": sd[prefix + ".bias"]}

    def ln(prefix):
        return {"g": sd[prefix + ".weight"], "b": sd[prefix + ".bias"]}

    def fused(p, kind):  # query | key | value one after the other: bias [3H], weight [H, 3H] in C order (the
        # products read it 2% faster than the other weights' transposed views; the copy is made here anyway)
        parts = [sd[f"{p}attention.self.{n}.{kind}"] for n in QKV]
        if len({a.shape for a in parts}) > 1:
            raise ValueError(f"{p}attention.self: the query, key and value {kind}s differ in shape "
                             f"({', '.join(str(a.shape) for a in parts)})")
        return np.ascontiguousarray(np.concatenate(parts).T)

    def block(p):
        return {"attn": {"qkv": {"w": fused(p, "weight"), "b": fused(p, "bias")},
                         "proj": dense(p + "attention.output.dense")},
                "ln_1": ln(p + "attention.output.LayerNorm"),
                "ffn": {"fc": dense(p + "intermediate.dense"), "proj": dense(p + "output.dense")},
                "ln_2": ln(p + "output.LayerNorm")}

    try:
        params = {"embeddings": {"word": sd["embeddings.word_embeddings.weight"],
                                 "position": sd["embeddings.position_embeddings.weight"],
                                 "token_type": sd["embeddings.token_type_embeddings.weight"],
                                 "ln": ln("embeddings.LayerNorm")},
                  "blocks": [block(f"encoder.layer.{i}.") for i in range(n_layers)]}
        for head, prefix in HEADS.items():
            if prefix + ".weight" in sd:
                params[head] = dense(prefix)
        if "cls.predictions.transform.dense.weight" in sd:
            # the bias per word: tied, the head's (the decoder's is the same); untied, transformers 5 reads the
            # decoder's own. Either name serves when the checkpoint has only one.
            names = ["cls.predictions.bias", "cls.predictions.decoder.bias"][::1 if tied else -1]
            bias = next((name for name in names if name in sd), names[0])
            params["mlm"] = {"transform": dense("cls.predictions.transform.dense"),
                             "ln": ln("cls.predictions.transform.LayerNorm"), "bias": sd[bias]}
            if not tied:
                if "cls.predictions.decoder.weight" not in sd:
                    raise ValueError("config.json says tie_word_embeddings false, but the checkpoint has no "
                                     "cls.predictions.decoder.weight of its own")
                params["mlm"]["decoder"] = sd["cls.predictions.decoder.weight"]
    except KeyError as e:
        raise ValueError(f"the checkpoint has no {e.args[0]}: is it a BERT checkpoint?") from None
    return params


def to_state_dict(params):
    """params -> {HF name: float32 array, C-contiguous} as BertFor* models name them: the encoder and pooler
    under "bert.", the classifier / qa / nsp / MLM heads at the top; the MLM head's decoder is the word
    embeddings (tied: transformers saves no copy of them), so only its transform, layer norm and bias are written."""
    state = {}

    def dense(prefix, p):
        state[prefix + ".weight"] = np.ascontiguousarray(p["w"].T)
        state[prefix + ".bias"] = np.ascontiguousarray(p["b"])

    def ln(prefix, p):
        state[prefix + ".weight"], state[prefix + ".bias"] = p["g"], p["b"]

    e = params["embeddings"]
    state.update({"bert.embeddings.word_embeddings.weight": e["word"],
                  "bert.embeddings.position_embeddings.weight": e["position"],
                  "bert.embeddings.token_type_embeddings.weight": e["token_type"]})
    ln("bert.embeddings.LayerNorm", e["ln"])
    for i, block in enumerate(params["blocks"]):
        p = f"bert.encoder.layer.{i}."
        qkv = block["attn"]["qkv"]
        H = qkv["w"].shape[0]
        for j, name in enumerate(QKV):
            dense(p + f"attention.self.{name}", {"w": qkv["w"][:, j * H:(j + 1) * H], "b": qkv["b"][j * H:(j + 1) * H]})
        dense(p + "attention.output.dense", block["attn"]["proj"])
        ln(p + "attention.output.LayerNorm", block["ln_1"])
        dense(p + "intermediate.dense", block["ffn"]["fc"])
        dense(p + "output.dense", block["ffn"]["proj"])
        ln(p + "output.LayerNorm", block["ln_2"])
    for head, prefix in HEADS.items():
        if head in params:
            dense(("bert." if head == "pooler" else "") + prefix, params[head])
    if "mlm" in params:
        dense("cls.predictions.transform.dense", params["mlm"]["transform"])
        ln("cls.predictions.transform.LayerNorm", params["mlm"]["ln"])
        state["cls.predictions.bias"] = params["mlm"]["bias"]
        if "decoder" in params["mlm"]:  # untied (tie_word_embeddings false): the decoder's weight and bias
            state["cls.predictions.decoder.weight"] = np.ascontiguousarray(params["mlm"]["decoder"])
            state["cls.predictions.decoder.bias"] = params["mlm"]["bias"]
    return {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in state.items()}


def layer_count(state):
    """The number of encoder layers in a checkpoint: one more than the highest encoder.layer.N it names."""
    found = [int(m[1]) for m in map(re.compile(r"^(?:bert\.)?encoder\.layer\.(\d+)\.").match, state) if m]
    return max(found) + 1 if found else 0
