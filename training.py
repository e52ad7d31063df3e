"""Training a sequence classifier (BertForSequenceClassification): a params tree ready to train
(init_classifier), the model's training forward that keeps its intermediates, its backward, and
loss_and_grads.

    params = init_classifier(params, hparams, num_labels=2, seed=0)
    loss, grads = loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, labels, rng)

The forward is bert.bert followed by bert.classifier_head, the same float32 arithmetic, with HF's dropout
when an rng is given (hidden_dropout_prob after the embeddings and after each sub-layer's output dense layer,
attention_probs_dropout_prob on the attention weights, classifier_dropout — or hidden_dropout_prob when it is
unset — on the pooled output). Only the [CLS] vector of the last layer reaches the loss, so the last layer
computes its queries, feed-forward and layer norms for [CLS] alone (its keys and values for every token):
the other positions' outputs would get zero gradient. The loss is the one HF picks (LOSSES in layers.py).
"""
import numpy as np

from bert import check_inputs, model_config
from layers import (ACTIVATIONS, LOSSES, activation_backward, attention_backward, attention_forward,
                    dense_backward, dense_forward, dropout_backward, dropout_forward, embeddings_backward,
                    embeddings_forward, layer_norm_backward, layer_norm_forward, tanh_backward, tanh_forward)

ROWS_PER_BLOCK = 32  # as bert.feed_forward: a block of 32 rows x intermediate_size stays in L2 cache
TRAINED = ("embeddings", "blocks", "pooler", "classifier")  # what a classifier trains; other heads are left out
DROPOUT_DEFAULTS = {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}  # HF's BertConfig


def init_classifier(params, hparams, num_labels, seed=0):
    """A new params tree of writable float32 copies of the encoder and pooler, with a new
    params["classifier"]: w ~ normal(0, initializer_range) (H, num_labels), b = 0, as HF initializes it.
    A checkpoint without a pooler gets a new one, initialized the same way (BertForSequenceClassification
    always has one). The MLM, NSP and other heads are left out."""
    hparams = model_config(params, hparams)
    if hparams.get("model_type", "bert") != "bert":
        raise ValueError(f"fine-tuning trains BERT checkpoints, not {hparams['model_type']} ones")
    if type(num_labels) is not int or num_labels < 1:
        raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
    rng = np.random.default_rng(seed)
    std = hparams.get("initializer_range", 0.02)
    H = hparams["hidden_size"]

    def new_dense(n_out):
        return {"w": (rng.standard_normal((H, n_out)) * std).astype(np.float32), "b": np.zeros(n_out, np.float32)}

    def copy(tree):
        if isinstance(tree, dict):
            return {key: copy(value) for key, value in tree.items()}
        if isinstance(tree, list):
            return [copy(value) for value in tree]
        return np.array(tree, dtype=np.float32, order="C")

    new = copy({key: params[key] for key in TRAINED[:3] if key in params})
    if "pooler" not in new:
        new["pooler"] = new_dense(H)
    new["classifier"] = new_dense(num_labels)
    return new


def settings(hparams):
    """What the training pass reads from the config, beyond bert.py's: dropout, the [PAD] id, the loss."""
    probs = {key: hparams.get(key, default) for key, default in DROPOUT_DEFAULTS.items()}
    classifier = hparams.get("classifier_dropout")
    probs["classifier_dropout"] = probs["hidden_dropout_prob"] if classifier is None else classifier
    for key, prob in probs.items():
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
            raise ValueError(f"{key} must be a probability in [0, 1], got {prob!r}")
    return {**probs, "pad_token_id": hparams.get("pad_token_id", 0), "problem_type": hparams.get("problem_type")}


def problem_type(hparams, num_labels, labels):
    """HF's rule: the config's problem_type, else regression for one label, single-label classification for
    integer labels, multi-label classification otherwise."""
    if hparams["problem_type"] is not None:
        if hparams["problem_type"] not in LOSSES:
            raise ValueError(f"problem_type {hparams['problem_type']!r} is not one of {', '.join(LOSSES)}")
        return hparams["problem_type"]
    if num_labels == 1:
        return "regression"
    return "single_label_classification" if labels.dtype.kind in "iu" else "multi_label_classification"


