"""Training a classifier, of sequences (BertForSequenceClassification) or of tokens
(BertForTokenClassification, e.g. NER), an extractive question-answering model (BertForQuestionAnswering) or a
masked language model (BertForMaskedLM): a params tree ready to train (init_classifier, init_token_classifier,
init_question_answering, init_masked_lm), the encoder's training forward that keeps its intermediates, its
backward, and loss_and_grads with the task's head (task_heads.py).

    params = init_classifier(params, hparams, num_labels=2, seed=0)
    loss, grads = loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, labels, rng)

The forward is bert.bert followed by bert.classifier_head (or bert.token_classifier_head), the same float32
arithmetic, with HF's dropout when an rng is given (hidden_dropout_prob after the embeddings and after each
sub-layer's output dense layer, attention_probs_dropout_prob on the attention weights, classifier_dropout — or
hidden_dropout_prob when it is unset — before the classifier). A sequence classifier's loss sees only the
[CLS] vector of the last layer, so that layer computes its queries, feed-forward and layer norms for [CLS]
alone (its keys and values for every token): the other positions' outputs would get zero gradient. The loss is
the one HF picks (LOSSES in layers.py); a token classifier's is the cross-entropy over the tokens whose label
is not IGNORE, and its classifier runs on those tokens alone; a question-answering model's is the mean of the
cross-entropies of the answers' start and end positions over each input's tokens (padding included, as in HF);
a masked language model's is the cross-entropy over the masked tokens (labels not IGNORE), its head run on those
tokens alone, and its decoder's gradient added to the word embeddings' (tied weights).
"""
import numpy as np

from bert import check_inputs, model_config
from layers import (ACTIVATIONS, IGNORE, LOSSES, MLM, SPANS, TOKENS, activation_backward, attention_backward,
                    attention_forward, dense_backward, dense_forward, dropout_backward, dropout_forward,
                    embeddings_backward, embeddings_forward, layer_norm_backward, layer_norm_forward)
from optim import leaves
from task_heads import HEADS, sequence_head_backward, sequence_head_forward

ROWS_PER_BLOCK = 32  # as bert.feed_forward: a block of 32 rows x intermediate_size stays in L2 cache
TRAINED = ("embeddings", "blocks", "pooler", "classifier", "qa", "mlm")  # what is trained; other heads are left out
DROPOUT_DEFAULTS = {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}  # HF's BertConfig


def init_classifier(params, hparams, num_labels, seed=0):
    """A new params tree of writable float32 copies of the encoder and pooler, with a new
    params["classifier"]: w ~ normal(0, initializer_range) (H, num_labels), b = 0, as HF initializes it.
    A checkpoint without a pooler gets a new one, initialized the same way (BertForSequenceClassification
    always has one). The MLM, NSP and other heads are left out."""
    return new_classifier(params, hparams, num_labels, seed, ("embeddings", "blocks", "pooler", "classifier"))


def init_token_classifier(params, hparams, num_labels, seed=0):
    """As init_classifier, for BertForTokenClassification: the encoder copied and a new params["classifier"]
    for every token's vector; no pooler (BertForTokenClassification has none, and loss_and_grads takes a
    params tree without one for a token classifier)."""
    return new_classifier(params, hparams, num_labels, seed, ("embeddings", "blocks", "classifier"))


def init_question_answering(params, hparams, seed=0):
    """As init_token_classifier, for BertForQuestionAnswering: the encoder copied and a new params["qa"], a
    dense layer (H, 2) giving every token's start and end logits; no pooler and no dropout before the head (HF's
    model has neither)."""
    return new_classifier(params, hparams, 2, seed, ("embeddings", "blocks", "qa"))


