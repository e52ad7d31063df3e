"""bert.py against HF transformers' golden outputs (tests/make_golden.py), and its behaviour on bad input."""
import math
import os
import warnings

import numpy as np
import pytest

import bert
import convert
import utils
from conftest import GOLDEN_DIR, flat
from synthetic import BERT_BASE_CONFIG, synthetic_state_dict

# Acceptance tolerances (max |difference| from HF, float32)
TOL = {"hidden": 5e-5, "pooled": 5e-5, "mlm_logits": 2e-4, "nsp_logits": 5e-5}
TINY = ["tiny-gelu", "tiny-gelu-new"]


def load(name):
    return utils.load_tokenizer_hparams_and_params(os.path.join(GOLDEN_DIR, name))


def golden(name):
    return dict(np.load(os.path.join(GOLDEN_DIR, name)))


def run(params, hparams, g, mlm_positions=slice(None)):
    seq, pooled = bert.bert(g["input_ids"], g["segment_ids"], params, hparams, g["attention_mask"])
    out = {"hidden": seq, "pooled": pooled}
    if "nsp" in params:
        out["nsp_logits"] = bert.nsp_head(pooled, params)
    if "mlm_logits" in g:
        out["mlm_logits"] = bert.mlm_head(seq[:, mlm_positions], params, hparams)
    return out


def assert_matches(out, g, mlm_positions=slice(None)):
    """Every output within tolerance; per-token outputs compared at real (not padding) positions."""
    real = g["attention_mask"].astype(bool)
    for key, value in out.items():
        assert value.dtype == np.float32, key
        assert value.shape == g[key].shape, key
        a, b = value, g[key]
        if key == "hidden":
            a, b = a[real], b[real]
        if key == "mlm_logits":
            a, b = a[real[:, mlm_positions]], b[real[:, mlm_positions]]
        assert np.abs(a - b).max() <= TOL[key], (key, np.abs(a - b).max())


@pytest.mark.parametrize("name", TINY)
def test_tiny_checkpoints_match_hf(name):
    _, hparams, params = load(name)
    g = golden(f"{name}/expected.npz")
    assert_matches(run(params, hparams, g), g)


def test_tiny_checkpoint_with_relu_matches_hf():
    _, hparams, params = load("tiny-gelu")
    g = golden("tiny-gelu/expected-relu.npz")
    assert_matches(run(params, dict(hparams, hidden_act="relu"), g), g)


@pytest.mark.parametrize("name", TINY)
def test_our_tokenizer_gives_the_golden_inputs(name):
    tokenizer, _, _ = load(name)
    g = golden(f"{name}/expected.npz")
    batch = tokenizer.batch_encode(list(g["text_a"]), list(g["text_b"]))
    for key in ("input_ids", "segment_ids", "attention_mask"):
        np.testing.assert_array_equal(batch[key], g[key])


def test_bert_base_shape_matches_hf():
    """12 layers x 768 with synthetic weights (the same as make_golden.py built for HF)."""
    params = convert.to_params(synthetic_state_dict(BERT_BASE_CONFIG), BERT_BASE_CONFIG["num_hidden_layers"])
    g = golden("bert-base-shape.npz")
    assert_matches(run(params, BERT_BASE_CONFIG, g, g["mlm_positions"]), g, g["mlm_positions"])


def test_real_minilm_matches_hf(minilm):
    _, hparams, params = utils.load_tokenizer_hparams_and_params(minilm)
    g = golden("minilm.npz")
    assert_matches(run(params, hparams, g), g)


@pytest.mark.parametrize("name", TINY)
def test_padding_does_not_change_outputs(name):
    _, hparams, params = load(name)
    g = golden(f"{name}/expected.npz")
    seq, pooled = bert.bert(g["input_ids"], g["segment_ids"], params, hparams, g["attention_mask"])
    for i, mask in enumerate(g["attention_mask"].astype(bool)):
        alone, alone_pooled = bert.bert(g["input_ids"][i][mask], g["segment_ids"][i][mask], params, hparams)
        assert np.abs(alone - seq[i][mask]).max() <= 1e-5
        assert np.abs(alone_pooled - pooled[i]).max() <= 1e-5


