"""Fine-tuning: the schedule, clipping, AdamW's bookkeeping, init_classifier, batches, bad input, a short real
fine-tune that lowers the loss, and save_pretrained -> load_model_folder."""
import csv
import json
import os
import threading

import numpy as np
import pytest

import model_folder
import train_cases as tc
from bert import bert, classifier_head, softmax
from conftest import GOLDEN_DIR, review_sample
from finetune import encode_rows, parallel_loss_and_grads, predict, schedule, train_epoch, training_batches
from pipelines import text_classification
from optim import adamw_init, adamw_step, clip_grad_norm, leaves, linear_schedule, run_split, warmup_steps
from layers import IGNORE
from training import init_classifier, loss_and_grads

TINY = os.path.join(GOLDEN_DIR, "tiny-gelu")


@pytest.fixture(scope="module")
def tiny():
    return model_folder.load_model_folder(TINY)


@pytest.fixture(scope="module")
def sentences():
    """The first 24 real sentences of each class."""
    with open(review_sample("rt_polarity_sample.csv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    picked = [r for label in "01" for r in [r for r in rows if r["label"] == label][:24]]
    return [r["text"] for r in picked], np.array([int(r["label"]) for r in picked])


def test_linear_schedule_is_transformers_warmup_then_decay():
    assert [linear_schedule(k, 10, 2, 1.0) for k in range(10)] == [0, 0.5, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8,
                                                                    2 / 8, 1 / 8]
    assert linear_schedule(0, 10, 0, 2.0) == 2.0 and linear_schedule(10, 10, 0, 2.0) == 0
    assert warmup_steps(150, 0.1) == 15 and warmup_steps(7, 0.1) == 1 and warmup_steps(50, 0) == 0  # ceil
    assert schedule(150, 0.1, 5e-5)[:2] == [0, 5e-5 / 15] and len(schedule(150, 0.1, 5e-5)) == 150
    with pytest.raises(ValueError, match="warmup_ratio"):
        warmup_steps(10, 1.5)


def test_clip_grad_norm_scales_to_the_limit_and_returns_the_norm():
    grads = {"a": np.full(4, 3.0, np.float32), "b": [np.full(9, 2.0, np.float32)]}  # norm sqrt(36 + 36)
    assert clip_grad_norm(grads, 1.0) == pytest.approx(72 ** 0.5)
    assert np.sqrt(sum((g.astype(float) ** 2).sum() for _, g in leaves(grads))) == pytest.approx(1.0, rel=1e-5)
    small = {"a": np.full(4, 0.1, np.float32)}
    assert clip_grad_norm(small, 1.0) == pytest.approx(0.2) and (small["a"] == np.float32(0.1)).all()


def reference_adamw(p, g, m, v, t, lr, decay, b1, b2, eps):
    """torch.optim.AdamW's update in float64, every row."""
    p *= 1 - lr * decay
    m[:] = b1 * m + (1 - b1) * g
    v[:] = b2 * v + (1 - b2) * g * g
    p -= lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)


def test_adamw_updates_unseen_embedding_rows_by_decay_alone_as_the_dense_rule():
    rng = np.random.default_rng(0)
    params = {"embeddings": {"word": rng.standard_normal((50, 3), dtype=np.float32)},
              "blocks": [{"w": rng.standard_normal((3, 2), dtype=np.float32), "b": np.zeros(2, np.float32)}]}
    ref = [a.astype(np.float64) for _, a in leaves(params)]
    moments = [(np.zeros_like(a), np.zeros_like(a)) for a in ref]
    state = adamw_init(params)
    for t, rows in enumerate([[1, 4], [4, 7, 9], [2], [], [1]], 1):  # rows with a gradient at each step
        word = np.zeros((50, 3), np.float32)
        word[rows] = rng.standard_normal((len(rows), 3))
        grads = {"embeddings": {"word": word}, "blocks": [{"w": rng.standard_normal((3, 2), dtype=np.float32),
                                                           "b": rng.standard_normal(2, dtype=np.float32)}]}
        adamw_step(params, grads, state, 0.1, 0.1, (0.8, 0.9), 1e-3)
        for (path, g), p, (m, v) in zip(leaves(grads), ref, moments):
            reference_adamw(p, g, m, v, t, 0.1, 0 if path.endswith("/b") else 0.1, 0.8, 0.9, 1e-3)
    for (path, a), b in zip(leaves(params), ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=path)
    assert state["step"] == 5


def test_run_split_runs_the_parts_at_once_and_keeps_no_thread(monkeypatch):
    """No pool thread outlives the call: one kept idle could be a thread that Ctrl-C interrupted while it was
    being started, which nothing wakes, and the interpreter would wait for it forever at exit."""
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    before, both = set(threading.enumerate()), threading.Barrier(2, timeout=10)  # each part waits for the other

    def work(part):
        both.wait()
        return part
    assert run_split(work, list(range(5))) == [[0, 1], [2, 3, 4]]
    assert set(threading.enumerate()) == before


def test_adamw_refuses_what_it_cannot_update_in_place(tiny):
    _, hparams, params = tiny
    with pytest.raises(ValueError, match="init_classifier"):
        adamw_init(params)  # the loader's read-only memory maps
    trained = init_classifier(params, hparams, 2)
    state = adamw_init(trained)
    grads = {k: v for k, v in trained.items() if k != "pooler"}
    with pytest.raises(ValueError, match="layout of params"):
        adamw_step(trained, grads, state, 1e-3)
    with pytest.raises(ValueError, match="shape"):
        adamw_step(trained, {**trained, "classifier": {"w": np.zeros((64, 3)), "b": np.zeros(3)}}, state, 1e-3)
    with pytest.raises(ValueError, match="adamw_init"):
        adamw_step(trained, trained, adamw_init(init_classifier(params, hparams, 3)), 1e-3)


def test_init_classifier_makes_a_writable_float32_copy_with_a_seeded_head(tiny):
    _, hparams, params = tiny
    new = init_classifier(params, hparams, 3, seed=4)
    assert set(new) == {"embeddings", "blocks", "pooler", "classifier"}  # no mlm / nsp heads
    for path, a in leaves(new):
        assert a.dtype == np.float32 and a.flags.writeable and a.flags.c_contiguous, path
    assert new["classifier"]["w"].shape == (64, 3) and not new["classifier"]["b"].any()
    assert new["classifier"]["w"].std() == pytest.approx(hparams["initializer_range"], rel=0.15)
    again = init_classifier(params, hparams, 3, seed=4)
    np.testing.assert_array_equal(new["classifier"]["w"], again["classifier"]["w"])
    assert not np.shares_memory(new["blocks"][0]["attn"]["qkv"]["w"], params["blocks"][0]["attn"]["qkv"]["w"])
    np.testing.assert_array_equal(new["blocks"][0]["attn"]["qkv"]["w"], params["blocks"][0]["attn"]["qkv"]["w"])
    no_pooler = init_classifier({k: v for k, v in params.items() if k != "pooler"}, hparams, 2)
    assert no_pooler["pooler"]["w"].shape == (64, 64)  # BertForSequenceClassification always has a pooler
    for bad in (0, 2.0, True, "2"):
        with pytest.raises(ValueError, match="num_labels"):
            init_classifier(params, hparams, bad)


@pytest.mark.parametrize("name", tc.GRADIENT_CASES)
def test_parallel_loss_and_grads_equal_the_whole_batch(name, monkeypatch):
    """Shards of the rows on threads: the whole batch's loss and gradients. A question-answering model's
    shards keep the batch's padding (its softmax over positions takes it in, as HF's does)."""
    hparams, params = tc.classifier(name)
    input_ids, segment_ids, attention_mask, labels = tc.batch(name)
    attention_mask[2, 1] = 0  # a hole inside a row: shards are trimmed to their last real token, not a count
    if name in tc.TOKEN_CASES or name in tc.MLM_CASES:  # a shard weighs its share of the labelled tokens: the
        # first has none (and a masked language model's shards each give every word embedding a gradient)
        labels[:2] = IGNORE
    if name in tc.QA_CASES:
        labels[2] = 0  # not at the hole
        lengths = attention_mask.sum(axis=1)
        assert min(lengths[rows].max() for rows in ([0, 1], [2, 3], [4])) < attention_mask.shape[1]  # a padded shard
    loss, grads = loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, labels)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # three shards of 5 rows: 2, 2, 1
    shard_loss, shard_grads = parallel_loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask,
                                                      labels)
    assert shard_loss == pytest.approx(loss, rel=1e-6)
    zeros, largest = tc.zero_gradients(params), max(np.abs(a).max() for _, a in leaves(grads))
    for (path, a), (_, b) in zip(leaves(grads), leaves(shard_grads)):
        assert np.abs(a - b).max() <= (1e-6 * largest if path in zeros else 1e-5 * np.abs(a).max()), path
    with_dropout = [parallel_loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, labels,
                                            np.random.default_rng(1))[0] for _ in range(2)]
    assert with_dropout[0] == with_dropout[1] != loss  # reproducible from the seed


