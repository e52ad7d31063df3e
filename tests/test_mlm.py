"""Masked-language-model training (BertForMaskedLM, as transformers' run_mlm.py): run_mlm's blocks of
tokens, the collator's masking, the model made ready to train, its loss against the inference path, the saved
folder, AdamW's decay rule for the head's bias, and training on real reviews. (Its gradients against torch
autograd are in test_train_golden.py and test_train_layers.py.)"""
import csv
import json
import os

import numpy as np
import pytest

import model_folder
from conftest import GOLDEN_DIR
from finetune import masked_lm_loss, never_masked, parallel_loss_and_grads, train_mlm_epoch, training_batches
from layers import IGNORE
from mlm_data import group_texts, line_rows, mask_tokens, padded, word_starts
from optim import adamw_init, adamw_step, leaves
from pipelines import fill_mask
from training import init_masked_lm, loss_and_grads

V = 30522  # bert-base-uncased's vocabulary, as MiniLM's


@pytest.fixture(scope="module")
def tiny():
    return model_folder.load_model_folder(os.path.join(GOLDEN_DIR, "tiny-gelu"))


@pytest.fixture(scope="module")
def review_blocks(tiny, imdb):
    """The tiny model's blocks of 32 tokens from 60 real IMDB reviews: 50 to train on, 10 to test."""
    tokenizer = tiny[0]
    with open(imdb, encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)][:60]
    ids = [tokenizer.convert_tokens_to_ids(["[CLS]", *tokenizer.tokenize(text), "[SEP]"]) for text in texts]
    return group_texts(ids[:50], 32), group_texts(ids[50:], 32)


def test_group_texts_concatenates_the_texts_and_drops_the_last_partial_block():
    blocks = group_texts([[101, 7, 8, 102], [101, 9, 102], [101, 10, 11, 12, 102]], 5)
    assert blocks.dtype == np.int64
    assert blocks.tolist() == [[101, 7, 8, 102, 101], [9, 102, 101, 10, 11]]  # 12 and the last [SEP] dropped
    assert group_texts([[1, 2, 3, 4]], 4).tolist() == [[1, 2, 3, 4]]
    with pytest.raises(ValueError, match="3 tokens, fewer than one block of 4"):
        group_texts([[1, 2], [3]], 4)
    for bad in (0, 2.5, "4"):
        with pytest.raises(ValueError, match="block_size"):
            group_texts([[1, 2, 3]], bad)


def test_line_by_line_rows_are_cut_as_the_tokenizer_cuts_and_padded_per_batch():
    rows = line_rows([[101, 7, 8, 9, 102], [101, 5, 102], [101, 102]], 4)
    assert [row.tolist() for row in rows] == [[101, 7, 8, 102], [101, 5, 102], [101, 102]]  # the final [SEP] kept
    input_ids, attention_mask = padded(rows, 0)
    assert input_ids.tolist() == [[101, 7, 8, 102], [101, 5, 102, 0], [101, 102, 0, 0]]
    assert attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]
    for bad in (1, 3.0):
        with pytest.raises(ValueError, match="max_length"):
            line_rows([[101, 102]], bad)


def test_mask_tokens_chooses_and_replaces_tokens_as_the_collator_does():
    rng = np.random.default_rng(0)
    input_ids = rng.integers(1000, V, (400, 128))
    input_ids[:, 0], input_ids[:, 64], input_ids[:, -1], input_ids[::7, -20:] = 101, 102, 102, 0  # specials, padding
    before = input_ids.copy()
    inputs, labels = mask_tokens(input_ids, np.random.default_rng(1), 103, V, [0, 101, 102, 103])
    assert (input_ids == before).all()  # not changed in place
    assert inputs.dtype == labels.dtype == np.int64 and inputs.shape == labels.shape == input_ids.shape
    chosen = labels != IGNORE
    assert not chosen[np.isin(before, [0, 101, 102])].any()  # never a special token or padding
    assert (labels[chosen] == before[chosen]).all() and (inputs[~chosen] == before[~chosen]).all()
    candidates = int((~np.isin(before, [0, 101, 102])).sum())
    share = chosen.sum() / candidates  # 0.15, within 4 standard deviations
    assert abs(share - 0.15) < 4 * np.sqrt(0.15 * 0.85 / candidates)
    n = int(chosen.sum())
    masked, kept = (inputs[chosen] == 103).sum() / n, (inputs[chosen] == before[chosen]).sum() / n
    assert abs(masked - 0.8) < 4 * np.sqrt(0.8 * 0.2 / n) and abs(kept - 0.1) < 4 * np.sqrt(0.1 * 0.9 / n)
    randomized = inputs[chosen & (inputs != 103) & (inputs != before)]
    assert randomized.min() < 1000 and randomized.max() > V // 2  # drawn from the whole vocabulary
    again = mask_tokens(input_ids, np.random.default_rng(1), 103, V, [0, 101, 102, 103])
    assert all((a == b).all() for a, b in zip(again, (inputs, labels)))  # reproducible from the seed
    sparse = mask_tokens(input_ids, np.random.default_rng(2), 103, V, [0, 101, 102, 103], mlm_probability=0.05)[1]
    assert (sparse != IGNORE).sum() < n / 2


