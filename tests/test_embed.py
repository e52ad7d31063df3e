"""pipelines.embed on the real all-MiniLM-L6-v2 against sentence-transformers / HF transformers
(tests/golden/minilm_embed.npz, written by tests/make_golden_embed.py), with the poolings given explicitly and
without the model's normalization (test_sentence_transformers.py checks embed with the model's own settings)."""
import csv
import os

import numpy as np
import pytest

from conftest import GOLDEN_DIR
from pipelines import embed, embed_parts
from utils import load_tokenizer_hparams_and_params

GOLDEN = np.load(os.path.join(GOLDEN_DIR, "minilm_embed.npz"))
TEXTS = [str(text) for text in GOLDEN["texts"]]  # lengths deliberately unsorted, one over max_length
MAX_LENGTH = int(GOLDEN["max_length"])


@pytest.fixture(scope="module")
def model(minilm):
    """(tokenizer, params, hparams): the order embed takes them in."""
    tokenizer, hparams, params = load_tokenizer_hparams_and_params(minilm)
    return tokenizer, params, hparams


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooler"])
def test_matches_sentence_transformers_and_transformers(model, pooling):
    features = embed(TEXTS, *model, batch_size=3, pooling=pooling, normalize=False, max_length=MAX_LENGTH,
                     progress=False)
    assert features.dtype == np.float32 and features.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(features, GOLDEN[pooling], rtol=0, atol=2e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooler"])
def test_batched_equals_one_at_a_time_in_input_order(model, pooling):
    batched = embed(TEXTS, *model, batch_size=3, pooling=pooling, max_length=MAX_LENGTH, progress=False)
    single = np.concatenate([embed([text], *model, batch_size=1, pooling=pooling, max_length=MAX_LENGTH,
                                   progress=False) for text in TEXTS])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)
    reverse = embed(TEXTS[::-1], *model, batch_size=3, pooling=pooling, max_length=MAX_LENGTH, progress=False)
    np.testing.assert_allclose(reverse[::-1], batched, rtol=0, atol=1e-5)


def test_poolings_differ_and_mean_ignores_padding(model):
    """Padding a short text inside a batch of long ones must not change its mean."""
    short, long_ = "ok", "a much longer sentence that forces a lot of padding onto the short one ."
    alone = embed([short], *model, pooling="mean", normalize=False, progress=False)
    padded = embed([short, long_], *model, batch_size=2, pooling="mean", normalize=False, progress=False)
    np.testing.assert_allclose(padded[0], alone[0], rtol=0, atol=1e-5)
    cls = embed([short], *model, pooling="cls", normalize=False, progress=False)
    assert np.abs(cls - alone).max() > 0.1


def test_progress_bar_only_when_asked(model, capsys):
    embed(TEXTS[:2], *model, progress=False)
    assert capsys.readouterr().err == ""
    embed(TEXTS[:2], *model, progress=True)
    assert "2/2" in capsys.readouterr().err


def test_empty_list_gives_no_rows(model):
    features = embed([], *model, progress=False)
    assert features.shape == (0, 384) and features.dtype == np.float32


def test_bad_arguments_raise_clear_errors(model):
    tokenizer, params, hparams = model
    without_pooler = {name: value for name, value in params.items() if name != "pooler"}
    with pytest.raises(ValueError, match="no pooler: use pooling 'cls' or 'mean'"):
        embed(TEXTS, tokenizer, without_pooler, hparams, pooling="pooler", progress=False)
    assert embed(TEXTS[:1], tokenizer, without_pooler, hparams, pooling="cls", progress=False).shape == (1, 384)
    with pytest.raises(ValueError, match="unknown pooling 'maximum': use one of pooler, cls, mean, max, mean_sqrt_len"):
        embed(TEXTS, *model, pooling="maximum")
    with pytest.raises(TypeError, match="list of texts"):
        embed("one text", *model)
    with pytest.raises(ValueError, match="were they passed the other way round"):
        embed(TEXTS, tokenizer, hparams, params)
    for name, bad in (("batch_size", 0), ("batch_size", 2.5), ("max_length", 1.5), ("max_length", -1)):
        with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {bad}"):
            embed(TEXTS, *model, **{name: bad})


def test_texts_are_cut_to_the_models_position_limit():
    tokenizer, hparams, params = load_tokenizer_hparams_and_params(os.path.join(GOLDEN_DIR, "tiny-gelu"))
    assert hparams["max_position_embeddings"] == 64
    texts = ["the end of the story . " * 40, "short"]
    features = embed(texts, tokenizer, params, hparams, pooling="mean", progress=False)  # max_length 512
    cut = embed(texts, tokenizer, params, hparams, pooling="mean", max_length=64, progress=False)
    np.testing.assert_array_equal(features, cut)


def test_length_batches_cover_every_text_once_and_keep_short_texts_apart():
    from runner import length_batches
    lengths = [500, 10, 12, 480, 11, 490, 9, 505]
    batches = length_batches(lengths, batch_size=8, hidden_size=768)
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))
    assert [sorted(lengths[i] for i in b) for b in batches] == [[9, 10, 11, 12], [480, 490, 500, 505]]
    equal = length_batches([50] * 10, batch_size=4, hidden_size=768)
    assert len(equal) == 3 and max(len(b) for b in equal) == 4  # no more forward passes than needed
    assert length_batches([], batch_size=4, hidden_size=768) == []


