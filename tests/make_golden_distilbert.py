"""Generate tests/golden/pipelines/distilbert.json.gz: transformers' pipelines (text-classification, also of
pairs; token-classification; fill-mask), DistilBertForQuestionAnswering's start and end logits, and
SentenceTransformer.encode, on the random DistilBERT folders of tests/distilbert_models.py and the inputs of
tests/task_models.py.

Needs requirements-golden.txt (torch==2.13.0, transformers 5.24, sentence-transformers 6.2); never needed to
run the tests. Run from the repository root:  python tests/make_golden_distilbert.py
"""
import os
import tempfile

import torch
from sentence_transformers import SentenceTransformer
from transformers import (AutoTokenizer, DistilBertForMaskedLM, DistilBertForQuestionAnswering,
                          DistilBertForSequenceClassification, DistilBertForTokenClassification, pipeline)

import distilbert_models as dm
import task_models as tm
from make_golden_pipelines import plain

CLASSES = {"DistilBertForSequenceClassification": DistilBertForSequenceClassification,
           "DistilBertForTokenClassification": DistilBertForTokenClassification,
           "DistilBertForQuestionAnswering": DistilBertForQuestionAnswering,
           "DistilBertForMaskedLM": DistilBertForMaskedLM}


def load(folder, name):
    model, info = CLASSES[dm.MODELS[name][0]].from_pretrained(folder, output_loading_info=True)
    assert not any(info.values()), (name, info)
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def qa_inputs():
    """(questions, contexts): contexts cut to 300 characters, so every pair fits one input."""
    questions, contexts = tm.qa_inputs()
    return questions, [context[:300] for context in contexts]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        folders = {name: dm.write_distilbert_model(os.path.join(tmp, name), name) for name in dm.MODELS}
        texts, (queries, passages) = tm.classification_inputs()
        model, tokenizer = load(folders["distil-sentiment"], "distil-sentiment")
        classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
        golden = {"text_classification": plain(classify(texts, top_k=None, truncation=True)),
                  "text_classification_pairs": plain(classify(
                      [{"text": q, "text_pair": p} for q, p in zip(queries, passages)], top_k=None, truncation=True))}
        model, tokenizer = load(folders["distil-ner"], "distil-ner")
        tag = pipeline("token-classification", model=model, tokenizer=tokenizer, device="cpu")
        golden["token_classification"] = plain(tag(tm.token_classification_texts(), aggregation_strategy="first"))
        model, tokenizer = load(folders["distil-mlm"], "distil-mlm")
        fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, device="cpu")
        golden["fill_mask"] = plain(fill(tm.fill_mask_texts(), top_k=3))
        model, tokenizer = load(folders["distil-qa"], "distil-qa")
        batch = tokenizer(*qa_inputs(), padding=True, return_tensors="pt")
        with torch.no_grad():
            outputs = model(**batch)
        golden["qa_logits"] = [[row[:n].tolist() for row, n in zip(logits, batch["attention_mask"].sum(1))]
                               for logits in (outputs.start_logits, outputs.end_logits)]
        encode = SentenceTransformer(folders["distil-st"], device="cpu").encode
        golden["embeddings"] = encode(tm.embedding_texts(), batch_size=4).tolist()
    tm.write_golden("distilbert", golden)


if __name__ == "__main__":
    main()