def init_masked_lm(params, hparams, seed=0):
    """A new params tree for BertForMaskedLM (continued pre-training, as transformers' run_mlm.py): writable
    float32 copies of the encoder and of the checkpoint's MLM head; a checkpoint without one (e.g. a
    sentence-transformers model) gets a new head, initialized as HF does: its dense layer as init_classifier's,
    layer norm g = 1, b = 0, and a zero bias per word. The head's decoder is the word embeddings (tied), so
    they train as both; with tie_word_embeddings false the head keeps the checkpoint's own decoder, or gets a new
    one, w ~ normal(0, initializer_range), as HF does. No pooler and no NSP head (BertForMaskedLM has neither)."""
    hparams, new_dense = head_maker(params, hparams, seed)
    new = writable_copy({key: params[key] for key in ("embeddings", "blocks", "mlm") if key in params})
    if "mlm" not in new:
        H = hparams["hidden_size"]
        new["mlm"] = {"transform": new_dense(H), "ln": {"g": np.ones(H, np.float32), "b": np.zeros(H, np.float32)},
                      "bias": np.zeros(len(new["embeddings"]["word"]), np.float32)}
    if not hparams.get("tie_word_embeddings", True) and "decoder" not in new["mlm"]:
        new["mlm"]["decoder"] = np.ascontiguousarray(new_dense(len(new["embeddings"]["word"]))["w"].T)
    return new


def head_maker(params, hparams, seed):
    """(hparams with their defaults, new_dense(n_out): a new dense layer of hidden_size inputs, w ~ normal(0,
    initializer_range) and b = 0, as HF initializes one), or a ValueError for a checkpoint not trained here."""
    hparams = model_config(params, hparams)
    if hparams.get("model_type", "bert") != "bert":
        raise ValueError(f"fine-tuning trains BERT checkpoints, not {hparams['model_type']} ones")
    rng = np.random.default_rng(seed)
    std, H = hparams.get("initializer_range", 0.02), hparams["hidden_size"]

    def new_dense(n_out):
        return {"w": (rng.standard_normal((H, n_out)) * std).astype(np.float32), "b": np.zeros(n_out, np.float32)}

    return hparams, new_dense


def new_classifier(params, hparams, num_labels, seed, parts):  # parts: what is kept, then the new head's name
    hparams, new_dense = head_maker(params, hparams, seed)
    if type(num_labels) is not int or num_labels < 1:
        raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
    H = hparams["hidden_size"]
    new = writable_copy({key: params[key] for key in parts[:-1] if key in params})
    if "pooler" in parts and "pooler" not in new:
        new["pooler"] = new_dense(H)
    new[parts[-1]] = new_dense(num_labels)
    return new


