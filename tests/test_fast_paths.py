"""bert.py's speed paths against the plain computation: attention in cache-sized blocks (any block shape
gives the unblocked result, and its scratch memory does not grow as B x A x L^2), the [CLS]-only last
layer, the encoder layer on chunks of sequences, layer norm and the feed-forward network a block of rows at
a time."""
import math
import os
import tracemalloc

import numpy as np
import pytest

import bert
import convert
import utils
from conftest import GOLDEN_DIR
from synthetic import synthetic_state_dict

CONFIG = dict(vocab_size=100, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
              max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12)
B, L, A = 5, 37, CONFIG["num_attention_heads"]


@pytest.fixture(scope="module")
def params():
    return convert.to_params(synthetic_state_dict(CONFIG), CONFIG["num_hidden_layers"])


def inputs(seed=0):
    """x [B, L, H] and the mask bias of sequences padded after 37, 30, 1, 17 and 36 tokens."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, L, CONFIG["hidden_size"]), dtype=np.float32)
    mask = np.arange(L) < np.array([37, 30, 1, 17, 36])[:, None]
    return x, np.where(mask, np.float32(0), np.float32(-1e9))[:, None, None, :]


def attention_formula(x, mask_bias, p):
    """softmax(Q K^T / sqrt(D) + mask) V with every score at once, in float64."""
    D = x.shape[-1] // A
    qkv = (x.astype(np.float64) @ p["qkv"]["w"] + p["qkv"]["b"]).reshape(B, L, 3, A, D).transpose(2, 0, 3, 1, 4)
    scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2) / np.sqrt(D) + mask_bias
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    context = (weights / weights.sum(axis=-1, keepdims=True)) @ qkv[2]
    return context.transpose(0, 2, 1, 3).reshape(B, L, -1) @ p["proj"]["w"] + p["proj"]["b"]


# scores per block -> (sequences, heads, query rows) per block: one row of one head at a time, rows split
# unevenly (37 = 12 x 3 + 1), heads split unevenly (4 = 3 + 1), sequences split unevenly (5 = 2 + 2 + 1),
# everything in one block
BLOCKS = {1: (1, 1, 1), 12 * L: (1, 1, 12), 3 * L * L: (1, 3, L), 2 * A * L * L: (2, A, L), 10 ** 9: (B, A, L)}


@pytest.mark.parametrize("budget", sorted(BLOCKS))
def test_blocked_attention_equals_the_unblocked_formula(params, budget, monkeypatch):
    x, mask_bias = inputs()
    p = params["blocks"][0]["attn"]
    unblocked = bert.attention(x, mask_bias, p, A)  # the default blocks hold all of these scores at once
    assert bert.attention_block(B, L, L, A) == (B, A, L)
    monkeypatch.setattr(bert, "SCORES_PER_BLOCK", budget)
    assert bert.attention_block(B, L, L, A) == BLOCKS[budget]
    blocked = bert.attention(x, mask_bias, p, A)
    assert blocked.dtype == np.float32 and blocked.shape == x.shape
    assert np.abs(blocked - unblocked).max() <= 1e-6
    assert np.abs(blocked - attention_formula(x, mask_bias, p)).max() <= 2e-6
    first = bert.attention(x, mask_bias, p, A, n_queries=2)  # the first two positions alone
    assert first.shape == (B, 2, x.shape[-1]) and np.abs(first - unblocked[:, :2]).max() <= 1e-6


def softmax64(scores):
    scores = scores.astype(np.float64)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("scale, shifted", [(1, False), (30, True), (-30, True)])  # moderate; overflow; underflow
def test_softmax_terms_shift_only_when_a_row_overflows_or_vanishes(scale, shifted):
    rng = np.random.default_rng(0)
    q, k_t = rng.standard_normal((2, 3, 5, 8), dtype=np.float32), rng.standard_normal((2, 3, 8, 7), dtype=np.float32)
    bias = np.where(np.arange(7) < np.array([7, 4])[:, None], np.float32(0), np.float32(-1e9))[:, None, None, :]
    q[1, 2, 4] = np.abs(q[1, 2, 4]) * scale  # one row's scores reach +-100s: exp(s) overflows, or vanishes
    k_t[1, 2] = np.abs(k_t[1, 2]) * 4
    scores = q @ k_t + bias
    largest = scores[1, 2, 4, :4].max()  # of that row's real keys: exp overflows past 88.7; the row vanishes below -69
    assert (largest > 89 or largest < -104) == shifted
    with np.errstate(over="raise", invalid="raise"):  # the overflow is not seen: no warning, no nan
        terms, row_sums = bert.softmax_terms(q, k_t, bias)
    assert terms.shape == scores.shape and row_sums.shape == scores.shape[:-1]
    assert np.abs(terms / row_sums[..., None] - softmax64(scores)).max() <= 1e-6
    assert terms[1, :, :, 4:].max() == 0  # the padded keys: no weight
    # unshifted, the terms are exp of the scores themselves; shifted, every row's largest term is exp(0) = 1
    assert np.array_equal(terms.max(axis=-1) == 1, np.ones(row_sums.shape, bool)) == shifted
    if not shifted:
        assert np.allclose(terms, np.exp(scores), rtol=1e-6, atol=0)


def test_attention_scratch_memory_does_not_grow_with_the_scores(params):
    """At B=32, L=256 all the scores at once would take 32 MiB; the blocks keep them to about 1 MiB."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 256, CONFIG["hidden_size"]), dtype=np.float32)
    all_scores = 32 * A * 256 * 256 * 4
    tracemalloc.start()  # NumPy reports its array memory to tracemalloc
    try:
        bert.attention(x, None, params["blocks"][0]["attn"], A)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    linear = 32 * 256 * CONFIG["hidden_size"] * 4 * 6  # Q, K, V, the context and the output
    assert peak < linear + 4 * bert.SCORES_PER_BLOCK * 4 < all_scores / 2


