"""Training a sentence-embedding model with MultipleNegativesRankingLoss: the loss's definition, pooling over
real tokens only, the threaded pass equal to the plain one, bad input, and a short fine-tune on real sentences
that lowers the loss. The gradients against sentence-transformers' autograd are in test_train_golden.py."""
import csv
import os

import numpy as np
import pytest

import model_folder
import train_cases as tc
from conftest import GOLDEN_DIR
from embedding_training import init_embedding_training, mnrl_loss_and_grads
from finetune import parallel_mnrl_loss_and_grads, schedule, train_pairs_epoch, training_batches
from optim import adamw_init, leaves
from pipelines import embed

CLS = {"pooling": "cls", "normalize": False, "dense": []}


@pytest.fixture(scope="module")
def tiny():
    tokenizer, hparams, params = model_folder.load_model_folder(os.path.join(GOLDEN_DIR, "tiny-gelu"))
    return tokenizer, hparams, init_embedding_training(params, hparams)


def columns_of(tokenizer, name):
    return [tokenizer.batch_encode(texts, max_length=64) for texts in tc.mnrl_columns(name)]


@pytest.mark.parametrize("st", [None, CLS, {"pooling": "mean", "normalize": True, "dense": []}])
def test_the_loss_is_the_cross_entropy_of_each_anchor_over_all_candidates(tiny, st):
    tokenizer, hparams, params = tiny
    hparams = dict(hparams, sentence_transformers=st) if st else hparams  # None: a plain BERT, mean pooling
    columns = tc.mnrl_columns("tiny_cls")
    vectors = [embed(texts, tokenizer, params, hparams, normalize=True, max_length=64,
                     pooling=(st or {}).get("pooling", "mean")) for texts in columns]
    scores = 20 * vectors[0] @ np.concatenate(vectors[1:]).T
    log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    expected = -np.mean(np.diag(log_probs))
    loss, _ = mnrl_loss_and_grads(params, hparams, [tokenizer.batch_encode(t, max_length=64) for t in columns])
    assert loss == pytest.approx(expected, rel=1e-5)


def test_padding_changes_nothing(tiny):
    tokenizer, hparams, params = tiny
    columns = columns_of(tokenizer, "tiny_cls")
    padded = [{key: np.pad(column[key], ((0, 0), (0, 5))) for key in ("input_ids", "segment_ids", "attention_mask")}
              for column in columns]
    loss, grads = mnrl_loss_and_grads(params, hparams, columns)
    padded_loss, padded_grads = mnrl_loss_and_grads(params, hparams, padded)
    assert padded_loss == loss
    for (path, a), (_, b) in zip(leaves(grads), leaves(padded_grads)):
        np.testing.assert_array_equal(a, b, err_msg=path)


@pytest.mark.parametrize("name, threads", [("tiny_cls", "3"), ("tiny_cls", "1"), ("minilm", "2")])
def test_threaded_pass_equals_the_plain_one(name, threads, monkeypatch, minilm):
    folder = minilm if name == "minilm" else os.path.join(GOLDEN_DIR, "tiny-gelu")
    tokenizer, hparams, params = model_folder.load_model_folder(folder)
    hparams = dict(hparams, sentence_transformers=tc.MNRL_CASES[name][1] or hparams["sentence_transformers"])
    params = init_embedding_training(params, hparams)
    columns = columns_of(tokenizer, name)
    loss, grads = mnrl_loss_and_grads(params, hparams, columns, 7.5)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", threads)  # 3: shards of 2 rows in each column
    threaded_loss, threaded_grads = parallel_mnrl_loss_and_grads(params, hparams, columns, 7.5)
    assert threaded_loss == pytest.approx(loss, rel=1e-6)
    for (path, a), (_, b) in zip(leaves(grads), leaves(threaded_grads)):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), path
    with_dropout = [parallel_mnrl_loss_and_grads(params, hparams, columns, 7.5, np.random.default_rng(1))[0]
                    for _ in range(2)]
    assert with_dropout[0] == with_dropout[1] != threaded_loss  # reproducible from the seed


def test_bad_input_is_refused(tiny):
    tokenizer, hparams, params = tiny
    columns = columns_of(tokenizer, "tiny_cls")
    full = model_folder.load_model_folder(os.path.join(GOLDEN_DIR, "tiny-gelu"))[2]
    cases = [(full, hparams, columns, 20.0, "init_embedding_training"),
             (params, hparams, columns[:1], 20.0, "at least two"),
             (params, hparams, [columns[0], {k: v[:3] for k, v in columns[1].items()}], 20.0, "same number of rows"),
             (params, hparams, columns, 0.0, "scale must be a positive number"),
             (params, dict(hparams, sentence_transformers=dict(CLS, pooling="max")), columns, 20.0, "'max' pooling"),
             (params, dict(hparams, sentence_transformers=dict(CLS, dense=[{"in": 64}])), columns, 20.0, "Dense")]
    for p, h, c, scale, message in cases:
        with pytest.raises(ValueError, match=message):
            mnrl_loss_and_grads(p, h, c, scale)
    with pytest.raises(ValueError, match="Generator"):
        mnrl_loss_and_grads(params, hparams, columns, rng=1)


def test_a_short_fine_tune_on_real_sentences_lowers_the_loss(tiny, rt_polarity):
    """Anchors: 48 real sentences; positives: the same sentences with every fourth word left out. The tiny
    random model learns to pair them (dropout off)."""
    tokenizer, hparams, start = tiny
    hparams = {**hparams, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    with open(rt_polarity, encoding="utf-8", newline="") as f:
        anchors = [row["text"] for row in csv.DictReader(f)][:48]
    positives = [" ".join(w for i, w in enumerate(text.split()) if i % 4 != 3) for text in anchors]
    columns = [[tokenizer.tokenize(text) for text in texts] for texts in (anchors, positives)]
    params = init_embedding_training(start, hparams)

    def training_loss():
        return mnrl_loss_and_grads(params, hparams, [tokenizer.batch_encode(t, max_length=64)
                                                     for t in (anchors, positives)])[0]

    before, state, rng = training_loss(), adamw_init(params), np.random.default_rng(0)
    lrs = schedule(5 * 6, 0.1, 1e-3)
    for epoch in range(5):
        train_pairs_epoch(params, hparams, tokenizer, columns, training_batches([len(t) for t in columns[0]], 8, rng),
                          state, lrs[6 * epoch:], 64, progress=False)
    assert before > 3 and training_loss() < 1  # log(48 candidates) = 3.9 for a model that cannot tell them apart
