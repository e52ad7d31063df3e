"""Fine-tuning an extractive question-answering model: init_question_answering, the loss, bad answer positions,
a short fine-tune on real IMDB questions (squad.train_features) that lowers the loss, and save_pretrained -> the
question-answering pipeline. The gradients against torch autograd are in test_train_golden.py, the features
against run_qa's in test_squad.py."""
import json
import os

import numpy as np
import pytest

import model_folder
import train_cases as tc
from bert import bert, qa_head
from conftest import GOLDEN_DIR
from finetune import schedule, train_epoch, training_batches
from optim import adamw_init, leaves
from pipelines import question_answering
from review_tasks import review_questions
from squad import train_features
from training import init_question_answering, loss_and_grads

TINY = os.path.join(GOLDEN_DIR, "tiny-gelu")


@pytest.fixture(scope="module")
def tiny():
    return model_folder.load_model_folder(TINY)


@pytest.fixture(scope="module")
def questions(imdb, tmp_path_factory):
    path = tmp_path_factory.mktemp("qa") / "questions.jsonl"
    review_questions(imdb, path)
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_init_question_answering_has_a_seeded_two_output_head_and_no_pooler(tiny):
    _, hparams, params = tiny
    new = init_question_answering(params, hparams, seed=3)
    assert sorted(new) == ["blocks", "embeddings", "qa"]  # as BertForQuestionAnswering
    assert new["qa"]["w"].shape == (64, 2) and not new["qa"]["b"].any()
    assert new["qa"]["w"].std() == pytest.approx(0.2, rel=0.25)  # the config's initializer_range
    np.testing.assert_array_equal(new["qa"]["w"], init_question_answering(params, hparams, seed=3)["qa"]["w"])
    assert not np.shares_memory(new["embeddings"]["word"], params["embeddings"]["word"])


def test_the_loss_is_the_mean_of_the_start_and_end_cross_entropies_over_all_positions():
    hparams, params = tc.classifier("qa")
    input_ids, segment_ids, attention_mask, positions = tc.batch("qa")
    seq, _ = bert(input_ids, segment_ids, params, hparams, attention_mask=attention_mask)
    rows = np.arange(len(positions))
    expected = []
    for logits, target in zip(qa_head(seq, params), positions.T):  # padding positions count too, as in HF
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        expected.append(-log_probs[rows, target].mean())
    loss = loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, positions)[0]
    assert loss == pytest.approx(np.mean(expected), rel=1e-5) and expected[0] != pytest.approx(expected[1])


def test_bad_answer_positions_are_refused(tiny):
    tokenizer, hparams, params = tiny
    trained = init_question_answering(params, hparams)
    ids, segments, mask, positions = tc.minilm_qa_batch(tokenizer)
    last = mask.sum(axis=1) - 1
    cases = [(positions[:, :1], r"shape \(8, 2\)"), (positions.astype(np.float32), "integer"),
             (np.stack([last + 1, last + 1], axis=1), "row 0's answer start position"),  # padding
             (np.where(np.arange(2) == 1, mask.shape[1], positions), f"end position {mask.shape[1]} "),  # past it
             (-positions, "is not one of its tokens")]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            loss_and_grads(trained, hparams, ids, segments, mask, bad)
    with pytest.raises(ValueError, match="init_question_answering"):
        loss_and_grads({k: v for k, v in trained.items() if k != "qa"}, hparams, ids, segments, mask, positions)


def test_a_short_fine_tune_on_real_questions_lowers_the_loss(tiny, questions):
    tokenizer, hparams, params = tiny
    hparams = {**hparams, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02}
    rows = questions[:40]
    features = [f for row in rows for f in train_features(tokenizer, row["question"], row["context"],
                                                           row["answers"], 64, 16)]
    pairs = [(q, w) for q, w, _, _ in features]
    positions = np.array([(s, e) for _, _, s, e in features])
    assert 0 < (positions[:, 0] > 0).sum() < len(positions)  # windows with and without the answer
    params = init_question_answering(params, hparams, seed=0)

    def training_loss():
        encoded = tokenizer.batch_encode_tokens([q for q, _ in pairs], [w for _, w in pairs], max_length=64)
        return loss_and_grads(params, hparams, encoded["input_ids"], encoded["segment_ids"],
                              encoded["attention_mask"], positions)[0]

    before, state, rng = training_loss(), adamw_init(params), np.random.default_rng(0)
    steps = -(-len(pairs) // 32)
    lrs = schedule(4 * steps, 0.1, 3e-3)
    for epoch in range(4):
        batches = training_batches([len(q) + len(w) + 3 for q, w in pairs], 32, rng)
        train_epoch(params, hparams, tokenizer, pairs, positions, batches, state, lrs[steps * epoch:], 64,
                    progress=False)
    assert training_loss() < 0.6 * before


def test_save_pretrained_writes_a_model_the_question_answering_pipeline_runs(tiny, tmp_path):
    tokenizer, hparams, params = tiny
    trained = init_question_answering(params, hparams, seed=2)
    folder = tmp_path / "reader"
    model_folder.save_pretrained(folder, tokenizer, trained, hparams)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"] and config["num_labels"] == 2
    raw = (folder / "model.safetensors").read_bytes()
    names = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert "qa_outputs.weight" in names and not [k for k in names if k.startswith(("bert.pooler", "cls."))]
    loaded_tokenizer, loaded_hparams, loaded = model_folder.load_model_folder(folder)
    assert sorted(loaded) == ["blocks", "embeddings", "qa"]
    for (path, a), (_, b) in zip(leaves(trained), leaves(loaded)):
        np.testing.assert_array_equal(a, b, err_msg=path)
    context = "the film was made in paris and it shows ."
    found = question_answering(["when was it made ?"], [context], loaded_tokenizer, loaded, loaded_hparams,
                               doc_stride=16)
    encoded = tokenizer.batch_encode(["when was it made ?"], [context])
    seq, _ = bert(encoded["input_ids"], encoded["segment_ids"], trained, hparams)
    start, end = (logits[0, 7:-1] for logits in qa_head(seq, trained))  # the context's tokens
    scores = np.triu(np.exp(start)[:, None] * np.exp(end)[None, :])
    scores = np.tril(scores, 14)  # spans of at most 15 tokens, as the pipeline's max_answer_len
    s, e = np.unravel_index(scores.argmax(), scores.shape)
    words = context.split()
    assert len(tokenizer.tokenize(context)) == len(words)  # one token per word in this context
    assert found[0][0]["answer"] == " ".join(words[s:e + 1])
