"""DistilBERT checkpoints read as BERT ones (convert.distilbert_config / distilbert_state) against transformers
on the random folders of distilbert_models.py (tests/golden/pipelines/distilbert.json.gz, from
make_golden_distilbert.py): the pipelines' outputs, the QA head's logits and sentence-transformers' encode."""
import numpy as np
import pytest

import pipelines
import task_models as tm
from bert import bert, qa_head, softmax
from distilbert_models import CONFIG, distilbert_folders  # noqa: F401  (the session fixture)
from finetune import predict
from model_folder import save_pretrained
from test_pipelines import assert_same, load
from training import init_classifier

GOLDEN = tm.read_golden("distilbert")


def test_the_config_and_weights_read_as_bert(distilbert_folders):
    tokenizer, params, hparams = load(distilbert_folders["distil-sentiment"])
    assert (hparams["hidden_size"], hparams["num_hidden_layers"], hparams["num_attention_heads"],
            hparams["intermediate_size"], hparams["pooler_act"]) == (32, 2, 2, 64, "relu")
    assert not params["embeddings"]["token_type"].any() and params["pooler"]["w"].shape == (32, 32)
    assert "pooler" not in load(distilbert_folders["distil-st"])[1] and CONFIG["model_type"] == "distilbert"


def test_text_classification_matches_transformers(distilbert_folders):
    texts, (queries, passages) = tm.classification_inputs()
    model = load(distilbert_folders["distil-sentiment"])
    assert_same(pipelines.text_classification(texts, *model, top_k=None), GOLDEN["text_classification"])
    assert_same(pipelines.text_classification(queries, *model, text_pairs=passages, top_k=None),
                GOLDEN["text_classification_pairs"])


def test_token_classification_and_fill_mask_match_transformers(distilbert_folders):
    assert_same(pipelines.token_classification(tm.token_classification_texts(), *load(distilbert_folders["distil-ner"]),
                                               aggregation_strategy="first"), GOLDEN["token_classification"])
    assert_same(pipelines.fill_mask(tm.fill_mask_texts(), *load(distilbert_folders["distil-mlm"]), top_k=3),
                GOLDEN["fill_mask"])


def test_question_answering_logits_match_transformers(distilbert_folders):
    tokenizer, params, hparams = load(distilbert_folders["distil-qa"])
    questions, contexts = tm.qa_inputs()
    batch = tokenizer.batch_encode(questions, [context[:300] for context in contexts])
    start, end = qa_head(bert(batch["input_ids"], batch["segment_ids"], params, hparams,
                              attention_mask=batch["attention_mask"])[0], params)
    for ours, theirs in zip((start, end), GOLDEN["qa_logits"]):
        for row, n, expected in zip(ours, batch["attention_mask"].sum(1), theirs):
            np.testing.assert_allclose(row[:n], expected, rtol=0, atol=1e-4)
    answers = pipelines.question_answering(questions[:2], contexts[:2], tokenizer, params, hparams)
    assert all(len(answer) == 1 and answer[0]["answer"] for answer in answers)  # the pipeline runs on it


def test_a_distilbert_sentence_transformer_equals_encode(distilbert_folders):
    features = pipelines.embed(tm.embedding_texts(), *load(distilbert_folders["distil-st"]), progress=False)
    np.testing.assert_allclose(features, GOLDEN["embeddings"], rtol=0, atol=1e-5)


def test_the_pooled_output_is_pre_classifier_then_relu(distilbert_folders):
    """embed's "pooler" pooling and finetune.predict read DistilBERT's classifier as transformers runs it."""
    tokenizer, params, hparams = load(distilbert_folders["distil-sentiment"])
    texts = tm.classification_inputs()[0][:3]
    pooled = pipelines.embed(texts, tokenizer, params, hparams, progress=False)  # a plain model's own: pooler
    assert (pooled >= 0).all() and (pooled == 0).any()  # ReLU, not tanh
    scores = softmax(predict(texts, tokenizer, params, hparams))
    for row, expected in zip(scores, GOLDEN["text_classification"]):
        assert [float(row[["NEGATIVE", "POSITIVE"].index(e["label"])]) for e in expected] == pytest.approx(
            [e["score"] for e in expected], abs=1e-5)


def test_fine_tuning_and_saving_refuse_distilbert(distilbert_folders, tmp_path):
    tokenizer, params, hparams = load(distilbert_folders["distil-sentiment"])
    with pytest.raises(ValueError, match="fine-tuning trains BERT checkpoints, not distilbert ones"):
        init_classifier(params, hparams, 2)
    with pytest.raises(ValueError, match="save_pretrained writes BERT checkpoints, not distilbert ones"):
        save_pretrained(tmp_path / "saved", tokenizer, params, hparams)
    assert not (tmp_path / "saved").exists()