def test_embed_tells_each_texts_token_count_before_truncation(model):
    tokenizer, params, hparams = model
    texts = ["short one", "word " * 600, ""]
    features, n_tokens = embed(texts, *model, pooling="mean", max_length=128, progress=False, return_n_tokens=True)
    assert n_tokens.dtype == np.int64 and n_tokens.tolist() == [len(tokenizer.tokenize(t)) + 2 for t in texts]
    assert n_tokens.tolist() == [4, 602, 2]
    np.testing.assert_array_equal(features, embed(texts, *model, pooling="mean", max_length=128, progress=False))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_worker_threads_give_exactly_the_single_threaded_features(model, pooling, rt_polarity, imdb):
    """Real texts of mixed length in batches of 3: each batch runs on one BLAS thread whatever n_threads is."""
    with open(rt_polarity, encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)][:10]
    with open(imdb, encoding="utf-8") as f:
        texts += [row["text"] for row in csv.DictReader(f)][:2]
    one = embed(texts, *model, batch_size=3, pooling=pooling, max_length=64, progress=False, n_threads=1)
    threaded = embed(texts, *model, batch_size=3, pooling=pooling, max_length=64, progress=False, n_threads=3)
    np.testing.assert_array_equal(threaded, one)


def test_a_bad_thread_count_is_named(model):
    with pytest.raises(ValueError, match="n_threads must be a positive integer or None, got 0"):
        embed(TEXTS, *model, n_threads=0, progress=False)


def test_a_stream_of_parts_gives_each_part_its_own_embed(model, rt_polarity):
    """embed_parts: a part's features and token counts are exactly embed's on that part, whatever the parts
    around it (an empty part included), and the next part is read before a part's last batch is out."""
    with open(rt_polarity, encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)][:30]
    parts, read = [texts[:11], [], texts[11:12], texts[12:]], []

    def reading():
        for part in parts:
            read.append(len(part))
            yield part
    stream = embed_parts(reading(), *model, batch_size=4, pooling="mean", max_length=32, n_threads=2)
    for i, (features, n_tokens) in enumerate(stream):
        assert len(read) >= min(i + 2, len(parts))  # the next part was already read
        alone, alone_n = embed(parts[i], *model, batch_size=4, pooling="mean", max_length=32, progress=False,
                               n_threads=2, return_n_tokens=True)
        np.testing.assert_array_equal(features, alone)
        np.testing.assert_array_equal(n_tokens, alone_n)
    assert i == len(parts) - 1


def test_truncate_dim_as_sentence_transformers_encode(model):
    """Matryoshka truncation: after the folder's Normalize module (the rows are then shorter than 1), and before
    normalize=True's scaling (encode's normalize_embeddings=True: unit rows)."""
    n = int(GOLDEN["truncate_dim"])
    truncated = embed(TEXTS, *model, batch_size=3, truncate_dim=n, progress=False)  # the folder's own settings
    assert truncated.dtype == np.float32 and truncated.shape == (len(TEXTS), n)
    np.testing.assert_allclose(truncated, GOLDEN["truncated"], rtol=0, atol=1e-6)
    assert np.linalg.norm(truncated, axis=1).max() < 0.9
    unit = embed(TEXTS, *model, batch_size=3, truncate_dim=n, normalize=True, progress=False)
    np.testing.assert_allclose(unit, GOLDEN["truncated_normalized"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, rtol=0, atol=1e-6)
    raw = embed(TEXTS, *model, batch_size=3, truncate_dim=n, normalize=False, progress=False)
    np.testing.assert_allclose(raw, GOLDEN["mean"][:, :n], rtol=0, atol=2e-5)
    assert embed(TEXTS[:2], *model, truncate_dim=1000, progress=False).shape == (2, 384)  # at most the size, as ST
    assert embed([], *model, truncate_dim=n, progress=False).shape == (0, n)


@pytest.mark.parametrize("precision", ["int8", "ubinary"])
def test_precision_as_sentence_transformers_encode(model, precision):
    quantized = embed(TEXTS, *model, batch_size=3, precision=precision, progress=False)
    expected = GOLDEN[f"encoded_{precision}"]
    assert quantized.dtype == expected.dtype and quantized.shape == expected.shape
    if precision == "ubinary":  # the sign bits: equal but for a value within float32 rounding of 0
        assert (np.unpackbits(quantized) != np.unpackbits(expected)).mean() < 1e-3
    else:  # a value on a bucket's edge, within float32 rounding, may fall in the next bucket
        assert np.abs(quantized.astype(int) - expected).max() <= 1
        assert (quantized != expected).mean() < 1e-2


@pytest.mark.parametrize("kwargs, message", [
    ({"truncate_dim": 0}, "truncate_dim"),
    ({"precision": "int4"}, "precision must be one of float32, int8, uint8, binary, ubinary"),
])
def test_refuses_bad_truncate_dim_and_precision(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        embed(TEXTS, *model, progress=False, **kwargs)


def test_int8_of_one_text_needs_ranges(model):
    with pytest.raises(ValueError, match="quantization ranges need two or more embeddings"):
        embed(TEXTS[:1], *model, precision="int8", progress=False)
