"""Training layers: each layer's forward, keeping what its backward needs, beside its backward (as llm.c lays
them out). bert.py stays the inference file; the forwards here compute the same float32 arithmetic.

Conventions: `<layer>_forward(...)` returns (output, cache); `<layer>_backward(d_output, cache, ...)` returns
the gradient of the input and, for a layer with parameters, a dict of parameter gradients laid out like its
params. A backward may overwrite the d_output it is given (each is used once) but never its cache or params.
Token-wise layers take 2D arrays [N, features] (N = B*L tokens), so every product is one BLAS call. The dtype
follows the inputs: float32 when training, float64 in the gradient checks.
"""
import numpy as np

from bert import GELU_COEFFICIENTS, GELU_TANH_COEFFICIENTS, gelu_phi, softmax

INV_SQRT_2PI = 1 / np.sqrt(2 * np.pi)
SQRT_2_OVER_PI = np.sqrt(2 / np.pi)
GELU_TANH_CUBIC = 0.044715


def scalar(value, like):
    """value as a scalar of like's dtype, so float32 arithmetic stays float32."""
    return like.dtype.type(value)


# --- Dense layer: y = x w + b -----------------------------------------------------------------------------

def dense_forward(x, p):  # [N, n_in] -> [N, n_out]; the backward needs x, which the caller keeps
    y = x @ p["w"]
    y += p["b"]
    return y


def dense_backward(dy, x, p, need_dx=True):  # dy [N, n_out] -> dx [N, n_in] (None unless needed), grads
    grads = {"w": x.T @ dy, "b": dy.sum(axis=0)}
    return (dy @ p["w"].T if need_dx else None), grads


# --- Layer norm over the last axis --------------------------------------------------------------------------

def layer_norm_forward(x, p, eps):  # [N, H] -> [N, H]; cache: the normalized x and 1/std per row
    x_hat = x - x.mean(axis=-1, keepdims=True)
    rstd = np.square(x_hat).mean(axis=-1, keepdims=True)
    rstd += scalar(eps, x)
    np.sqrt(rstd, out=rstd)
    np.divide(1, rstd, out=rstd)
    x_hat *= rstd
    y = x_hat * p["g"]
    y += p["b"]
    return y, (x_hat, rstd)


def layer_norm_backward(dy, cache, p):
    """dx = rstd * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)), dx_hat = dy * g."""
    x_hat, rstd = cache
    t = dy * x_hat
    grads = {"g": t.sum(axis=0), "b": dy.sum(axis=0)}
    t *= p["g"]  # dx_hat * x_hat
    c2 = t.mean(axis=-1, keepdims=True)
    dy *= p["g"]  # dx_hat, in place
    dy -= dy.mean(axis=-1, keepdims=True)
    dy -= np.multiply(x_hat, c2, out=t)
    dy *= rstd
    return dy, grads


# --- Activations: the forward computes the local derivative dy/dh (the cache), the backward multiplies by it -----
# Computing it in the forward, while h is in cache (training.py calls these on cache-sized blocks), saves the
# backward a pass over h: it becomes one product.

def gelu_forward(h):
    """Exact GELU y = h Phi(h) with bert.gelu's arithmetic; dy/dh = Phi(h) + h phi(h), phi the standard
    normal density exp(-h^2/2) / sqrt(2 pi)."""
    phi = gelu_phi(h, GELU_COEFFICIENTS)
    dydh = np.square(h)
    dydh *= scalar(-0.5, h)
    np.exp(dydh, out=dydh)
    dydh *= h
    dydh *= scalar(INV_SQRT_2PI, h)
    dydh += phi
    return np.multiply(h, phi, out=phi), dydh


def gelu_tanh_forward(h):
    """GELU's tanh form y = h * phi, phi = (1 + tanh(u)) / 2, u = sqrt(2/pi) (h + 0.044715 h^3), with
    bert.gelu_tanh's arithmetic; dy/dh = phi + h * 2 phi (1 - phi) * sqrt(2/pi) (1 + 3 * 0.044715 h^2), as
    1 - tanh(u)^2 = 4 phi (1 - phi)."""
    phi = gelu_phi(h, GELU_TANH_COEFFICIENTS)
    dydh = np.square(h)
    dydh *= scalar(3 * GELU_TANH_CUBIC, h)
    dydh += 1
    dydh *= h
    dydh *= scalar(2 * SQRT_2_OVER_PI, h)
    dydh *= phi
    dydh *= 1 - phi
    dydh += phi
    return np.multiply(h, phi, out=phi), dydh