def test_one_sequence_has_no_batch_axis():
    _, hparams, params = load("tiny-gelu")
    ids = np.array([2, 1002, 1500, 3, 1200, 3])
    seq, pooled = bert.bert(ids, None, params, hparams)
    assert seq.shape == (6, 64) and pooled.shape == (64,)
    assert bert.mlm_head(seq, params, hparams).shape == (6, hparams["vocab_size"])
    assert bert.nsp_head(pooled, params).shape == (2,)
    batched, _ = bert.bert(ids[None], np.zeros((1, 6), int), params, hparams, np.ones((1, 6), int))
    np.testing.assert_array_equal(seq, batched[0])


def test_erf_matches_math_erf_on_a_dense_grid():
    x = np.linspace(-7, 7, 1_400_001, dtype=np.float32)
    reference = np.array([math.erf(v) for v in x.astype(float)])
    y = bert.erf(x)
    assert y.dtype == np.float32
    assert np.abs(y - reference).max() <= 1.5e-7  # float32 evaluation: about 2 ulp near 1
    approx = np.tanh(x * np.polynomial.polynomial.polyval(x.astype(float) ** 2, bert.ERF_COEFFICIENTS))
    assert np.abs(approx - reference).max() <= 1e-7  # the approximation itself


def test_erf_edge_values():
    x = np.array([0, -0.0, np.inf, -np.inf, 30, -30, 1e30, np.nan], dtype=np.float32)
    y = bert.erf(x)
    np.testing.assert_array_equal(y[:7], [0, 0, 1, -1, 1, -1, 1])
    assert np.isnan(y[7])


def test_gelu_variants_against_their_formulas():
    x = np.linspace(-10, 10, 20001, dtype=np.float32)
    exact = np.array([v / 2 * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(float)])
    assert np.abs(bert.gelu(x) - exact).max() <= 1e-6
    t = x.astype(float)
    tanh_form = t / 2 * (1 + np.tanh(math.sqrt(2 / math.pi) * (t + 0.044715 * t ** 3)))
    assert np.abs(bert.gelu_tanh(x) - tanh_form).max() <= 1e-6
    assert np.abs(bert.gelu(x) - tanh_form).max() > 1e-4  # the exact GELU is not the tanh approximation


