"""Training parity with torch (golden file from tests/make_golden_train.py): gradients equal torch autograd's
(sequence and token classifiers, question-answering models, masked language models, and sentence-transformers'
MultipleNegativesRankingLoss), ten AdamW steps
with the schedule and clipping equal torch's, and adamw_step alone equals torch.optim.AdamW."""
import os

import numpy as np
import pytest

import train_cases as tc
from conftest import GOLDEN_DIR
from model_folder import load_model_folder
from optim import adamw_init, adamw_step, leaves
from embedding_training import init_embedding_training, mnrl_loss_and_grads
from finetune import batch_labels, token_labels
from layers import IGNORE
from training import init_classifier, init_masked_lm, init_question_answering, init_token_classifier, loss_and_grads

GRAD_TOLERANCE = 1e-4  # max |ours - torch| <= 1e-4 max |torch|, per tensor (goal 1)
ROUNDING = 1e-6  # a gradient that is zero but for rounding (train_cases.zero_gradients): at most 1e-6 x the largest


@pytest.fixture(scope="module")
def golden():
    with np.load(os.path.join(GOLDEN_DIR, "train.npz")) as z:
        return dict(z)


@pytest.fixture(scope="module")
def minilm_classifier(minilm):
    tokenizer, hparams, params = load_model_folder(minilm)
    return tokenizer, hparams, init_classifier(params, hparams, 2, seed=tc.HEAD_SEED)


def split(flat, like):
    """[(path, array)] of the vector flat cut to the shapes of the tree like."""
    out, start = [], 0
    for path, a in leaves(like):
        out.append((path, flat[start:start + a.size].reshape(a.shape)))
        start += a.size
    assert start == flat.size
    return out


def assert_tensors_close(ours, torchs, tolerance):
    zeros, largest = tc.zero_gradients(ours), max(np.abs(b).max() for _, b in torchs)
    for (path, a), (_, b) in zip(leaves(ours), torchs):
        if path in zeros:
            assert max(np.abs(a).max(), np.abs(b).max()) <= ROUNDING * largest, path
        else:
            assert np.abs(a - b).max() <= tolerance * np.abs(b).max(), path


def assert_matches_summary(golden, prefix, arrays, tolerance, projection_tolerance, zeros=()):
    """Each array against torch's stored max |a|, seeded sample entries and seeded projections. A wrong
    gradient changes its projections on random vectors by about its own norm: the projections must agree to
    projection_tolerance x the norm of torch's array. zeros: the paths of gradients that are zero but for
    rounding (train_cases.zero_gradients), which must be at most ROUNDING x the largest on both sides."""
    largest = golden[f"{prefix}/max"].max()
    for i, (path, a) in enumerate(arrays):
        flat = a.reshape(-1)
        scale = golden[f"{prefix}/max"][i]
        if path in zeros:
            assert max(np.abs(flat).max(), scale) <= ROUNDING * largest, path
            continue
        assert abs(np.abs(flat).max() - scale) <= tolerance * scale, path
        np.testing.assert_array_less(np.abs(flat[golden[f"{prefix}/idx"][i]] - golden[f"{prefix}/val"][i]),
                                     tolerance * scale + 1e-30, err_msg=path)
        projections = tc.probe_vectors(path, flat.size) @ flat
        np.testing.assert_array_less(np.abs(projections - golden[f"{prefix}/proj"][i]),
                                     projection_tolerance * golden[f"{prefix}/norm"][i] + 1e-30, err_msg=path)


@pytest.mark.parametrize("name", tc.GRADIENT_CASES)
def test_gradients_equal_torch_autograd_on_random_classifiers(golden, name):
    hparams, params = tc.classifier(name)
    loss, grads = loss_and_grads(params, hparams, *tc.batch(name))
    assert loss == pytest.approx(golden[f"grad/{name}/loss"], rel=1e-5)
    assert_tensors_close(grads, split(golden[f"grad/{name}/flat"], params), GRAD_TOLERANCE)


def test_gradients_equal_torch_autograd_on_minilm(golden, minilm_classifier):
    tokenizer, hparams, params = minilm_classifier
    loss, grads = loss_and_grads(params, hparams, *tc.minilm_batch(tokenizer))
    assert loss == pytest.approx(golden["minilm/loss"], rel=1e-5)
    assert_matches_summary(golden, "minilm/grad", leaves(grads), GRAD_TOLERANCE, 1e-4)


def test_token_classifier_gradients_equal_torch_autograd_on_minilm(golden, minilm):
    """Words with labels, aligned as transformers' examples align them (checked against word_ids() in the
    generator), then the loss and gradients of BertForTokenClassification."""
    tokenizer, hparams, params = load_model_folder(minilm)
    params = init_token_classifier(params, hparams, tc.MINILM_TOKEN_LABELS, seed=tc.HEAD_SEED)
    rows = [token_labels(tokenizer, words, labels) for words, labels in zip(tc.MINILM_WORDS, tc.minilm_word_labels())]
    encoded = tokenizer.batch_encode_tokens([tokens for tokens, _ in rows], max_length=128)
    labels = batch_labels([labels for _, labels in rows], range(len(rows)), encoded["input_ids"].shape[1])
    np.testing.assert_array_equal(labels, golden["minilm_tokens/labels"])
    loss, grads = loss_and_grads(params, hparams, encoded["input_ids"], encoded["segment_ids"],
                                 encoded["attention_mask"], labels)
    assert loss == pytest.approx(golden["minilm_tokens/loss"], rel=1e-5)
    assert_matches_summary(golden, "minilm_tokens/grad", leaves(grads), GRAD_TOLERANCE, 1e-4)