def relu_forward(h):
    return np.maximum(h, 0), (h > 0).astype(h.dtype)


def activation_backward(dy, dydh):
    dy *= dydh
    return dy


ACTIVATIONS = {"gelu": gelu_forward, "gelu_new": gelu_tanh_forward, "gelu_pytorch_tanh": gelu_tanh_forward,
               "relu": relu_forward}


def tanh_forward(x):
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, y):
    dy *= 1 - np.square(y)
    return dy


# --- Dropout (training only): zero each entry with probability `prob`, scale the rest by 1 / (1 - prob) -----

def dropout_forward(x, prob, rng):
    """The cache is the mask of factors (0 or 1 / (1 - prob)); None (and x itself) when rng is None or
    prob is 0: no dropout."""
    if rng is None or prob == 0:
        return x, None
    keep = rng.random(x.shape, dtype=np.float32) >= np.float32(prob)
    mask = keep * scalar(1 / (1 - prob) if prob < 1 else 0, x)
    return x * mask, mask


def dropout_backward(dy, mask):  # leaves dy as it is: a residual branch may still need it
    return dy if mask is None else dy * mask


# --- Softmax over the last axis -----------------------------------------------------------------------------

def softmax_backward(dp, p):
    """ds = p * (dp - sum(dp * p)) row by row, with p the softmax's output."""
    dp -= (dp * p).sum(axis=-1, keepdims=True)
    dp *= p
    return dp


# --- Masked multi-head self-attention (between the fused Q|K|V dense layer and the output dense layer) -----