def test_gelu_edge_values():
    x = np.array([0, 20, -20, 3e38, -3e38, np.inf, np.nan], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for gelu in (bert.gelu, bert.gelu_tanh):
            y = gelu(x)
            np.testing.assert_array_equal(y[:6], x[[0, 1, 0, 3, 0, 5]])  # GELU(x) = x or 0 at these
            assert np.isnan(y[6]) and not np.signbit(y[0]) and np.signbit(y[2]) and np.signbit(y[4])


@pytest.mark.parametrize("name", sorted(bert.ACTIVATIONS))
def test_activation_in_place_equals_the_pure_call(name):
    activation = bert.ACTIVATIONS[name]
    x = np.linspace(-6, 6, 3000, dtype=np.float32).reshape(3, -1)
    expected = activation(x)
    assert expected.dtype == np.float32 and not np.shares_memory(expected, x)
    assert activation(x, out=x) is x
    np.testing.assert_array_equal(x, expected)


def test_layer_norm_and_softmax_take_out_like_the_activations():
    """One convention: a new array by default, in place with out=x."""
    x = np.random.default_rng(0).standard_normal((2, 3, 16)).astype(np.float32)
    p = {"g": np.full(16, 2, np.float32), "b": np.ones(16, np.float32)}
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12) * 2 + 1
    probs = np.exp(x - x.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for fn, want in ((lambda a, **kw: bert.layer_norm(a, p, 1e-12, **kw), expected), (bert.softmax, probs)):
        a = x.copy()
        y = fn(a)
        assert y is not a and y.dtype == np.float32
        np.testing.assert_array_equal(a, x)
        np.testing.assert_allclose(y, want, atol=1e-5)
        assert fn(a, out=a) is a
        np.testing.assert_array_equal(a, y)


def test_the_model_leaves_its_inputs_and_params_untouched():
    _, hparams, params = load("tiny-gelu")
    before = {name: a.copy() for name, a in flat(params).items()}
    ids, mask = np.array([[2, 1002, 1003, 3], [2, 1004, 3, 0]]), np.array([[1, 1, 1, 1], [1, 1, 1, 0]])
    seq, pooled = bert.bert(ids, None, params, hparams, mask)
    seq_before, pooled_before = seq.copy(), pooled.copy()
    bert.mlm_head(seq, params, hparams), bert.nsp_head(pooled, params)
    np.testing.assert_array_equal(seq, seq_before)
    np.testing.assert_array_equal(pooled, pooled_before)
    for name, a in flat(params).items():
        np.testing.assert_array_equal(a, before[name], err_msg=name)


def test_missing_heads_are_named():
    _, hparams, params = load("tiny-gelu")
    seq, pooled = bert.bert(np.array([2, 1002, 3]), None, params, hparams)
    bare = {k: v for k, v in params.items() if k not in ("mlm", "nsp")}
    with pytest.raises(ValueError, match="this checkpoint has no MLM head"):
        bert.mlm_head(seq, bare, hparams)
    with pytest.raises(ValueError, match="this checkpoint has no NSP head"):
        bert.nsp_head(pooled, bare)


@pytest.mark.parametrize("change, message", [
    (dict(input_ids=[[2, 5000, 3]]), r"input_ids must lie in \[0, 2506\)"),
    (dict(input_ids=[[2, -1, 3]]), r"input_ids must lie in \[0, 2506\)"),
    (dict(segment_ids=[[0, 2, 0]]), r"segment_ids must lie in \[0, 2\)"),
    (dict(input_ids=[[2] * 65], segment_ids=None, attention_mask=None), "exceeds max_position_embeddings 64"),
    (dict(segment_ids=[[0, 0]]), "segment_ids has shape"),
    (dict(attention_mask=[[1, 1, 1], [1, 1, 1]]), "attention_mask has shape"),
    (dict(attention_mask=[[0, 0, 0]]), "row of all zeros"),
    (dict(attention_mask=[[1, 2, 1]]), "only 0"),
    (dict(input_ids=[[2.0, 1002.0, 3.0]]), "must be an integer array"),
    (dict(segment_ids=[[False, False, True]]), "segment_ids must be an integer array, got dtype bool"),
    (dict(input_ids=[[]], segment_ids=None, attention_mask=None), "L > 0"),
    (dict(input_ids=[[[2, 1002, 3]]], segment_ids=None, attention_mask=None), r"shape \[B, L\]"),
])
def test_bad_input_is_a_clear_value_error(change, message):
    _, hparams, params = load("tiny-gelu")
    inputs = dict(dict(input_ids=[[2, 1002, 3]], segment_ids=[[0, 0, 0]], attention_mask=[[1, 1, 1]]), **change)
    with pytest.raises(ValueError, match=message):
        bert.bert(inputs["input_ids"], inputs["segment_ids"], params, hparams, inputs["attention_mask"])


def test_params_and_hparams_the_wrong_way_round_are_named():
    _, hparams, params = load("tiny-gelu")
    seq, _ = bert.bert([2, 1002, 3], None, params, hparams)
    with pytest.raises(ValueError, match="were they passed the other way round"):
        bert.bert([2, 1002, 3], None, hparams, params)
    with pytest.raises(ValueError, match="were they passed the other way round"):
        bert.mlm_head(seq, hparams, params)


def test_heads_take_any_float_features_of_the_right_width():
    _, hparams, params = load("tiny-gelu")
    seq, pooled = bert.bert([2, 1002, 3], None, params, hparams)
    logits = bert.mlm_head(seq, params, hparams)
    assert bert.mlm_head(seq.astype(np.float64), params, hparams).dtype == np.float32
    np.testing.assert_allclose(bert.mlm_head(seq.tolist(), params, hparams), logits, atol=1e-5)
    assert bert.mlm_head(seq[:0], params, hparams).shape == (0, hparams["vocab_size"])  # nothing masked
    assert bert.nsp_head(pooled.astype(np.float64), params).dtype == np.float32
    for bad in (None, seq[:, :-1]):
        with pytest.raises(ValueError, match=r"seq_output must have shape \[\.\.\., 64\]"):
            bert.mlm_head(bad, params, hparams)
    with pytest.raises(ValueError, match=r"pooled_output must have shape \[\.\.\., 64\]"):
        bert.nsp_head(pooled[:-1], params)


def test_task_heads_give_the_shapes_of_their_hf_classes():
    """classifier_head / token_classifier_head / qa_head are dense layers on the pooled or per-token output."""
    _, hparams, params = load("tiny-gelu")
    rng = np.random.default_rng(0)
    H = hparams["hidden_size"]
    params = dict(params, classifier={"w": rng.standard_normal((H, 3), np.float32), "b": np.ones(3, np.float32)},
                  qa={"w": rng.standard_normal((H, 2), np.float32), "b": np.zeros(2, np.float32)})
    seq, pooled = bert.bert([[2, 1002, 3], [2, 1003, 3]], None, params, hparams)
    logits = bert.classifier_head(pooled, params)
    assert logits.shape == (2, 3) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, pooled @ params["classifier"]["w"] + 1, rtol=1e-5)
    assert bert.token_classifier_head(seq, params).shape == (2, 3, 3)
    start, end = bert.qa_head(seq, params)
    assert start.shape == end.shape == (2, 3)
    np.testing.assert_allclose(end, seq @ params["qa"]["w"][:, 1], rtol=1e-5)
    assert bert.classifier_head(pooled[0].astype(np.float64), params).shape == (3,)