def test_training_batches_cover_every_row_once_with_little_padding():
    lengths = np.random.default_rng(0).integers(5, 60, 1000)
    batches = training_batches(lengths, 32, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert sorted(map(len, batches))[1:] == [32] * 31
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.1 * lengths.sum()  # random batches of 32 would pad to nearly the longest everywhere
    again = training_batches(lengths, 32, np.random.default_rng(1))
    assert all((a == b).all() for a, b in zip(batches, again))
    other = training_batches(lengths, 32, np.random.default_rng(2))
    assert [b.tolist() for b in batches] != [b.tolist() for b in other]


def test_training_batches_of_groups_of_one_batch_are_random_batches():
    lengths = np.random.default_rng(0).integers(5, 60, 1000)
    batches = training_batches(lengths, 32, np.random.default_rng(1), group=1)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert sorted(map(len, batches))[1:] == [32] * 31
    order = np.random.default_rng(1).permutation(1000)  # the first draw: the rows' shuffle, cut every 32 rows
    assert sorted(map(sorted, (b.tolist() for b in batches))) == sorted(
        sorted(order[i:i + 32].tolist()) for i in range(0, 1000, 32))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded > 1.5 * lengths.sum()  # no length grouping: most batches pad to nearly the longest row


def test_dropout_follows_the_config(tiny):
    _, hparams, params = tiny
    params = init_classifier(params, hparams, 2)
    inputs = tc.minilm_batch(tiny[0])

    def loss(rng=None, **config):
        return loss_and_grads(params, {**hparams, **config}, *inputs, rng=rng)[0]

    deterministic = loss()
    assert loss(np.random.default_rng(0)) != deterministic  # training mode: hidden and attention dropout
    off = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    assert loss(np.random.default_rng(0), **off) == deterministic
    assert loss(np.random.default_rng(0), **off, classifier_dropout=0.5) != deterministic
    assert loss(np.random.default_rng(0), hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.0,
                classifier_dropout=0.0) != deterministic


def test_loss_and_grads_refuses_bad_input(tiny):
    _, hparams, params = tiny
    trained = init_classifier(params, hparams, 3)
    ids, segments, mask, _ = tc.minilm_batch(tiny[0])
    cases = [(params, {}, [0] * 8, "init_classifier"),
             (trained, {}, [0] * 7, r"shape \(8,\)"),
             (trained, {}, [0, 1, 2, 3, 0, 1, 2, 3], r"\[0, 3\)"),
             (trained, {}, np.zeros((8, 2)), r"shape \(8, 3\)"),
             (trained, {"problem_type": "single_label_classification"}, np.zeros(8), "integer class ids"),
             (trained, {"problem_type": "ranking"}, [0] * 8, "problem_type"),
             (trained, {"hidden_dropout_prob": 1.5}, [0] * 8, "hidden_dropout_prob"),
             (trained, {}, np.full((8, 3), np.nan), "finite"),
             (trained, {}, ["a"] * 8, "numbers")]
    for p, config, labels, message in cases:
        with pytest.raises(ValueError, match=message):
            loss_and_grads(p, {**hparams, **config}, ids, segments, mask, labels)
    with pytest.raises(ValueError, match="Generator"):
        loss_and_grads(trained, hparams, ids, segments, mask, [0] * 8, rng=0)
    with pytest.raises(ValueError, match="other way round"):
        loss_and_grads(hparams, trained, ids, segments, mask, [0] * 8)
    with pytest.raises(ValueError, match="vocab_size"):
        loss_and_grads(trained, hparams, ids + 10**6, segments, mask, [0] * 8)


def test_a_short_fine_tune_on_real_sentences_lowers_the_loss(tiny, sentences):
    """48 real sentences, 8 epochs of 6 steps: the tiny random model learns them by heart (dropout off, so that
    the result does not hang on a few masks; dropout's gradients are checked in test_train_layers.py)."""
    tokenizer, hparams, params = tiny
    hparams = {**hparams, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
               "initializer_range": 0.02}  # a small head: the first loss is about log 2
    texts, labels = sentences
    params = init_classifier(params, hparams, 2, seed=0)
    tokens = [tokenizer.tokenize(t) for t in texts]
    encoded = tokenizer.batch_encode(texts, max_length=64)

    def training_loss():
        return loss_and_grads(params, hparams, encoded["input_ids"], encoded["segment_ids"],
                              encoded["attention_mask"], labels)[0]

    before, state, rng = training_loss(), adamw_init(params), np.random.default_rng(0)
    epochs, lengths = 8, [len(t) for t in tokens]
    lrs = schedule(epochs * 6, 0.1, 1e-3)
    for epoch in range(epochs):
        train_epoch(params, hparams, tokenizer, tokens, labels, training_batches(lengths, 8, rng), state,
                    lrs[6 * epoch:], 64, progress=False)
    assert before > 0.65 and training_loss() < 0.3
    logits = predict(texts, tokenizer, params, hparams, batch_size=16, max_length=64)
    assert (logits.argmax(axis=1) == labels).mean() >= 0.9
    _, pooled = bert(encoded["input_ids"], encoded["segment_ids"], params, hparams,
                     attention_mask=encoded["attention_mask"])  # the raw pooled output: not normalized
    np.testing.assert_allclose(logits, classifier_head(pooled, params), rtol=1e-5, atol=1e-5)


def test_save_pretrained_round_trip(tiny, tmp_path):
    tokenizer, hparams, params = tiny
    trained = init_classifier(params, hparams, 3, seed=2)
    folder = tmp_path / "classifier"
    model_folder.save_pretrained(folder, tokenizer, trained, {**hparams, "id2label": {0: "neg", 1: "mid", 2: "pos"}})
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    assert os.listdir(tmp_path) == ["classifier"]  # no temporary folder left
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and config["num_labels"] == 3
    assert config["id2label"] == {"0": "neg", "1": "mid", "2": "pos"} and config["label2id"]["pos"] == 2
    raw = (folder / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    names = json.loads(raw[8:8 + n])
    assert n % 8 == 0 and not [k for k in names if k.startswith("cls.")] and "classifier.weight" in names
    assert oct(os.stat(folder / "model.safetensors").st_mode & 0o777) == oct(0o666 & ~current_umask())

    loaded_tokenizer, loaded_hparams, loaded = model_folder.load_model_folder(folder)
    assert loaded_tokenizer.vocab == tokenizer.vocab and loaded_tokenizer.do_lower_case == tokenizer.do_lower_case
    for (path, a), (_, b) in zip(leaves(trained), leaves({k: loaded[k] for k in trained})):
        np.testing.assert_array_equal(a, b, err_msg=path)
    batch = tokenizer.batch_encode(["a fine film .", "dull"], max_length=64)
    logits = [classifier_head(bert(batch["input_ids"], batch["segment_ids"], p, h,
                                   attention_mask=batch["attention_mask"])[1], p)
              for p, h in ((trained, hparams), (loaded, loaded_hparams))]
    np.testing.assert_array_equal(*logits)


def current_umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_save_pretrained_never_overwrites_and_leaves_nothing_when_interrupted(tiny, tmp_path, monkeypatch):
    tokenizer, hparams, params = tiny
    trained = init_classifier(params, hparams, 2)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        model_folder.save_pretrained(tmp_path / "taken", tokenizer, trained, hparams)
    with pytest.raises(ValueError, match="init_classifier"):
        model_folder.save_pretrained(tmp_path / "new", tokenizer, params, hparams)  # no classifier head
    (tmp_path / "empty").mkdir()
    model_folder.save_pretrained(tmp_path / "empty", tokenizer, trained, hparams)  # an empty folder is fine
    assert model_folder.is_complete(tmp_path / "empty")

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_folder, "write_json", interrupt)  # after the weights, before the rest
    with pytest.raises(KeyboardInterrupt):
        model_folder.save_pretrained(tmp_path / "cut", tokenizer, trained, hparams)
    assert sorted(os.listdir(tmp_path)) == ["empty", "taken"]


def test_pairs_of_texts_train_as_cls_a_sep_b_sep_and_predict_as_the_pipeline_scores(tiny):
    tokenizer, hparams, params = tiny
    trained = init_classifier(params, hparams, 2, seed=4)
    firsts = ["a charming film .", "dull and far too long .", "great ."]
    seconds = ["warm , witty and moving .", "a tedious bore , far too long for its story .", "awful ."]
    rows = [(tokenizer.tokenize(a), tokenizer.tokenize(b)) for a, b in zip(firsts, seconds)]
    batch = encode_rows(tokenizer, rows, 64)
    expected = tokenizer.batch_encode(firsts, seconds, max_length=64)
    for key in ("input_ids", "segment_ids", "attention_mask"):
        np.testing.assert_array_equal(batch[key], expected[key])
    assert batch["segment_ids"].max() == 1
    logits = predict(firsts, tokenizer, trained, hparams, max_length=64, text_pairs=seconds)
    scores = text_classification(firsts, tokenizer, trained, hparams, text_pairs=seconds, top_k=None)
    for row, found in zip(softmax(logits), scores):
        np.testing.assert_allclose([s["score"] for s in sorted(found, key=lambda s: s["label"])], row, rtol=1e-5)
    alone = predict(firsts, tokenizer, trained, hparams, max_length=64)
    assert np.abs(alone - logits).max() > 1e-3  # the second texts count