def split_heads(qkv, n_head):  # [B, L, 3H] -> q, k, v: [B, A, L, D] views
    B, L, H3 = qkv.shape
    return qkv.reshape(B, L, 3, n_head, H3 // (3 * n_head)).transpose(2, 0, 3, 1, 4)


def attention_forward(qkv, mask_bias, n_head, dropout_prob, rng, n_queries=None):
    """softmax(Q K^T / sqrt(D) + mask) V for all heads at once: qkv [B, L, 3H] -> context [B, Lq, H].
    mask_bias [B, 1, 1, L] (or None) adds a large negative score for padded keys; the attention weights are
    dropped out with dropout_prob. n_queries: only the first n_queries positions ask (all of them by default);
    every position is still a key and a value."""
    q, k, v = split_heads(qkv, n_head)
    B, A, L, D = q.shape
    q = q[:, :, :n_queries]
    scores = (q * scalar(1 / np.sqrt(D), q)) @ k.transpose(0, 1, 3, 2)  # [B, A, Lq, L]
    if mask_bias is not None:
        scores += mask_bias
    probs = softmax(scores, out=scores)
    dropped, mask = dropout_forward(probs, dropout_prob, rng)
    context = dropped @ v  # [B, A, Lq, D]
    context = context.transpose(0, 2, 1, 3).reshape(B, -1, A * D)
    return context, (qkv, n_head, probs, dropped, mask)


def attention_backward(dcontext, cache):  # dcontext [B, Lq, H] -> dqkv [B, L, 3H]
    qkv, n_head, probs, dropped, mask = cache
    q, k, v = split_heads(qkv, n_head)
    B, A, L, D = q.shape
    Lq = dcontext.shape[1]
    dc = dcontext.reshape(B, Lq, A, D).transpose(0, 2, 1, 3)  # [B, A, Lq, D]
    dqkv = (np.empty if Lq == L else np.zeros)(qkv.shape, dtype=dcontext.dtype)
    dq, dk, dv = split_heads(dqkv, n_head)
    np.matmul(dropped.transpose(0, 1, 3, 2), dc, out=dv)  # [B, A, L, D]
    ds = dc @ v.transpose(0, 1, 3, 2)  # d dropped, then d probs, then d scores: [B, A, Lq, L]
    ds = softmax_backward(dropout_backward(ds, mask), probs)
    ds *= scalar(1 / np.sqrt(D), ds)
    np.matmul(ds, k, out=dq[:, :, :Lq])
    np.matmul(ds.transpose(0, 1, 3, 2), q[:, :, :Lq], out=dk)
    return dqkv


# --- Embeddings: word + position + token type ---------------------------------------------------------------

def embeddings_forward(input_ids, segment_ids, p):  # ints [B, L] -> [B*L, H]
    L = input_ids.shape[1]
    x = p["word"][input_ids] + p["position"][:L] + p["token_type"][segment_ids]
    return x.reshape(-1, x.shape[-1])


def embeddings_backward(dx, input_ids, segment_ids, p, pad_token_id):
    """Gradients of the three tables from dx [B*L, H]: each token's row gets the sum of its positions'
    gradients (the [PAD] row pad_token_id none, as HF's padding_idx); position rows beyond L get zero."""
    B, L = input_ids.shape
    ids = input_ids.ravel()
    real = ids != pad_token_id
    word = np.zeros(p["word"].shape, dtype=dx.dtype)  # calloc: pages no row touches stay unwritten
    np.add.at(word, ids[real], dx[real])
    position = np.zeros(p["position"].shape, dtype=dx.dtype)
    dx.reshape(B, L, -1).sum(axis=0, out=position[:L])
    token_type = np.eye(len(p["token_type"]), dtype=dx.dtype)[segment_ids.ravel()].T @ dx  # one-hot product
    return {"word": word, "position": position, "token_type": token_type}


# --- Losses, as HF's models compute them; each returns a float and the cache ---------------------------------

def cross_entropy_forward(logits, labels):  # logits [B, C], labels ints [B]: mean -log softmax(logits)[label]
    """-log softmax(z)[label] = log sum exp(z - max) - (z - max)[label], with one exponential per logit (a masked
    language model has 30,522 logits a token); the cache is the softmax."""
    probs = logits - logits.max(axis=-1, keepdims=True)
    picked = probs[np.arange(len(labels)), labels]  # the labels' shifted logits (a copy)
    np.exp(probs, out=probs)
    sums = probs.sum(axis=-1, keepdims=True)
    probs /= sums
    return float((np.log(sums[:, 0]) - picked).mean()), (probs, labels)


def cross_entropy_backward(cache):
    probs, labels = cache
    dlogits = probs.copy()
    dlogits[np.arange(len(labels)), labels] -= 1
    dlogits /= len(labels)
    return dlogits


def mse_forward(logits, labels):  # mean squared error; labels have logits' size
    diff = logits - labels.reshape(logits.shape)
    return float(np.square(diff).mean()), diff


def mse_backward(diff):
    return diff * scalar(2 / diff.size, diff)


def bce_with_logits_forward(logits, labels):  # labels in [0, 1], logits' shape: mean binary cross-entropy
    loss = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
    return float(loss.mean()), (logits, labels)


def bce_with_logits_backward(cache):
    logits, labels = cache
    sigmoid = 0.5 * (1 + np.tanh(0.5 * logits))  # 1 / (1 + exp(-z)), without overflow
    return (sigmoid - labels) * scalar(1 / logits.size, logits)


def span_forward(logits, positions):  # logits [B, L, 2], positions ints [B, 2]: the answers' start and end tokens
    """BertForQuestionAnswering's loss: (cross-entropy of the start positions + that of the end positions) / 2,
    each over the L tokens of every input."""
    caches = [cross_entropy_forward(logits[..., k], positions[:, k]) for k in (0, 1)]
    return (caches[0][0] + caches[1][0]) / 2, (caches[0][1], caches[1][1])


def span_backward(cache):
    dlogits = np.stack([cross_entropy_backward(c) for c in cache], axis=-1)  # [B, L, 2]
    dlogits *= scalar(0.5, dlogits)
    return dlogits


SPANS = "question_answering"  # the loss's name for a question-answering model (params with a "qa" head)
TOKENS = "token_classification"  # the name of a token classifier (params without a pooler)
MLM = "masked_lm"  # the name of a masked language model (params with an "mlm" head)
IGNORE = -100  # a token label the loss skips, as torch's CrossEntropyLoss(ignore_index=-100) in HF's models
LOSSES = {"single_label_classification": (cross_entropy_forward, cross_entropy_backward),
          "regression": (mse_forward, mse_backward),
          "multi_label_classification": (bce_with_logits_forward, bce_with_logits_backward),
          SPANS: (span_forward, span_backward)}