def check_labels(labels, kind, batch, num_labels, dtype):
    """labels as the loss needs them, or a ValueError saying what they should be."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iufb":
        raise ValueError(f"labels must be numbers, got dtype {labels.dtype}")
    if kind == "single_label_classification":
        if labels.dtype.kind not in "iu" or labels.shape != (batch,):
            raise ValueError(f"labels must be {batch} integer class ids (shape ({batch},)) for single-label "
                             f"classification, got dtype {labels.dtype} and shape {labels.shape}")
        if labels.min() < 0 or labels.max() >= num_labels:
            raise ValueError(f"labels must lie in [0, {num_labels}) (num_labels), found values from "
                             f"{labels.min()} to {labels.max()}")
        return labels
    shapes = [(batch, num_labels)] + ([(batch,)] if num_labels == 1 else [])
    if labels.shape not in shapes:
        raise ValueError(f"labels must have shape {' or '.join(map(str, shapes))} for {kind.replace('_', ' ')} "
                         f"with {num_labels} label(s), got {labels.shape}")
    labels = labels.astype(dtype)
    if not np.isfinite(labels).all():
        raise ValueError("labels must be finite numbers")
    return labels


# --- The model's training forward and backward ---------------------------------------------------------------

def encoder_layer_forward(x, mask_bias, block, hp, rng, n_queries=None):
    """bert.encoder_layer keeping its intermediates: x [B, L, H] -> [B, Lq, H], the output for the first
    n_queries positions (all of them by default)."""
    B, L, H = x.shape
    x2 = x.reshape(-1, H)
    qkv = dense_forward(x2, block["attn"]["qkv"]).reshape(B, L, 3 * H)
    context, attention = attention_forward(qkv, mask_bias, hp["num_attention_heads"],
                                           hp["attention_probs_dropout_prob"], rng, n_queries)
    context = context.reshape(-1, H)
    a, drop_1 = dropout_forward(dense_forward(context, block["attn"]["proj"]), hp["hidden_dropout_prob"], rng)
    a += x[:, :n_queries].reshape(-1, H)  # residual
    h_1, ln_1 = layer_norm_forward(a, block["ln_1"], hp["layer_norm_eps"])
    f, act = fc_activation_forward(h_1, block["ffn"]["fc"], ACTIVATIONS[hp["hidden_act"]])
    o, drop_2 = dropout_forward(dense_forward(f, block["ffn"]["proj"]), hp["hidden_dropout_prob"], rng)
    o += h_1  # residual
    y, ln_2 = layer_norm_forward(o, block["ln_2"], hp["layer_norm_eps"])
    return y.reshape(B, -1, H), (x2, attention, context, drop_1, ln_1, h_1, act, f, drop_2, ln_2)


def fc_activation_forward(x, p, activation_forward):  # [N, H] -> [N, I], and dy/dh for the backward
    """activation(x w + b), the bias and the activation applied block by block while each is in cache."""
    y = x @ p["w"]
    dydh = np.empty_like(y)
    for i in range(0, len(y), ROWS_PER_BLOCK):
        h = y[i:i + ROWS_PER_BLOCK]
        h += p["b"]
        h[...], dydh[i:i + ROWS_PER_BLOCK] = activation_forward(h)
    return y, dydh


def encoder_layer_backward(dy, cache, block, hp):  # dy [B, Lq, H] -> dx [B, L, H], grads like block
    x2, attention, context, drop_1, ln_1, h_1, act, f, drop_2, ln_2 = cache
    B, Lq, H = dy.shape
    do, g_ln_2 = layer_norm_backward(dy.reshape(-1, H), ln_2, block["ln_2"])
    df, g_proj = dense_backward(dropout_backward(do, drop_2), f, block["ffn"]["proj"])
    dh_1, g_fc = dense_backward(activation_backward(df, act), h_1, block["ffn"]["fc"])
    dh_1 += do  # residual
    da, g_ln_1 = layer_norm_backward(dh_1, ln_1, block["ln_1"])
    dcontext, g_attn_proj = dense_backward(dropout_backward(da, drop_1), context, block["attn"]["proj"])
    dqkv = attention_backward(dcontext.reshape(B, Lq, H), attention)
    dx, g_qkv = dense_backward(dqkv.reshape(-1, 3 * H), x2, block["attn"]["qkv"])
    dx = dx.reshape(B, -1, H)
    dx[:, :Lq] += da.reshape(B, Lq, H)  # residual
    return dx, {"attn": {"qkv": g_qkv, "proj": g_attn_proj}, "ln_1": g_ln_1,
                "ffn": {"fc": g_fc, "proj": g_proj}, "ln_2": g_ln_2}


def forward(params, hp, input_ids, segment_ids, attention_mask, rng):
    """Logits [B, num_labels] and what backward needs."""
    B, L = input_ids.shape
    dtype = params["classifier"]["w"].dtype
    mask_bias = None if attention_mask.all() else (  # [B, 1, 1, L], as in bert.bert
        np.where(attention_mask, 0, -1e9).astype(dtype)[:, None, None, :])
    e = embeddings_forward(input_ids, segment_ids, params["embeddings"])
    x, ln = layer_norm_forward(e, params["embeddings"]["ln"], hp["layer_norm_eps"])
    x, drop = dropout_forward(x, hp["hidden_dropout_prob"], rng)
    x = x.reshape(B, L, -1)
    layers = []
    for i, block in enumerate(params["blocks"]):
        last = i == len(params["blocks"]) - 1
        x, cache = encoder_layer_forward(x, mask_bias, block, hp, rng, n_queries=1 if last else None)
        layers.append(cache)
    cls = x[:, 0]
    pooled, pooler = tanh_forward(dense_forward(cls, params["pooler"]))
    pooled_dropped, drop_pooled = dropout_forward(pooled, hp["classifier_dropout"], rng)
    logits = dense_forward(pooled_dropped, params["classifier"])
    return logits, (input_ids, segment_ids, ln, drop, layers, cls, pooler, pooled_dropped, drop_pooled)


def backward(dlogits, cache, params, hp):
    """Gradients of every array of params (the layout of params) from the gradient of the logits."""
    input_ids, segment_ids, ln, drop, layers, cls, pooler, pooled_dropped, drop_pooled = cache
    grads = {}
    dpooled, grads["classifier"] = dense_backward(dlogits, pooled_dropped, params["classifier"])
    dpooled = tanh_backward(dropout_backward(dpooled, drop_pooled), pooler)
    dcls, grads["pooler"] = dense_backward(dpooled, cls, params["pooler"])
    dx = dcls[:, None, :]
    block_grads = []
    for block, cache in zip(params["blocks"][::-1], layers[::-1]):
        dx, g = encoder_layer_backward(dx, cache, block, hp)
        block_grads.append(g)
    grads["blocks"] = block_grads[::-1]
    de, g_ln = layer_norm_backward(dropout_backward(dx.reshape(-1, dx.shape[-1]), drop), ln,
                                   params["embeddings"]["ln"])
    grads["embeddings"] = {**embeddings_backward(de, input_ids, segment_ids, params["embeddings"],
                                                 hp["pad_token_id"]), "ln": g_ln}
    return {key: grads[key] for key in TRAINED}


def loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, labels, rng=None):
    """The loss HF's BertForSequenceClassification computes (a float) and its gradient for every array of
    params (the same nested layout). input_ids, segment_ids, attention_mask: ints [B, L] as bert.bert takes
    them (segment_ids / attention_mask None: all 0 / all 1). labels: class ids [B] (cross-entropy), floats
    [B] or [B, 1] for one label (mean squared error), floats [B, num_labels] in [0, 1] for multi-label
    classification (binary cross-entropy); hparams["problem_type"], when set, chooses as in HF.
    rng: a numpy Generator for dropout (training mode); None: no dropout (deterministic)."""
    return checked_loss_and_grads(params, *check(params, hparams, input_ids, segment_ids, attention_mask, labels,
                                                 rng))


def check(params, hparams, input_ids, segment_ids, attention_mask, labels, rng):
    """loss_and_grads' arguments checked and completed: (hp, kind, input_ids, segment_ids, attention_mask,
    labels, rng), hp being hparams with every setting the training pass reads, kind the loss's name."""
    hp = {**model_config(params, hparams), **settings(hparams)}
    if "classifier" not in params or "pooler" not in params:
        raise ValueError("params has no classifier or no pooler: start from init_classifier(params, hparams, "
                         "num_labels)")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (or None for no dropout), got {type(rng).__name__}")
    input_ids, segment_ids, attention_mask, _ = check_inputs(input_ids, segment_ids, attention_mask, hp)
    num_labels = params["classifier"]["w"].shape[1]
    kind = problem_type(hp, num_labels, np.asarray(labels))
    labels = check_labels(labels, kind, len(input_ids), num_labels, params["classifier"]["w"].dtype)
    return hp, kind, input_ids, segment_ids, attention_mask, labels, rng


def checked_loss_and_grads(params, hp, kind, input_ids, segment_ids, attention_mask, labels, rng, weight=1.0):
    """loss_and_grads on what check returns, the loss and the gradients multiplied by weight (a shard of a
    batch weighs its share of the rows)."""
    logits, cache = forward(params, hp, input_ids, segment_ids, attention_mask, rng)
    loss_forward, loss_backward = LOSSES[kind]
    loss, loss_cache = loss_forward(logits, labels)
    dlogits = loss_backward(loss_cache)
    if weight != 1:
        dlogits *= dlogits.dtype.type(weight)
    return loss * weight, backward(dlogits, cache, params, hp)
