"""Every backward function of layers.py against central finite differences in float64, and the whole training
pass (loss_and_grads) likewise, with and without dropout: the gradient of a scalar along random directions."""
import numpy as np
import pytest

import bert
import layers
import train_cases as tc
from optim import leaves
from training import loss_and_grads

EPS = 1e-6


def rng(seed=0):
    return np.random.default_rng(seed)


def directional_check(f, arrays, grads, seed=1, rtol=1e-6):
    """f() -> float depends on the arrays (changed in place here); grads[i] must be its gradient in arrays[i]:
    compared with (f(a + eps u) - f(a - eps u)) / 2 eps along a random direction u per array."""
    for a, g in zip(arrays, grads):
        u = rng(seed).standard_normal(a.shape)
        a += EPS * u
        up = f()
        a -= 2 * EPS * u
        down = f()
        a += EPS * u
        numeric, analytic = (up - down) / (2 * EPS), float((g * u).sum())
        assert abs(numeric - analytic) <= rtol * max(abs(numeric), 1e-3), (numeric, analytic)


def weighted(y, weights):
    """The scalar sum(y * weights): its gradient in y is weights."""
    return float((y * weights).sum())


def test_dense():
    x, p = rng().standard_normal((6, 5)), {"w": rng(1).standard_normal((5, 3)), "b": rng(2).standard_normal(3)}
    dy = rng(3).standard_normal((6, 3))
    dx, grads = layers.dense_backward(dy.copy(), x, p)
    directional_check(lambda: weighted(layers.dense_forward(x, p), dy), [x, p["w"], p["b"]],
                      [dx, grads["w"], grads["b"]])
    assert layers.dense_backward(dy, x, p, need_dx=False)[0] is None


def test_layer_norm():
    x = rng().standard_normal((6, 8)) * 3 + 1
    p = {"g": 1 + rng(1).standard_normal(8), "b": rng(2).standard_normal(8)}
    dy = rng(3).standard_normal((6, 8))
    y, cache = layers.layer_norm_forward(x, p, 1e-12)
    np.testing.assert_allclose(y, bert.layer_norm(x, p, 1e-12), rtol=1e-5, atol=1e-5)  # bert.py is float32
    dx, grads = layers.layer_norm_backward(dy.copy(), cache, p)
    directional_check(lambda: weighted(layers.layer_norm_forward(x, p, 1e-12)[0], dy), [x, p["g"], p["b"]],
                      [dx, grads["g"], grads["b"]])


@pytest.mark.parametrize("name", sorted(layers.ACTIVATIONS))
def test_activations_match_bert_and_their_derivative(name):
    h = rng().standard_normal((4, 9)) * 3
    h[np.abs(h) < 1e-3] = 0.5  # away from relu's kink
    forward = layers.ACTIVATIONS[name]
    h32 = h.astype(np.float32)
    # bert.py's erf GELU is a float32 rational form (one exp); the training forward keeps erf itself
    np.testing.assert_allclose(forward(h32.copy())[0], bert.ACTIVATIONS[name](h32), rtol=1e-6, atol=1e-6)
    dy = rng(1).standard_normal(h.shape)
    _, dydh = forward(h.copy())
    # the exact GELU's erf is a polynomial approximation within 6e-8: its derivative differs by ~1e-7
    directional_check(lambda: weighted(forward(h.copy())[0], dy), [h], [layers.activation_backward(dy.copy(), dydh)],
                      rtol=1e-6 if name == "gelu" else 1e-8)
    assert set(layers.ACTIVATIONS) == set(bert.ACTIVATIONS)


def test_tanh():
    x, dy = rng().standard_normal((3, 4)), rng(1).standard_normal((3, 4))
    y, cache = layers.tanh_forward(x)
    directional_check(lambda: weighted(layers.tanh_forward(x)[0], dy), [x], [layers.tanh_backward(dy.copy(), cache)])


def test_softmax():
    s, dp = rng().standard_normal((2, 3, 5)), rng(1).standard_normal((2, 3, 5))
    p = bert.softmax(s)
    directional_check(lambda: weighted(bert.softmax(s), dp), [s], [layers.softmax_backward(dp.copy(), p)])


def test_dropout_with_a_fixed_mask():
    x, dy = rng().standard_normal((50, 40)), rng(1).standard_normal((50, 40))
    y, mask = layers.dropout_forward(x, 0.25, rng(7))
    assert set(np.unique(mask)) == {0, 1 / 0.75}
    directional_check(lambda: weighted(layers.dropout_forward(x, 0.25, rng(7))[0], dy), [x],
                      [layers.dropout_backward(dy.copy(), mask)])


def test_dropout_semantics():
    x = np.ones((400, 500), np.float32)
    y, mask = layers.dropout_forward(x, 0.1, rng())
    assert y.dtype == np.float32 and abs((y == 0).mean() - 0.1) < 0.003  # 200,000 draws: 5 standard deviations
    np.testing.assert_allclose(y[y != 0], 1 / 0.9, rtol=1e-7)
    assert layers.dropout_forward(x, 0.1, None) == (x, None)  # no rng: inference, nothing dropped
    assert layers.dropout_forward(x, 0.0, rng())[1] is None
    assert not layers.dropout_forward(x, 1.0, rng())[0].any()  # as torch: p = 1 drops everything


