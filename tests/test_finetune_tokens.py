"""Fine-tuning a token classifier: init_token_classifier, aligning word labels to tokens, batching them, the
loss, bad labels, a short real fine-tune that lowers the loss, and save_pretrained -> the
token-classification pipeline. The gradients against torch autograd are in test_train_golden.py."""
import csv
import json
import os

import numpy as np
import pytest

import model_folder
import train_cases as tc
from bert import bert, token_classifier_head
from conftest import GOLDEN_DIR
from finetune import batch_labels, predict_tokens, schedule, token_labels, train_epoch, training_batches
from optim import adamw_init, leaves
from pipelines import token_classification
from layers import IGNORE
from training import init_token_classifier, loss_and_grads

TINY = os.path.join(GOLDEN_DIR, "tiny-gelu")


@pytest.fixture(scope="module")
def tiny():
    return model_folder.load_model_folder(TINY)


def test_init_token_classifier_has_no_pooler_and_a_seeded_head(tiny):
    _, hparams, params = tiny
    assert "pooler" in params
    new = init_token_classifier(params, hparams, 4, seed=5)
    assert sorted(new) == ["blocks", "classifier", "embeddings"]  # as BertForTokenClassification
    assert new["classifier"]["w"].shape == (64, 4) and not new["classifier"]["b"].any()
    np.testing.assert_array_equal(new["classifier"]["w"], init_token_classifier(params, hparams, 4, seed=5)
                                  ["classifier"]["w"])
    assert not np.shares_memory(new["embeddings"]["word"], params["embeddings"]["word"])


def test_token_labels_put_each_word_label_on_its_first_token(tiny):
    tokenizer = tiny[0]
    words = ["Schwarzenegger", "met", "\x00", "u.s.", "fans"]
    tokens, labels = token_labels(tokenizer, words, [3, 0, 2, 1, 0])
    pieces = [tokenizer.tokenize(w) for w in words]
    assert pieces[2] == [] and len(pieces[0]) > 1 and len(pieces[3]) == 4  # no token; pieces; u . s .
    assert tokens == sum(pieces, [])
    assert labels == ([3] + [IGNORE] * (len(pieces[0]) - 1) + [0] + [1, IGNORE, IGNORE, IGNORE]
                      + [0] + [IGNORE] * (len(pieces[4]) - 1))
    with pytest.raises(ValueError, match="one label per word"):
        token_labels(tokenizer, words, [0, 1])


def test_batch_labels_pad_and_cut_as_the_tokens_are():
    rows = [[1, IGNORE, 2], [0], [4, 4, 4, 4, 4, 4]]
    np.testing.assert_array_equal(batch_labels(rows, [2, 0], 6),  # cut to max_length 6: 4 tokens + [CLS], [SEP]
                                  [[IGNORE, 4, 4, 4, 4, IGNORE], [IGNORE, 1, IGNORE, 2, IGNORE, IGNORE]])
    np.testing.assert_array_equal(batch_labels(np.array([7, 8, 9]), [2, 0], 6), [9, 7])  # one label per row


def test_token_loss_is_the_mean_over_labelled_tokens_and_ignores_the_rest():
    hparams, params = tc.classifier("tokens")
    input_ids, segment_ids, attention_mask, labels = tc.batch("tokens")
    seq, _ = bert(input_ids, segment_ids, params, hparams, attention_mask=attention_mask)
    logits = token_classifier_head(seq, params)
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    rows, cols = np.nonzero(labels != IGNORE)
    expected = -log_probs[rows, cols, labels[rows, cols]].mean()
    loss = loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, labels)[0]
    assert loss == pytest.approx(expected, rel=1e-5)
    changed = labels.copy()
    changed[rows[0], cols[0]] = IGNORE  # one token fewer: the mean over the others
    rest = np.ones(len(rows), bool)
    rest[0] = False
    assert loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, changed)[0] == pytest.approx(
        -log_probs[rows[rest], cols[rest], labels[rows[rest], cols[rest]]].mean(), rel=1e-5)


def test_token_loss_refuses_bad_labels(tiny):
    tokenizer, hparams, params = tiny
    trained = init_token_classifier(params, hparams, 3)
    ids, segments, mask, _ = tc.minilm_batch(tokenizer)
    good = np.where(mask == 1, 0, IGNORE)
    cases = [(good[:, 1:], r"input_ids' shape \(8, \d+\)"),
             (good.astype(np.float32), "integer class ids"),
             (np.where(mask == 1, 3, IGNORE), r"\[0, 3\).*found 3"),
             (np.where(mask == 1, -1, IGNORE), "found -1"),
             (np.full(mask.shape, IGNORE), "no token has a label")]
    for labels, message in cases:
        with pytest.raises(ValueError, match=message):
            loss_and_grads(trained, hparams, ids, segments, mask, labels)
    with pytest.raises(ValueError, match="init_token_classifier"):  # token labels, a sequence classifier
        loss_and_grads({**trained, "pooler": params["pooler"]}, hparams, ids, segments, mask, good)


