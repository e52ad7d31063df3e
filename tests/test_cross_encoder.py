"""cross_encoder.predict and rank against sentence-transformers' CrossEncoder (tests/golden/pipelines/
cross_encoder.json.gz, from make_golden_pipelines.py) on the random-weight reranker and NLI models of
task_models.py: the activation each folder's config names (or the default), the same ranking, scores to 1e-5."""
import json
import os

import numpy as np
import pytest

import task_models as tm
from cross_encoder import predict, rank
from model_folder import load_model_folder
from task_models import model_folders  # noqa: F401  (the session fixture)

GOLDEN = tm.read_golden("cross_encoder")
QUERIES, PASSAGES = tm.classification_inputs()[1]  # the last passages: "" and "  " (empty second segments)
PAIRS = [[q, p] for q, p in zip(QUERIES, PASSAGES)]


@pytest.fixture(scope="module")
def folders(model_folders, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("cross-encoders")
    return {**model_folders, **{name: tm.write_cross_encoder(str(root / name), activation)
                                for name, activation in tm.CROSS_ENCODER_ACTIVATIONS.items()}}


def model(folders, name):
    tokenizer, hparams, params = load_model_folder(folders[name])
    return tokenizer, params, hparams


@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: f"{c['model']}-{c['call']}-{'-'.join(c['kwargs'])}")
def test_matches_sentence_transformers(folders, case):
    tokenizer, params, hparams = model(folders, case["model"])
    if case["call"] == "predict":
        scores = predict(PAIRS, tokenizer, params, hparams, batch_size=3, **case["kwargs"])
        assert scores.dtype == np.float32 and scores.shape == np.shape(case["outputs"])
        np.testing.assert_allclose(scores, case["outputs"], rtol=0, atol=1e-5)
    else:
        hits = rank(QUERIES[0], PASSAGES, tokenizer, params, hparams, batch_size=3, **case["kwargs"])
        # the same documents, each with its score, best first; passages 6 ("") and 7 ("  ") tie to float32
        # rounding (the same tokens), so their order is rounding's
        theirs = {h["corpus_id"]: h for h in case["outputs"]}
        assert len(hits) == len(theirs) and {h["corpus_id"] for h in hits} == set(theirs)
        for hit in hits:
            assert type(hit["score"]) is float and abs(hit["score"] - theirs[hit["corpus_id"]]["score"]) <= 1e-5
            assert list(hit) == list(theirs[hit["corpus_id"]])  # corpus_id, score (and text)
            assert hit.get("text") == theirs[hit["corpus_id"]].get("text")
        np.testing.assert_allclose([h["score"] for h in hits], [h["score"] for h in case["outputs"]], rtol=0, atol=1e-5)
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_one_pair_and_an_activation_of_ones_own(folders):
    tokenizer, params, hparams = model(folders, "reranker")
    scores = predict(PAIRS, tokenizer, params, hparams)
    one = predict(PAIRS[0], tokenizer, params, hparams)  # a bare pair: its score alone, as CrossEncoder
    assert one.shape == () and abs(one - scores[0]) < 1e-6
    logits = predict(PAIRS, tokenizer, params, hparams, activation_fn=lambda x: x)
    identity = predict(PAIRS, *model(folders, "reranker-identity"))
    np.testing.assert_allclose(logits, identity, rtol=0, atol=1e-6)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), scores, rtol=0, atol=1e-6)


def test_the_older_config_key(folders, tmp_path):
    """sentence-transformers before 4 saved the activation as sbert_ce_default_activation_function."""
    folder = tm.write_task_model(str(tmp_path / "old"), "reranker")
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    tm.write_json(os.path.join(folder, "config.json"),
                  {**config, "sbert_ce_default_activation_function": "torch.nn.modules.linear.Identity"})
    tokenizer, hparams, params = load_model_folder(folder)
    np.testing.assert_allclose(predict(PAIRS, tokenizer, params, hparams),
                               predict(PAIRS, *model(folders, "reranker-identity")), rtol=0, atol=1e-6)


def test_refusals(folders, tmp_path):
    tokenizer, params, hparams = model(folders, "reranker")
    with pytest.raises(ValueError, match=r"pairs must be a list of \[query, passage\] pairs"):
        predict(["just one text", "and another", "and a third"], tokenizer, params, hparams)
    with pytest.raises(ValueError, match="max_length"):
        predict(PAIRS, tokenizer, params, hparams, max_length=0)
    with pytest.raises(ValueError, match="top_k must be an integer >= 1 or None"):
        rank("q", PASSAGES, tokenizer, params, hparams, top_k=0)
    with pytest.raises(ValueError, match="rank needs a model with one label .* this one has 3"):
        rank("q", PASSAGES, *model(folders, "zero-shot-nli"))
    with pytest.raises(ValueError, match="no classifier head"):
        predict(PAIRS, *model(folders, "qa"))
    folder = tm.write_cross_encoder(str(tmp_path / "relu"), "torch.nn.modules.activation.ReLU")
    tokenizer, hparams, params = load_model_folder(folder)
    with pytest.raises(ValueError, match="names the activation 'torch.nn.modules.activation.ReLU'"):
        predict(PAIRS, tokenizer, params, hparams)