@pytest.mark.parametrize("n_queries", [None, 1])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_masked_multi_head_attention(n_queries, dropout):
    B, L, A, D = 2, 5, 3, 4
    qkv = rng().standard_normal((B, L, 3 * A * D))
    mask_bias = np.where(np.arange(L) < np.array([[5], [3]]), 0, -1e9)[:, None, None, :]
    Lq = n_queries or L
    dc = rng(1).standard_normal((B, Lq, A * D))

    def f():
        return weighted(layers.attention_forward(qkv, mask_bias, A, dropout, rng(3), n_queries)[0], dc)

    context, cache = layers.attention_forward(qkv, mask_bias, A, dropout, rng(3), n_queries)
    dqkv = layers.attention_backward(dc.copy(), cache)
    directional_check(f, [qkv], [dqkv])
    if dropout == 0 and n_queries is None:  # with the dense layers around it, bert.attention
        x = rng(4).standard_normal((B, L, A * D))
        p = {"qkv": {"w": rng(5).standard_normal((A * D, 3 * A * D)), "b": rng(6).standard_normal(3 * A * D)},
             "proj": {"w": rng(7).standard_normal((A * D, A * D)), "b": rng(8).standard_normal(A * D)}}
        context = layers.attention_forward(bert.dense(x, p["qkv"]), mask_bias, A, 0.0, None)[0]
        expected = bert.dense(context, p["proj"])  # bert.attention computes in float32
        np.testing.assert_allclose(bert.attention(x, mask_bias, p, A), expected, rtol=1e-4,
                                   atol=1e-5 * np.abs(expected).max())
    assert not dqkv[1, 3:, A * D:].any()  # padded keys and values get no gradient
    if n_queries:
        assert not dqkv[:, n_queries:, :A * D].any()  # positions that ask nothing get no query gradient


def test_embeddings_scatter_and_skip_the_pad_row():
    p = {"word": rng().standard_normal((7, 4)), "position": rng(1).standard_normal((6, 4)),
         "token_type": rng(2).standard_normal((2, 4))}
    ids = np.array([[1, 3, 3, 0], [0, 5, 1, 1]])  # token 0 is [PAD], also where it is not padding
    segments = np.array([[0, 0, 1, 1], [0, 1, 1, 0]])
    dx = rng(3).standard_normal((8, 4))
    grads = layers.embeddings_backward(dx.copy(), ids, segments, p, pad_token_id=0)
    assert not grads["word"][0].any() and not grads["position"][4:].any()
    grads["word"][0] = dx[ids.ravel() == 0].sum(axis=0)  # what the row's gradient would be, for the check
    directional_check(lambda: weighted(layers.embeddings_forward(ids, segments, p), dx),
                      [p["word"], p["position"], p["token_type"]],
                      [grads["word"], grads["position"], grads["token_type"]])
    other = layers.embeddings_backward(dx.copy(), ids, segments, p, pad_token_id=5)  # the config's pad id
    assert not other["word"][5].any() and other["word"][0].any()


@pytest.mark.parametrize("kind", sorted(layers.LOSSES))
def test_losses(kind):
    logits = rng().standard_normal((4, 5, 2) if kind == layers.SPANS else (4, 3)) * 2
    labels = {"single_label_classification": np.array([0, 2, 1, 2]), "regression": rng(1).standard_normal((4, 3)),
              "multi_label_classification": (rng(1).random((4, 3)) < 0.5).astype(float),
              layers.SPANS: np.array([[0, 0], [1, 3], [4, 4], [2, 1]])}[kind]
    forward, backward = layers.LOSSES[kind]
    loss, cache = forward(logits, labels)
    directional_check(lambda: forward(logits, labels)[0], [logits], [backward(cache)])
    if kind == "single_label_classification":  # -log softmax at the label, averaged
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        assert loss == pytest.approx(-log_probs[np.arange(4), labels].mean(), rel=1e-12)
    if kind == layers.SPANS:  # the mean of the start positions' and the end positions' cross-entropies
        ce = [layers.cross_entropy_forward(logits[..., k], labels[:, k])[0] for k in (0, 1)]
        assert loss == pytest.approx((ce[0] + ce[1]) / 2, rel=1e-12) and ce[0] != pytest.approx(ce[1])
    if kind == "multi_label_classification":  # stable for large logits
        assert np.isfinite(forward(np.array([[1e4, -1e4, 0]]), np.array([[0.0, 1, 1]]))[0])


@pytest.mark.parametrize("name", tc.GRADIENT_CASES)
@pytest.mark.parametrize("dropout", [False, True])
def test_whole_training_pass_against_finite_differences(name, dropout):
    hparams, params = tc.classifier(name, np.float64)
    input_ids, segment_ids, attention_mask, labels = tc.batch(name)
    labels = labels.astype(np.float64) if labels.dtype.kind == "f" else labels

    def loss():
        return loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, labels,
                              rng(5) if dropout else None)[0]

    grads = loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, labels,
                           rng(5) if dropout else None)[1]
    # [PAD]'s row takes no gradient as an input (by design, as HF's padding_idx); a masked language model's decoder,
    # tied to the word embeddings, gives it one (torch's golden gradients check its value); an untied one does not
    tied_mlm = "mlm" in params and "decoder" not in params["mlm"]
    assert grads["embeddings"]["word"][hparams["pad_token_id"]].any() == tied_mlm
    # The backward uses exact GELU's derivative; the forward's erf is bert.erf's approximation (within 1.5e-7).
    # Where an exact GELU feeds the loss through one layer (the MLM head's), the two differ by up to ~1e-5.
    rtol = 1e-5 if "mlm" in params and hparams["hidden_act"] == "gelu" else 2e-6
    arrays, derivatives = zip(*[(p, g) for (path, p), (_, g) in zip(leaves(params), leaves(grads))
                                if path != "embeddings/word"])
    directional_check(loss, arrays, derivatives, rtol=rtol)
    word = params["embeddings"]["word"][1:]  # every row but [PAD]'s, whose input gradient is left out by design
    directional_check(loss, [word], [grads["embeddings"]["word"][1:]], rtol=rtol)