def words_and_labels(texts):
    """A learnable tagging of real sentences: 1 for punctuation, 2 for 'the', 'a', 'an', 0 for other words."""
    rows = [text.split() for text in texts]
    return rows, [[1 if not w[0].isalnum() else 2 if w in ("the", "a", "an") else 0 for w in row] for row in rows]


def test_a_short_token_fine_tune_on_real_sentences_lowers_the_loss(tiny, rt_polarity):
    tokenizer, hparams, params = tiny
    hparams = {**hparams, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02}
    with open(rt_polarity, encoding="utf-8", newline="") as f:
        words, word_labels = words_and_labels([row["text"] for row in csv.DictReader(f)][:48])
    rows = [token_labels(tokenizer, w, lab) for w, lab in zip(words, word_labels)]
    tokens, labels = [t for t, _ in rows], [lab for _, lab in rows]
    params = init_token_classifier(params, hparams, 3, seed=0)

    def training_loss():
        encoded = tokenizer.batch_encode_tokens(tokens, max_length=64)
        width = encoded["input_ids"].shape[1]
        return loss_and_grads(params, hparams, encoded["input_ids"], encoded["segment_ids"],
                              encoded["attention_mask"], batch_labels(labels, range(48), width))[0]

    before, state, rng = training_loss(), adamw_init(params), np.random.default_rng(0)
    lrs = schedule(10 * 6, 0.1, 3e-3)
    for epoch in range(10):
        train_epoch(params, hparams, tokenizer, tokens, labels, training_batches([len(t) for t in tokens], 8, rng),
                    state, lrs[6 * epoch:], 64, progress=False)
    assert before > 0.9 and training_loss() < 0.3
    logits = predict_tokens(tokens, tokenizer, params, hparams, batch_size=16, max_length=64)
    assert [len(row) for row in logits] == [min(len(t), 62) for t in tokens]
    predicted = np.concatenate([row.argmax(axis=1) for row in logits])
    truth = np.concatenate([lab[:62] for lab in labels])
    assert (predicted == truth)[truth != IGNORE].mean() >= 0.95
    encoded = tokenizer.batch_encode_tokens(tokens[:3], max_length=64)
    seq, _ = bert(encoded["input_ids"], encoded["segment_ids"], params, hparams,
                  attention_mask=encoded["attention_mask"])
    for row, (expected, n) in enumerate(zip(token_classifier_head(seq, params), encoded["attention_mask"].sum(1))):
        np.testing.assert_allclose(logits[row], expected[1:n - 1], rtol=1e-5, atol=1e-5)


def test_save_pretrained_writes_a_token_classifier_the_pipeline_runs(tiny, tmp_path):
    tokenizer, hparams, params = tiny
    trained = init_token_classifier(params, hparams, 3, seed=2)
    trained["classifier"]["w"] *= 50  # confident enough that some tokens are entities
    folder = tmp_path / "tagger"
    model_folder.save_pretrained(folder, tokenizer, trained, {**hparams, "id2label": {0: "O", 1: "B-X", 2: "I-X"}})
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"] and config["num_labels"] == 3
    raw = (folder / "model.safetensors").read_bytes()
    names = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert "classifier.weight" in names and not [k for k in names if k.startswith(("bert.pooler", "cls."))]
    loaded_tokenizer, loaded_hparams, loaded = model_folder.load_model_folder(folder)
    assert "pooler" not in loaded
    for (path, a), (_, b) in zip(leaves(trained), leaves(loaded)):
        np.testing.assert_array_equal(a, b, err_msg=path)
    texts = ["a fine film , in paris .", "dull"]
    found = token_classification(texts, loaded_tokenizer, loaded, loaded_hparams)
    logits = predict_tokens([tokenizer.tokenize(t) for t in texts], tokenizer, trained, hparams)
    expected = [[(int(i) + 1, ("O", "B-X", "I-X")[k]) for i, k in enumerate(row.argmax(axis=1)) if k] for row in logits]
    assert [[(e["index"], e["entity"]) for e in row] for row in found] == expected and any(expected)