def test_word_starts_find_words_as_transformers_whole_word_masking(tiny):
    """A token starts a word unless it begins where the one before it ends (DataCollatorForLanguageModeling's
    _calc_word_ids_and_prob_mask): ##pieces, and punctuation against a word, belong to it."""
    tokens, offsets = tiny[0].tokenize_with_offsets("Don't stop: unbelievably good, 10/10!")
    assert tokens[:6] == ["don", "'", "t", "stop", ":", "u"] and len(tokens) == 20  # "u" "##n" ... "##ly"
    assert [t for t, start in zip(tokens, word_starts(offsets)) if start] == ["don", "stop", "u", "good", "10"]


def test_whole_word_mask_chooses_every_token_of_a_word_or_none(tiny, imdb):
    tokenizer = tiny[0]
    with open(imdb, encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)][:80]
    pieces = [tokenizer.tokenize_with_offsets(text) for text in texts]
    ids = group_texts([tokenizer.convert_tokens_to_ids(["[CLS]", *tokens, "[SEP]"]) for tokens, _ in pieces], 48)
    starts = group_texts([[False, *word_starts(offsets), False] for _, offsets in pieces], 48).astype(bool)
    specials = never_masked(tokenizer)
    maskable = ~np.isin(ids, specials)
    # the words: a start, a block's first token or a token after a special one begins one
    first = maskable & (starts | np.pad(~maskable[:, :-1], ((0, 0), (1, 0)), constant_values=True))
    word = np.where(maskable, np.cumsum(first, axis=1), 0)
    assert (~first & maskable).sum() > 1000  # many words of several tokens
    chosen_words = candidates = 0
    for seed in range(5):
        inputs, labels = mask_tokens(ids, np.random.default_rng(seed), tokenizer.vocab["[MASK]"], len(tokenizer.vocab),
                                     specials, 0.2, starts)
        chosen = labels != IGNORE
        assert not chosen[~maskable].any() and (labels[chosen] == ids[chosen]).all()
        for row in range(len(ids)):  # each word: all its tokens chosen, or none
            n_chosen = np.bincount(word[row][maskable[row]], weights=chosen[row][maskable[row]])
            n_tokens = np.bincount(word[row][maskable[row]])
            assert ((n_chosen == 0) | (n_chosen == n_tokens)).all()
            chosen_words += int((n_chosen[1:] > 0).sum())
            candidates += int((n_tokens[1:] > 0).sum())
    assert abs(chosen_words / candidates - 0.2) < 4 * np.sqrt(0.2 * 0.8 / candidates)  # words chosen at 20%


@pytest.mark.parametrize("args, message", [((np.zeros(5, int),), r"\[B, L\]"), ((np.zeros((2, 3)),), "integer"),
                                           ((np.zeros((2, 3), int), 0.0), "mlm_probability"),
                                           ((np.zeros((2, 3), int), 1.0), "mlm_probability")])
def test_mask_tokens_refuses_bad_input(args, message):
    ids, *probability = args
    with pytest.raises(ValueError, match=message):
        mask_tokens(ids, np.random.default_rng(0), 103, V, [101], *probability)
    with pytest.raises(ValueError, match="Generator"):
        mask_tokens(np.zeros((2, 3), int), 0, 103, V, [101])


