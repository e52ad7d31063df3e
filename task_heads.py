"""The task heads of fine-tuning, each one's training forward beside its backward (as layers.py lays out the
encoder's layers): a sequence classifier's (pooler, dropout, classifier on [CLS]), a token classifier's (dropout,
classifier on each labelled token), a question-answering model's (start and end logits of every token) and a
masked language model's (transform, layer norm, decoder tied to the word embeddings, on the masked tokens).

`<head>_forward(x, labels, params, hp, rng)` takes the encoder's output x [B, Lq, H] and returns (logits, the
labels as the loss takes them, cache); `<head>_backward(dlogits, cache, params)` returns (dx, {params key:
gradients}). HEADS names each kind of model's head and loss (layers.LOSSES); a sequence classifier is the
default, its loss its problem type.
"""
import numpy as np

from bert import mlm_decoder
from layers import (ACTIVATIONS, IGNORE, MLM, SPANS, TOKENS, activation_backward, dense_backward, dense_forward,
                    dropout_backward, dropout_forward, layer_norm_backward, layer_norm_forward, tanh_backward,
                    tanh_forward)


def sequence_head_forward(x, labels, params, hp, rng):  # x [B, 1, H]: [CLS] -> logits [B, num_labels]
    cls = x[:, 0]
    pooled, pooler = tanh_forward(dense_forward(cls, params["pooler"]))
    pooled_dropped, drop_pooled = dropout_forward(pooled, hp["classifier_dropout"], rng)
    return dense_forward(pooled_dropped, params["classifier"]), labels, (cls, pooler, pooled_dropped, drop_pooled)


def sequence_head_backward(dlogits, cache, params):  # -> dx [B, 1, H], the pooler's and classifier's gradients
    cls, pooler, pooled_dropped, drop_pooled = cache
    grads = {}
    dpooled, grads["classifier"] = dense_backward(dlogits, pooled_dropped, params["classifier"])
    dpooled = tanh_backward(dropout_backward(dpooled, drop_pooled), pooler)
    dcls, grads["pooler"] = dense_backward(dpooled, cls, params["pooler"])
    return dcls[:, None, :], grads


def token_head_forward(x, labels, params, hp, rng):  # x [B, L, H] -> logits [N, num_labels], labels [N]
    """The classifier on the N labelled tokens alone (labels not IGNORE): the others' logits would get zero
    gradient."""
    labelled = np.flatnonzero(labels.reshape(-1) != IGNORE)  # flat positions in B * L
    h = x.reshape(-1, x.shape[-1])[labelled]
    h_dropped, drop = dropout_forward(h, hp["classifier_dropout"], rng)
    return (dense_forward(h_dropped, params["classifier"]), labels.reshape(-1)[labelled],
            (x.shape, labelled, h_dropped, drop))


def token_head_backward(dlogits, cache, params):  # -> dx [B, L, H] (zero where unlabelled), the classifier's
    shape, labelled, h_dropped, drop = cache
    dh, g = dense_backward(dlogits, h_dropped, params["classifier"])
    dx = np.zeros((shape[0] * shape[1], shape[2]), dh.dtype)
    dx[labelled] = dropout_backward(dh, drop)
    return dx.reshape(shape), {"classifier": g}


def span_head_forward(x, positions, params, hp, rng):  # x [B, L, H] -> logits [B, L, 2]: start, end
    x2 = x.reshape(-1, x.shape[-1])
    return dense_forward(x2, params["qa"]).reshape(*x.shape[:2], 2), positions, x2


def span_head_backward(dlogits, x2, params):  # -> dx [B, L, H], the qa head's gradients
    dx, g = dense_backward(dlogits.reshape(-1, 2), x2, params["qa"])
    return dx.reshape(*dlogits.shape[:2], -1), {"qa": g}


def mlm_head_forward(x, labels, params, hp, rng):  # x [B, L, H] -> logits [N, V] for the N masked tokens
    """BertForMaskedLM's head on the N tokens with a label (labels not IGNORE: the masked ones; the others' logits
    would get zero gradient): dense, activation, layer norm, then the decoder, the word embeddings transposed
    (tied; or the head's own "decoder" [V, H]), plus a bias per word. No dropout (HF's head has none)."""
    p = params["mlm"]
    labelled = np.flatnonzero(labels.reshape(-1) != IGNORE)
    h = x.reshape(-1, x.shape[-1])[labelled]
    a, dadt = ACTIVATIONS[hp["hidden_act"]](dense_forward(h, p["transform"]))
    u, ln = layer_norm_forward(a, p["ln"], hp["layer_norm_eps"])
    logits = u @ mlm_decoder(params).T
    logits += p["bias"]
    return logits, labels.reshape(-1)[labelled], (x.shape, labelled, h, dadt, ln, u)


def mlm_head_backward(dlogits, cache, params):  # -> dx [B, L, H] (zero where unmasked), the head's gradients
    """The gradients of the head's own arrays, and the decoder's [V, H]: the head's own "decoder", or (tied) under
    "word", the decoder's share of the word embeddings' gradient, which the caller adds to the embeddings' own."""
    shape, labelled, h, dadt, ln, u = cache
    da, g_ln = layer_norm_backward(dlogits @ mlm_decoder(params), ln, params["mlm"]["ln"])
    dh, g_transform = dense_backward(activation_backward(da, dadt), h, params["mlm"]["transform"])
    dx = np.zeros((shape[0] * shape[1], shape[2]), dh.dtype)
    dx[labelled] = dh
    grads = {"transform": g_transform, "ln": g_ln, "bias": dlogits.sum(axis=0)}  # in params' order
    if "decoder" in params["mlm"]:
        return dx.reshape(shape), {"mlm": {**grads, "decoder": dlogits.T @ u}}
    return dx.reshape(shape), {"mlm": grads, "word": dlogits.T @ u}


# each kind of model's head (forward, backward) and loss; a sequence classifier's loss is its problem type
HEADS = {TOKENS: (token_head_forward, token_head_backward, "single_label_classification"),
         SPANS: (span_head_forward, span_head_backward, SPANS),
         MLM: (mlm_head_forward, mlm_head_backward, "single_label_classification")}
