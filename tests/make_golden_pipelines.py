"""Generate tests/golden/pipelines/*.json.gz and embeddings.npz: the outputs of transformers' pipelines
(text-classification, token-classification, fill-mask, zero-shot-classification), of SentenceTransformer.encode,
of util.semantic_search and of CrossEncoder.predict and rank on the random-weight models and inputs of
tests/task_models.py, and of the real all-MiniLM-L6-v2's encode. Question answering: make_golden_qa.py.

Needs requirements-golden.txt (torch==2.13.0, transformers 5.24, sentence-transformers 6.2); never needed to
run the tests. Run from the repository root:  python tests/make_golden_pipelines.py
"""
import json
import os
import tempfile

import numpy as np
import torch
from sentence_transformers import CrossEncoder, SentenceTransformer, util
from transformers import (AutoTokenizer, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification,
                          pipeline)

import task_models as tm
from conftest import minilm_dir

CLASSES = {"BertForSequenceClassification": BertForSequenceClassification,
           "BertForTokenClassification": BertForTokenClassification, "BertForMaskedLM": BertForMaskedLM}


def plain(value):
    """JSON-ready: NumPy scalars as Python numbers, tuples as lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def load_pipeline(task, folder, name):
    architecture = tm.TASK_MODELS[name][0]
    model, info = CLASSES[architecture].from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], (name, info)
    return pipeline(task, model=model.eval(), tokenizer=AutoTokenizer.from_pretrained(folder), device="cpu")


def text_classification(folders):
    texts, (queries, passages) = tm.classification_inputs()
    pairs = [{"text": q, "text_pair": p} for q, p in zip(queries, passages)]
    cases = []
    for name, kwargs, inputs in [
            ("sentiment", {}, texts), ("sentiment", {"top_k": None}, texts),
            ("emotion", {"top_k": None}, texts), ("emotion", {"top_k": 2, "function_to_apply": "sigmoid"}, texts),
            ("emotion", {"top_k": 1, "function_to_apply": "none"}, texts), ("emotion", {"top_k": None}, pairs),
            ("reranker", {"top_k": 1}, pairs), ("reranker", {"top_k": 1}, texts),
            ("topics", {"top_k": None}, texts), ("topics", {"top_k": 2, "function_to_apply": "softmax"}, texts)]:
        classify = load_pipeline("text-classification", folders[name], name)
        outputs = classify(inputs, truncation=True, **kwargs)  # truncation: two reviews are over 512 tokens
        cases.append({"model": name, "kwargs": kwargs, "pairs": inputs is pairs, "outputs": plain(outputs)})
    return cases


def token_classification(folders):
    texts = tm.token_classification_texts()
    cases = []
    tag = load_pipeline("token-classification", folders["ner"], "ner")
    for kwargs in [{"aggregation_strategy": strategy} for strategy in ("none", "simple", "first", "average", "max")] + [
            {"aggregation_strategy": "simple", "stride": 100}, {"aggregation_strategy": "first", "stride": 0},
            {"aggregation_strategy": "max", "stride": 256}]:  # stride: the review of 948 tokens in 2 or 3 windows
        cases.append({"model": "ner", "kwargs": kwargs, "outputs": plain(tag(texts, **kwargs))})
    words = tm.token_classification_words()
    for kwargs in [{"aggregation_strategy": "none"}, {"aggregation_strategy": "first"},
                   {"aggregation_strategy": "simple", "delimiter": " | "},
                   {"aggregation_strategy": "average", "stride": 64}]:
        kwargs["is_split_into_words"] = True
        cases.append({"model": "ner", "kwargs": kwargs, "outputs": plain(tag(words, **kwargs))})
    return cases


def fill_mask(folders):
    texts = tm.fill_mask_texts()
    fill = load_pipeline("fill-mask", folders["mlm"], "mlm")
    return [{"model": "mlm", "kwargs": kwargs, "outputs": plain(fill(texts, **kwargs))}
            for kwargs in ({}, {"top_k": 3}, {"targets": tm.FILL_MASK_TARGETS, "top_k": 4}, {"targets": "film"})]


def zero_shot_classification(folders):
    texts, (labels, comma_separated, single) = tm.zero_shot_inputs()
    cases = []
    for name in ("zero-shot-nli", "zero-shot-nli-first"):
        classify = load_pipeline("zero-shot-classification", folders[name], name)
        for kwargs in ({"candidate_labels": labels}, {"candidate_labels": labels, "multi_label": True},
                       {"candidate_labels": comma_separated, "hypothesis_template": "The review is {}."},
                       {"candidate_labels": single}):
            cases.append({"model": name, "kwargs": kwargs, "outputs": plain(classify(texts, **kwargs))})
    return cases


def read(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as f:
        return json.load(f)


def check_st6_layout(classic, tmp):
    """The hand-written sentence-transformers 6 folder has the files sentence-transformers 6 itself writes."""
    model = SentenceTransformer(classic, device="cpu")
    model.max_seq_length = tm.ST_MODELS["bge-st6"][5]
    saved, ours = os.path.join(tmp, "saved-by-st6"), tm.write_st_model(os.path.join(tmp, "ours-st6"), "bge-st6")
    model.save(saved)
    for name in ("modules.json", "1_Pooling/config.json", "2_Normalize/config.json", "sentence_bert_config.json"):
        assert read(saved, name) == read(ours, name), name
    assert not os.path.exists(os.path.join(saved, "vocab.txt"))
    theirs, mine = (read(folder, "tokenizer_config.json") for folder in (saved, ours))
    assert all(theirs[key] == value for key, value in mine.items()), (theirs, mine)
    theirs, mine = (read(folder, "tokenizer.json") for folder in (saved, ours))
    assert theirs["model"] == mine["model"] and theirs["normalizer"] == mine["normalizer"]


def embeddings(folders, tmp):
    """SentenceTransformer.encode with each folder's own settings; the real MiniLM's too."""
    texts = tm.embedding_texts()
    out = {}
    for name in tm.ST_MODELS:
        out[name] = SentenceTransformer(folders[name], device="cpu").encode(texts, batch_size=4)
    for case, prompt in tm.PROMPT_CASES.items():  # prompts given at the call
        model = SentenceTransformer(folders[case.split("/")[0]], device="cpu")
        out[case] = model.encode(texts, batch_size=4, **prompt)
    out["minilm"] = SentenceTransformer(minilm_dir(), device="cpu").encode(
        texts + tm.reviews([0, 3]), batch_size=4)  # 256 tokens at most: the long reviews are cut
    check_st6_layout(folders["bge-classic"], tmp)
    return out


def semantic_search(embeddings):
    """sentence-transformers' util.semantic_search: queries are one folder's (max-pooled, not normalized)
    embeddings, the corpus four other folders' (tm.search_inputs)."""
    queries, corpus = tm.search_inputs(embeddings)
    functions = {"cos_sim": util.cos_sim, "dot_score": util.dot_score}
    return [{"kwargs": kwargs, "outputs": util.semantic_search(
                torch.from_numpy(queries), torch.from_numpy(corpus),
                **{**kwargs, "score_function": functions[kwargs.get("score_function", "cos_sim")]})}
            for kwargs in ({"top_k": 5}, {"top_k": 3, "query_chunk_size": 4, "corpus_chunk_size": 10},
                           {"top_k": 100, "score_function": "dot_score"})]