def test_init_masked_lm_keeps_the_checkpoints_head_or_makes_one_as_hf(tiny, minilm):
    _, hparams, params = tiny
    trained = init_masked_lm(params, hparams)
    assert sorted(trained) == ["blocks", "embeddings", "mlm"]  # BertForMaskedLM: no pooler, no NSP head
    for (path, a), (_, b) in zip(leaves(trained), leaves({key: params[key] for key in trained})):
        assert a.flags.writeable and np.array_equal(a, b), path
    _, mini_hparams, mini = model_folder.load_model_folder(minilm)
    assert "mlm" not in mini
    head = init_masked_lm(mini, mini_hparams, seed=3)["mlm"]
    assert head["transform"]["w"].shape == (384, 384) and abs(head["transform"]["w"].std() - 0.02) < 0.001
    assert not head["transform"]["b"].any() and not head["bias"].any() and head["bias"].shape == (V,)
    assert (head["ln"]["g"] == 1).all() and not head["ln"]["b"].any()
    assert np.array_equal(init_masked_lm(mini, mini_hparams, seed=3)["mlm"]["transform"]["w"], head["transform"]["w"])
    with pytest.raises(ValueError, match="distilbert"):
        init_masked_lm(params, {**hparams, "model_type": "distilbert"})


def test_the_training_loss_equals_the_inference_paths(tiny, review_blocks):
    """loss_and_grads' forward (training.py, no dropout) and masked_lm_loss's (bert.bert + bert.mlm_head) give
    the same cross-entropy; the sharded loss and gradients equal the whole batch's."""
    tokenizer, hparams, params = tiny
    trained = init_masked_lm(params, hparams)
    inputs, labels = mask_tokens(review_blocks[1][:6], np.random.default_rng(0), tokenizer.vocab["[MASK]"],
                                 len(tokenizer.vocab), never_masked(tokenizer))
    loss, grads = loss_and_grads(trained, hparams, inputs, None, None, labels)
    assert masked_lm_loss(inputs, labels, trained, hparams, batch_size=4) == pytest.approx(loss, rel=1e-5)
    shard_loss, shard_grads = parallel_loss_and_grads(trained, hparams, inputs, None, None, labels)
    assert shard_loss == pytest.approx(loss, rel=1e-6)
    for (path, a), (_, b) in zip(leaves(grads), leaves(shard_grads)):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), path
    # --line_by_line: sequences of different lengths, padded; the padding is never masked and changes nothing
    rows = line_rows([row[:n] for row, n in zip(review_blocks[1][:6], (32, 9, 20, 5, 32, 14))], 32)
    input_ids, attention_mask = padded(rows, tokenizer.vocab["[PAD]"])
    inputs, labels = mask_tokens(input_ids, np.random.default_rng(1), tokenizer.vocab["[MASK]"], len(tokenizer.vocab),
                                 never_masked(tokenizer))
    assert not (labels[attention_mask == 0] != IGNORE).any()
    loss = loss_and_grads(trained, hparams, inputs, None, attention_mask, labels)[0]
    assert masked_lm_loss(inputs, labels, trained, hparams, 4, attention_mask) == pytest.approx(loss, rel=1e-5)
    assert parallel_loss_and_grads(trained, hparams, inputs, None, attention_mask, labels)[0] == pytest.approx(
        loss, rel=1e-6)


def test_loss_and_grads_refuses_what_is_no_masked_lm(tiny):
    tokenizer, hparams, params = tiny
    trained = init_masked_lm(params, hparams)
    ids = np.full((2, 6), 7)
    for labels, message in ((np.full((2, 6), len(tokenizer.vocab)), r"\[0, 2506\) \(vocab_size\)"),
                            (np.zeros(2, int), "a masked language model's labels"),
                            (np.full((2, 6), IGNORE), "no token has a label")):
        with pytest.raises(ValueError, match=message):
            loss_and_grads(trained, hparams, ids, None, None, labels)
    with pytest.raises(ValueError, match="init_masked_lm"):  # the checkpoint as loaded: pooler and NSP head too
        loss_and_grads(params, hparams, ids, None, None, np.zeros((2, 6), int))
    with pytest.raises(ValueError, match="no token is masked"):
        masked_lm_loss(ids, np.full((2, 6), IGNORE), trained, hparams)