def test_question_answering_gradients_equal_torch_autograd_on_minilm(golden, minilm):
    """BertForQuestionAnswering's loss on question/sentence pairs with seeded answer positions (the generator
    checks the inputs equal transformers' tokenizer's)."""
    tokenizer, hparams, params = load_model_folder(minilm)
    params = init_question_answering(params, hparams, seed=tc.HEAD_SEED)
    loss, grads = loss_and_grads(params, hparams, *tc.minilm_qa_batch(tokenizer))
    assert loss == pytest.approx(golden["minilm_qa/loss"], rel=1e-5)
    assert_matches_summary(golden, "minilm_qa/grad", leaves(grads), GRAD_TOLERANCE, 1e-4, tc.zero_gradients(params))


def test_masked_lm_gradients_equal_torch_autograd_on_minilm(golden, minilm):
    """BertForMaskedLM (a new seeded head, its decoder tied to the word embeddings) on the sentences with tokens
    masked by mlm_data.mask_tokens (the stored inputs and labels; the generator checks the unmasked inputs equal
    transformers' tokenizer's)."""
    tokenizer, hparams, params = load_model_folder(minilm)
    params = init_masked_lm(params, hparams, seed=tc.HEAD_SEED)
    encoded = tokenizer.batch_encode(tc.MINILM_SENTENCES, max_length=128)
    input_ids, labels = golden["minilm_mlm/input_ids"], golden["minilm_mlm/labels"]
    masked = labels != IGNORE
    assert (input_ids[~masked] == encoded["input_ids"][~masked]).all()
    assert (labels[masked] == encoded["input_ids"][masked]).all()
    loss, grads = loss_and_grads(params, hparams, input_ids, encoded["segment_ids"], encoded["attention_mask"], labels)
    assert loss == pytest.approx(golden["minilm_mlm/loss"], rel=1e-5)
    assert_matches_summary(golden, "minilm_mlm/grad", leaves(grads), GRAD_TOLERANCE, 1e-4)


@pytest.mark.parametrize("name", sorted(tc.MNRL_CASES))
def test_mnrl_gradients_equal_sentence_transformers_autograd(golden, name, minilm):
    """MultipleNegativesRankingLoss backward through the SentenceTransformer: MiniLM (mean pooling, Normalize,
    pairs) and the tiny model (cls pooling, triplets, scale 7.5)."""
    folder, st_settings, _, scale = tc.MNRL_CASES[name]
    tokenizer, hparams, params = load_model_folder(minilm if folder is None else os.path.join(GOLDEN_DIR, folder))
    if st_settings is not None:
        hparams = dict(hparams, sentence_transformers=st_settings)
    columns = [tokenizer.batch_encode(texts, max_length=128) for texts in tc.mnrl_columns(name)]
    trained = init_embedding_training(params, hparams)
    loss, grads = mnrl_loss_and_grads(trained, hparams, columns, scale)
    assert loss == pytest.approx(golden[f"mnrl/{name}/loss"], rel=1e-5)
    if name == "minilm":
        assert_matches_summary(golden, f"mnrl/{name}/grad", leaves(grads), GRAD_TOLERANCE, 1e-4)
    else:
        assert_tensors_close(grads, split(golden[f"mnrl/{name}/flat"], trained), GRAD_TOLERANCE)


def test_ten_adamw_steps_equal_torch(golden):
    hparams, params = tc.classifier("gelu")
    batches = [tc.batch("gelu", step) for step in range(tc.TRAIN_STEPS["steps"])]
    losses, norms = tc.train_steps(params, hparams, batches, tc.TRAIN_STEPS)
    assert norms.max() > tc.TRAIN_STEPS["max_norm"] > norms.min()  # clipping acts at some steps, not all
    np.testing.assert_allclose(losses, golden["steps/gelu/loss"], rtol=1e-4)
    for (path, a), (_, b) in zip(leaves(params), split(golden["steps/gelu/flat"], params)):
        assert np.abs(a - b).max() <= 1e-4, path


def test_ten_adamw_steps_equal_torch_on_minilm(golden, minilm_classifier):
    tokenizer, hparams, params = minilm_classifier
    params = init_classifier(params, hparams, 2, seed=tc.HEAD_SEED)  # a copy to train
    start = {path: a.copy() for path, a in leaves(params)}
    losses, norms = tc.train_steps(params, hparams, [tc.minilm_batch(tokenizer)] * 10, tc.MINILM_TRAIN_STEPS)
    assert norms.min() > tc.MINILM_TRAIN_STEPS["max_norm"]  # clipped at every step
    np.testing.assert_allclose(losses, golden["steps/minilm/loss"], rtol=1e-4)
    # Adam divides each entry by its own root mean square, so where a gradient entry is float noise (the
    # key bias's, ~1e-9) the noise moves the weight by up to lr per step on either side: the updates agree
    # to 1% of the largest, the weights themselves far better than 1e-4
    assert_matches_summary(golden, "steps/minilm/delta", [(p, a - start[p]) for p, a in leaves(params)], 1e-2, 1e-2)


def test_adamw_step_alone_equals_torch_at_large_settings(golden):
    hparams, params = tc.classifier("gelu")
    s = tc.ADAMW
    state = adamw_init(params)
    for step in range(s["steps"]):
        adamw_step(params, tc.adamw_grads(params, step), state, s["lr"], s["weight_decay"], s["betas"], s["eps"])
    for (path, a), (_, b) in zip(leaves(params), split(golden["adamw/flat"], params)):
        assert np.abs(a - b).max() <= 1e-5, path