def test_encoder_layer_scratch_memory_is_one_chunk(params):
    """At B=64, L=256 the layer's output is 3 MiB; beyond it, the layer holds one chunk's intermediates (4
    sequences: Q, K, V, the feed-forward's [1024, I]), not the whole batch's (Q, K, V alone would be 9 MiB)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 256, CONFIG["hidden_size"]), dtype=np.float32)
    output = x.nbytes
    tracemalloc.start()
    try:
        bert.encoder_layer(x, None, params["blocks"][0], A, bert.gelu, 1e-12)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    chunk = 1024 * (8 * CONFIG["hidden_size"] + CONFIG["intermediate_size"]) * 4  # Q, K, V, outputs, intermediate
    assert bert.sequences_per_chunk(64, 256) == 4
    assert peak < output + chunk + 4 * bert.SCORES_PER_BLOCK * 4 < 3 * output


def test_cls_only_last_layer_equals_the_full_pass():
    _, hparams, params = utils.load_tokenizer_hparams_and_params(os.path.join(GOLDEN_DIR, "tiny-gelu"))
    g = np.load(os.path.join(GOLDEN_DIR, "tiny-gelu", "expected.npz"))
    seq, pooled = bert.bert(g["input_ids"], g["segment_ids"], params, hparams, g["attention_mask"])
    cls, cls_pooled = bert.bert(g["input_ids"], g["segment_ids"], params, hparams, g["attention_mask"], cls_only=True)
    assert cls.shape == (len(seq), 1, seq.shape[-1]) and cls.dtype == np.float32
    assert np.abs(cls - seq[:, :1]).max() <= 2e-6  # a few float32 ulps: the products have other shapes
    assert np.abs(cls_pooled - pooled).max() <= 2e-6
    one, one_pooled = bert.bert(g["input_ids"][0], None, params, hparams, cls_only=True)  # [L] in: [1, H] out
    assert one.shape == (1, seq.shape[-1]) and one_pooled.shape == pooled.shape[1:]


def test_layer_norm_over_many_blocks_and_into_a_strided_out(monkeypatch):
    rng = np.random.default_rng(0)
    H = 48
    x = rng.standard_normal((3, 100, H), dtype=np.float32) * 3 + 1
    p = {"g": rng.random(H, dtype=np.float32), "b": rng.random(H, dtype=np.float32)}
    x64 = x.astype(np.float64)
    expected = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-12) * p["g"] + p["b"]
    monkeypatch.setattr(bert, "ELEMENTS_PER_BLOCK", 7 * H)  # 300 rows: 42 blocks of 7 and one of 6
    assert np.abs(bert.layer_norm(x, p, 1e-12) - expected).max() <= 2e-6
    strided = np.zeros((3, 100, 2 * H), dtype=np.float32)[..., ::2]
    assert bert.layer_norm(x, p, 1e-12, out=strided) is strided
    assert np.abs(strided - expected).max() <= 2e-6


def test_layer_norm_with_a_residual_is_add_and_norm(monkeypatch):
    """layer_norm(x, residual=r) is layer_norm(x + r), bit for bit: over many blocks, in place (out=x), into a
    strided out, and with a strided residual (the [CLS] rows of the layer's input, as cls_only gives it)."""
    rng = np.random.default_rng(1)
    H = 48
    x, r = rng.standard_normal((2, 3, 100, H), dtype=np.float32) * 3
    r_before = r.copy()
    p = {"g": rng.random(H, dtype=np.float32), "b": rng.random(H, dtype=np.float32)}
    monkeypatch.setattr(bert, "ELEMENTS_PER_BLOCK", 7 * H)
    expected = bert.layer_norm(x + r, p, 1e-12)
    y = x.copy()
    assert bert.layer_norm(y, p, 1e-12, out=y, residual=r) is y
    np.testing.assert_array_equal(y, expected)
    strided = np.zeros((3, 100, 2 * H), dtype=np.float32)[..., ::2]
    bert.layer_norm(x, p, 1e-12, out=strided, residual=r)
    np.testing.assert_array_equal(strided, expected)
    cls, cls_residual = x[:, :1], r[:, :1]
    np.testing.assert_array_equal(bert.layer_norm(cls, p, 1e-12, residual=cls_residual),
                                  bert.layer_norm(cls + cls_residual, p, 1e-12))
    np.testing.assert_array_equal(r, r_before)


def test_feed_forward_in_blocks_equals_the_formula(params, monkeypatch):
    x, _ = inputs()
    p = params["blocks"][0]["ffn"]
    pre = x.astype(np.float64) @ p["fc"]["w"] + p["fc"]["b"]
    expected = pre / 2 * (1 + np.vectorize(math.erf)(pre / np.sqrt(2))) @ p["proj"]["w"] + p["proj"]["b"]
    whole = bert.feed_forward(x, p, bert.gelu)  # 185 rows: one block
    monkeypatch.setattr(bert, "ELEMENTS_PER_BLOCK", 3 * CONFIG["intermediate_size"])  # blocks of 3 rows
    blocked = bert.feed_forward(x, p, bert.gelu)
    assert blocked.shape == x.shape and blocked.dtype == np.float32
    assert np.abs(blocked - whole).max() <= 1e-6
    assert np.abs(blocked - expected).max() <= 2e-5


@pytest.mark.parametrize("rows, chunks", [(2 * L, [2, 2, 1]), (10, [1] * B)])  # 185 rows: 3 chunks; L > rows: 5
def test_encoder_layer_in_chunks_of_sequences_equals_the_whole_batch(params, rows, chunks, monkeypatch):
    x, mask_bias = inputs()
    layer = (params["blocks"][0], A, bert.gelu, 1e-12)
    whole = bert.encoder_layer(x, mask_bias, *layer)  # 185 rows: one chunk
    whole_cls = bert.encoder_layer(x, mask_bias, *layer, n_queries=1)
    seen = []
    attention = bert.attention
    monkeypatch.setattr(bert, "attention", lambda x, *args: seen.append(len(x)) or attention(x, *args))
    monkeypatch.setattr(bert, "ROWS_PER_CHUNK", rows)
    chunked = bert.encoder_layer(x, mask_bias, *layer)
    assert seen == chunks
    assert chunked.shape == x.shape and chunked.dtype == np.float32
    assert np.abs(chunked - whole).max() <= 1e-6
    cls = bert.encoder_layer(x, mask_bias, *layer, n_queries=1)
    assert cls.shape == (B, 1, x.shape[-1])
    assert np.abs(cls - whole_cls).max() <= 1e-6 and np.abs(cls - whole[:, :1]).max() <= 2e-6