def test_save_pretrained_writes_a_masked_lm_that_fill_mask_loads(tiny, tmp_path):
    tokenizer, hparams, params = tiny
    trained = init_masked_lm(params, hparams)
    trained["mlm"]["bias"] += np.linspace(-1, 1, len(trained["mlm"]["bias"]), dtype=np.float32)  # not the original
    model_folder.save_pretrained(tmp_path / "mlm", tokenizer, trained, hparams)
    config = json.loads((tmp_path / "mlm" / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"] and "num_labels" not in config
    _, _, loaded = model_folder.load_model_folder(tmp_path / "mlm")
    assert sorted(loaded) == ["blocks", "embeddings", "mlm"]
    for (path, a), (_, b) in zip(leaves(loaded), leaves(trained)):
        assert np.array_equal(a, b), path
    text = ["the film was [MASK] ."]
    (found,), (expected,), (original,) = (fill_mask(text, tokenizer, p, hparams) for p in (loaded, trained, params))
    assert [f["token"] for f in found] == [e["token"] for e in expected] != [o["token"] for o in original]
    np.testing.assert_allclose([f["score"] for f in found], [e["score"] for e in expected], rtol=1e-5)


def test_an_untied_decoder_is_the_heads_own(tiny, tmp_path):
    """tie_word_embeddings false: the head keeps a decoder of its own, saved and read back as transformers 5 reads
    it (make_golden_train.py checks that transformers loads the folder cleanly, to the same logits)."""
    tokenizer, hparams, params = tiny
    untied = dict(hparams, tie_word_embeddings=False)
    model = init_masked_lm(params, untied, seed=7)
    decoder = model["mlm"]["decoder"]
    assert decoder.shape == params["embeddings"]["word"].shape and 0.1 < decoder.std() < 0.3  # initializer_range
    model_folder.save_pretrained(tmp_path / "untied", tokenizer, model, untied)
    folder = tmp_path / "untied"
    config = json.loads((folder / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    _, loaded_hparams, loaded = model_folder.load_model_folder(folder)
    assert np.array_equal(loaded["mlm"]["decoder"], decoder)
    text = ["the film was [MASK] ."]
    (found,), (tied,) = (fill_mask(text, tokenizer, p, loaded_hparams) for p in (loaded, params))
    assert [f["token"] for f in found] != [t["token"] for t in tied]  # fill-mask reads the decoder
    # the same folder with tie_word_embeddings true reads the decoder as the word embeddings, as HF ties them
    (folder / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": True}))
    _, _, tied_params = model_folder.load_model_folder(folder)
    assert "decoder" not in tied_params["mlm"]
    # untied without a decoder weight of its own: refused
    (folder / "config.json").write_text(json.dumps(config))
    model_folder.save_pretrained(tmp_path / "tied", tokenizer, init_masked_lm(params, hparams), hparams)
    (tmp_path / "tied" / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    with pytest.raises(ValueError, match="tie_word_embeddings false, but the checkpoint has no "
                                         "cls.predictions.decoder.weight"):
        model_folder.load_model_folder(tmp_path / "tied")


def test_adamw_does_not_decay_the_heads_bias(tiny):
    """Trainer's rule: no weight decay on biases (the MLM head's per-word bias too) and LayerNorm."""
    _, hparams, params = tiny
    trained = init_masked_lm(params, hparams)
    before = {path: a.copy() for path, a in leaves(trained)}
    grads = init_masked_lm(params, hparams)
    for _, g in leaves(grads):
        g[...] = 0
    adamw_step(trained, grads, adamw_init(trained), lr=0.1, weight_decay=0.5)
    after = dict(leaves(trained))
    assert np.array_equal(after["mlm/bias"], before["mlm/bias"]) and np.array_equal(after["mlm/ln/g"],
                                                                                  before["mlm/ln/g"])
    np.testing.assert_allclose(after["mlm/transform/w"], before["mlm/transform/w"] * np.float32(0.95), rtol=1e-6)


def test_training_on_real_reviews_lowers_the_test_perplexity_reproducibly(tiny, review_blocks):
    tokenizer, hparams, params = tiny
    train, test = review_blocks
    test_inputs, test_labels = mask_tokens(test, np.random.default_rng(9), tokenizer.vocab["[MASK]"],
                                           len(tokenizer.vocab), never_masked(tokenizer))

    def run():
        trained = init_masked_lm(params, hparams)
        state, rng, mask_rng = adamw_init(trained), np.random.default_rng(0), np.random.default_rng(1)
        for _ in range(3):
            batches = training_batches([32] * len(train), 16, rng)
            train_mlm_epoch(trained, hparams, tokenizer, train, batches, state, [3e-3] * len(batches), mask_rng,
                            rng=rng, progress=False)
        return trained

    before = masked_lm_loss(test_inputs, test_labels, params, hparams)
    trained = run()
    after = masked_lm_loss(test_inputs, test_labels, trained, hparams)
    assert np.exp(after) < 0.5 * np.exp(before)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(leaves(trained), leaves(run())))