def cross_encoder(folders, tmp):
    """CrossEncoder.predict and rank: the reranker with its default activation (one label: sigmoid) and with
    config.json's sentence_transformers.activation_fn Identity; an NLI model (three labels: no activation),
    with and without apply_softmax."""
    queries, passages = tm.classification_inputs()[1]
    pairs = [[q, p] for q, p in zip(queries, passages)]
    folders = {**folders, **{name: tm.write_cross_encoder(os.path.join(tmp, name), activation)
                             for name, activation in tm.CROSS_ENCODER_ACTIVATIONS.items()}}
    cases = []
    for name in ("reranker", *tm.CROSS_ENCODER_ACTIVATIONS, "zero-shot-nli"):
        model = CrossEncoder(folders[name], device="cpu")
        for kwargs in ({}, {"apply_softmax": True}) if name == "zero-shot-nli" else ({},):
            cases.append({"model": name, "call": "predict", "kwargs": kwargs,
                          "outputs": model.predict(pairs, batch_size=3, **kwargs).tolist()})
        if name != "zero-shot-nli":
            for kwargs in ({}, {"top_k": 3, "return_documents": True}):
                cases.append({"model": name, "call": "rank", "kwargs": kwargs,
                              "outputs": plain(model.rank(queries[0], passages, batch_size=3, **kwargs))})
    return cases


def main():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        encoder = tm.encoder_state()
        folders = {name: tm.write_task_model(os.path.join(tmp, name), name, encoder) for name in tm.TASK_MODELS}
        folders.update({name: tm.write_st_model(os.path.join(tmp, name), name, encoder) for name in tm.ST_MODELS})
        for task, make in (("text_classification", text_classification),
                           ("token_classification", token_classification), ("fill_mask", fill_mask),
                           ("zero_shot_classification", zero_shot_classification)):
            tm.write_golden(task, make(folders))
        os.makedirs(tm.GOLDEN, exist_ok=True)
        path = os.path.join(tm.GOLDEN, "embeddings.npz")
        vectors = {k: v.astype(np.float32) for k, v in embeddings(folders, tmp).items()}
        np.savez_compressed(path, **vectors)
        print(f"wrote {path}")
        tm.write_golden("semantic_search", semantic_search(vectors))
        tm.write_golden("cross_encoder", cross_encoder(folders, tmp))


if __name__ == "__main__":
    main()