def test_missing_task_heads_are_named():
    _, hparams, params = load("tiny-gelu")
    seq, pooled = bert.bert([2, 1002, 3], None, params, hparams)
    with pytest.raises(ValueError, match="this checkpoint has no classifier head"):
        bert.classifier_head(pooled, params)
    with pytest.raises(ValueError, match="this checkpoint has no classifier head"):
        bert.token_classifier_head(seq, params)
    with pytest.raises(ValueError, match="this checkpoint has no question-answering head"):
        bert.qa_head(seq, params)
    with_head = dict(params, classifier={"w": np.zeros((64, 2), np.float32), "b": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match="no pooler, so no pooled_output for the classifier head"):
        bert.classifier_head(None, with_head)


def test_config_defaults_live_in_one_table():
    _, hparams, params = load("tiny-gelu")
    bare = {k: v for k, v in hparams.items() if k not in bert.CONFIG_DEFAULTS}
    assert bert.config_with_defaults(bare) == dict(bare, **bert.CONFIG_DEFAULTS)
    np.testing.assert_array_equal(bert.bert([2, 1002, 3], None, params, bare)[0],
                                  bert.bert([2, 1002, 3], None, params, dict(bare, **bert.CONFIG_DEFAULTS))[0])
    with pytest.raises(ValueError, match="hparams is not a BERT config: no integer intermediate_size"):
        bert.bert([2, 3], None, params, {k: v for k, v in hparams.items() if k != "intermediate_size"})


def test_unknown_activation_is_named():
    _, hparams, params = load("tiny-gelu")
    with pytest.raises(ValueError, match="hidden_act 'swish' is not supported"):
        bert.bert([2, 3], None, params, dict(hparams, hidden_act="swish"))