def writable_copy(tree):
    """The params tree as writable, C-contiguous float32 copies (the loader's arrays are read-only maps)."""
    if isinstance(tree, dict):
        return {key: writable_copy(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [writable_copy(value) for value in tree]
    return np.array(tree, dtype=np.float32, order="C")


def real_length(attention_mask):
    """The batch's length without its trailing padding: one past the last position any row attends to."""
    return int(np.flatnonzero(np.asarray(attention_mask).any(axis=0))[-1]) + 1


def add_grads(total, grads, input_ids=None):
    """total += grads, array by array, in place: the gradients of another shard of a batch, whose tokens are
    input_ids (only their rows of the word embeddings can be non-zero, so only those are added; None: all rows,
    as a masked language model's decoder, tied to the word embeddings, gives every row a gradient)."""
    for (path, t), (_, g) in zip(leaves(total), leaves(grads)):
        if path == "embeddings/word" and input_ids is not None:
            ids = np.unique(input_ids)
            t[ids] += g[ids]
        else:
            t += g


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
        kinds = [kind for kind in LOSSES if kind != SPANS]
        if hparams["problem_type"] not in kinds:
            raise ValueError(f"problem_type {hparams['problem_type']!r} is not one of {', '.join(kinds)}")
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
            hint = ("; token labels [B, L] need a token classifier: training.init_token_classifier"
                    if labels.ndim == 2 and labels.dtype.kind in "iu" else "")
            raise ValueError(f"labels must be {batch} integer class ids (shape ({batch},)) for single-label "
                             f"classification, got dtype {labels.dtype} and shape {labels.shape}{hint}")
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


def check_rng(rng):
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (or None for no dropout), got {type(rng).__name__}")


def check_token_labels(labels, shape, num_labels, model="a token classifier", classes=("class ids", "num_labels")):
    """A token classifier's labels [B, L] (input_ids' shape), each a class id or IGNORE, at least one not (a
    masked language model's: classes = ("token ids", "vocab_size"))."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.shape != shape:
        raise ValueError(f"{model}'s labels must be integer {classes[0]} of input_ids' shape {shape} "
                         f"(IGNORE, -100, for tokens without a label), got dtype {labels.dtype} and shape "
                         f"{labels.shape}")
    bad = labels[(labels != IGNORE) & ((labels < 0) | (labels >= num_labels))]
    if bad.size:
        raise ValueError(f"token labels must lie in [0, {num_labels}) ({classes[1]}) or be IGNORE (-100), found "
                         f"{bad[0]}")
    if (labels == IGNORE).all():
        raise ValueError("no token has a label (all are IGNORE, -100): the loss would be undefined")
    return labels


def check_positions(positions, attention_mask):
    """A question-answering model's labels [B, 2]: each row's answer start and end token positions, each one of
    the row's tokens (attention_mask 1). HF would clamp a position past the input and leave it out of the loss;
    here it is an error (run_qa's features never have one: [CLS], 0, stands for no answer)."""
    positions = np.asarray(positions)
    B, L = attention_mask.shape
    if positions.dtype.kind not in "iu" or positions.shape != (B, 2):
        raise ValueError(f"a question-answering model's labels must be integer (start, end) token positions, shape "
                         f"({B}, 2), got dtype {positions.dtype} and shape {positions.shape}")
    inside = (positions >= 0) & (positions < L)
    inside[inside] = attention_mask[np.nonzero(inside)[0], positions[inside]] != 0
    if not inside.all():
        row, k = np.argwhere(~inside)[0]
        raise ValueError(f"row {row}'s answer {('start', 'end')[k]} position {positions[row, k]} is not one of its "
                         f"tokens: positions count from [CLS] (0) to the row's last token")
    return positions


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


def encoder_forward(params, hp, input_ids, segment_ids, attention_mask, rng, last_queries=None):
    """The last layer's output [B, Lq, H] for its first last_queries positions (all by default), and what
    encoder_backward needs."""
    B, L = input_ids.shape
    dtype = params["embeddings"]["word"].dtype
    mask_bias = None if attention_mask.all() else (  # [B, 1, 1, L], as in bert.bert
        np.where(attention_mask, 0, -1e9).astype(dtype)[:, None, None, :])
    e = embeddings_forward(input_ids, segment_ids, params["embeddings"])
    x, ln = layer_norm_forward(e, params["embeddings"]["ln"], hp["layer_norm_eps"])
    x, drop = dropout_forward(x, hp["hidden_dropout_prob"], rng)
    x = x.reshape(B, L, -1)
    layers = []
    for i, block in enumerate(params["blocks"]):
        last = i == len(params["blocks"]) - 1
        x, cache = encoder_layer_forward(x, mask_bias, block, hp, rng, n_queries=last_queries if last else None)
        layers.append(cache)
    return x, (input_ids, segment_ids, ln, drop, layers)


def encoder_backward(dx, cache, params, hp):  # dx [B, Lq, H] -> the gradients of embeddings and blocks
    input_ids, segment_ids, ln, drop, layers = cache
    block_grads = []
    for block, layer in zip(params["blocks"][::-1], layers[::-1]):
        dx, g = encoder_layer_backward(dx, layer, block, hp)
        block_grads.append(g)
    de, g_ln = layer_norm_backward(dropout_backward(dx.reshape(-1, dx.shape[-1]), drop), ln,
                                   params["embeddings"]["ln"])
    return {"embeddings": {**embeddings_backward(de, input_ids, segment_ids, params["embeddings"],
                                                 hp["pad_token_id"]), "ln": g_ln},
            "blocks": block_grads[::-1]}


def loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, labels, rng=None):
    """The loss HF's BertForSequenceClassification, BertForTokenClassification or BertForQuestionAnswering
    computes (a float) and its gradient for every array of params (the same nested layout). input_ids,
    segment_ids, attention_mask: ints [B, L] as bert.bert takes them (segment_ids / attention_mask None: all 0 /
    all 1). labels, for a sequence classifier (params with a pooler and a classifier): class ids [B]
    (cross-entropy), floats [B] or [B, 1] for one label (mean squared error), floats [B, num_labels] in [0, 1]
    for multi-label classification (binary cross-entropy); hparams["problem_type"], when set, chooses as in HF.
    For a token classifier (a classifier and no pooler, as init_token_classifier makes them): class ids [B, L],
    IGNORE (-100) where a token has no label ([CLS], [SEP], padding, a word's pieces after its first); the loss
    is the mean cross-entropy over the labelled tokens. For a question-answering model (a "qa" head, as
    init_question_answering makes it): each row's answer (start, end) token positions [B, 2], [CLS]'s (0, 0) for
    no answer; the loss is the mean of the start and end positions' cross-entropies. For a masked language model
    (an "mlm" head and no other, as init_masked_lm makes it): the original token ids [B, L] of the masked
    positions, IGNORE elsewhere (mlm_data.mask_tokens makes both the inputs and these labels); the loss is the
    mean cross-entropy over the masked tokens. rng: a numpy Generator for dropout (training mode); None: no
    dropout (deterministic)."""
    return checked_loss_and_grads(params, *check(params, hparams, input_ids, segment_ids, attention_mask, labels,
                                                 rng))


def check(params, hparams, input_ids, segment_ids, attention_mask, labels, rng):
    """loss_and_grads' arguments checked and completed: (hp, kind, input_ids, segment_ids, attention_mask,
    labels, rng), hp being hparams with every setting the training pass reads, kind the loss's name."""
    hp = {**model_config(params, hparams), **settings(hparams)}
    masked_lm = set(params) == {"embeddings", "blocks", "mlm"}  # as init_masked_lm makes it: no pooler, no NSP
    if not ({"classifier", "qa"} & set(params) or masked_lm):
        raise ValueError("params has no classifier or question-answering head and is not a masked language model "
                         "(the encoder and an MLM head alone): start from init_classifier(params, hparams, "
                         "num_labels), init_token_classifier(params, hparams, num_labels), "
                         "init_question_answering(params, hparams) or init_masked_lm(params, hparams)")
    check_rng(rng)
    input_ids, segment_ids, attention_mask, _ = check_inputs(input_ids, segment_ids, attention_mask, hp)
    if "qa" in params and "classifier" not in params:
        return hp, SPANS, input_ids, segment_ids, attention_mask, check_positions(labels, attention_mask), rng
    if masked_lm:
        return hp, MLM, input_ids, segment_ids, attention_mask, check_token_labels(
            labels, input_ids.shape, len(params["embeddings"]["word"]), "a masked language model",
            ("token ids", "vocab_size")), rng
    num_labels = params["classifier"]["w"].shape[1]
    if "pooler" not in params:
        return hp, TOKENS, input_ids, segment_ids, attention_mask, check_token_labels(
            labels, input_ids.shape, num_labels), rng
    kind = problem_type(hp, num_labels, np.asarray(labels))
    labels = check_labels(labels, kind, len(input_ids), num_labels, params["classifier"]["w"].dtype)
    return hp, kind, input_ids, segment_ids, attention_mask, labels, rng


def checked_loss_and_grads(params, hp, kind, input_ids, segment_ids, attention_mask, labels, rng, weight=1.0):
    """loss_and_grads on what check returns, the loss and the gradients multiplied by weight (a shard of a
    batch weighs its share of the rows, or of the labelled tokens)."""
    head_forward, head_backward, loss_kind = HEADS.get(kind, (sequence_head_forward, sequence_head_backward, kind))
    x, cache = encoder_forward(params, hp, input_ids, segment_ids, attention_mask, rng,
                               1 if head_forward is sequence_head_forward else None)  # [CLS] alone is enough
    logits, labels, head = head_forward(x, labels, params, hp, rng)
    loss_forward, loss_backward = LOSSES[loss_kind]
    loss, loss_cache = loss_forward(logits, labels)
    dlogits = loss_backward(loss_cache)
    if weight != 1:
        dlogits *= dlogits.dtype.type(weight)
    dx, grads = head_backward(dlogits, head, params)
    tied = grads.pop("word", None)  # the MLM decoder's share of the word embeddings' gradient
    grads.update(encoder_backward(dx, cache, params, hp))
    if tied is not None:
        grads["embeddings"]["word"] += tied
    return loss * weight, {key: grads[key] for key in TRAINED if key in grads}
