"""Scoring pairs of texts with a cross-encoder, as sentence-transformers' CrossEncoder.predict and rank: a
BertForSequenceClassification checkpoint that reads a query and a passage together ([CLS] query [SEP] passage
[SEP]), e.g. a reranker after a semantic search.

    scores = predict([["who directed it?", "Fritz Lang directed it."], ...], tokenizer, params, hparams)  # (N,)
    hits = rank("who directed it?", passages, tokenizer, params, hparams, top_k=3, return_documents=True)
    # [{"corpus_id": 4, "score": 0.93, "text": "Fritz Lang directed it."}, ...], best first

The scores go through the model's activation, as CrossEncoder chooses it: config.json's
sentence_transformers.activation_fn (sentence-transformers 4 and later save it there; before, as
sbert_ce_default_activation_function), else a sigmoid for one label and none for several.
"""
import numpy as np

from bert import classifier_head
from checks import check_positive, check_texts, check_top_k
from pipelines import SCORE_FUNCTIONS
from runner import run_model, token_limit

# the torch classes a config may name, as NumPy functions (text_classification's, and tanh)
ACTIVATIONS = {"torch.nn.modules.linear.Identity": SCORE_FUNCTIONS["none"],
               "torch.nn.modules.activation.Sigmoid": SCORE_FUNCTIONS["sigmoid"],
               "torch.nn.modules.activation.Tanh": np.tanh}


def default_activation(params, hparams):
    """The function CrossEncoder applies to the model's scores (see the module's docstring)."""
    st = hparams.get("sentence_transformers")
    name = st.get("activation_fn") if isinstance(st, dict) else None
    name = name or hparams.get("sbert_ce_default_activation_function")
    if name is not None:
        if name not in ACTIVATIONS:
            raise ValueError(f"config.json names the activation {name!r}, which numpy-bert cannot run: pass "
                             f"activation_fn (a function of a NumPy array), or one of {', '.join(ACTIVATIONS)}")
        return ACTIVATIONS[name]
    return SCORE_FUNCTIONS["sigmoid" if n_labels(params) == 1 else "none"]


def n_labels(params):
    if "classifier" not in params:
        raise ValueError("a cross-encoder is a sequence classifier (BertForSequenceClassification): these params "
                         "have no classifier head")
    return params["classifier"]["w"].shape[1]


def predict(pairs, tokenizer, params, hparams, batch_size=32, activation_fn=None, apply_softmax=False,
            max_length=None, progress=False, n_threads=None):
    """The scores of pairs of texts, float32: (N,) for a model with one label, else (N, labels); one pair
    [query, passage] gives its score alone (a float32 scalar, or (labels,)), as CrossEncoder.predict.

    activation_fn: a function of the scores' array, else the model's (see the module's docstring);
    apply_softmax: a softmax over the labels after it (models with several labels). A pair longer than
    max_length tokens (default and at most the model's limit) is cut longest-first; an empty passage "" is an
    empty second segment ([CLS] query [SEP] [SEP]), as CrossEncoder's tokenizer gives it."""
    single = isinstance(pairs, (list, tuple)) and len(pairs) == 2 and all(isinstance(t, str) for t in pairs)
    pairs = [pairs] if single else pairs
    if isinstance(pairs, str) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise ValueError("pairs must be a list of [query, passage] pairs of texts")
    queries, passages = check_texts([p[0] for p in pairs], "queries"), check_texts([p[1] for p in pairs], "passages")
    activation = default_activation(params, hparams) if activation_fn is None else activation_fn
    if max_length is not None:
        check_positive("max_length", max_length)
    logits = run_model(tokenizer, params, hparams, lambda seq, pooled, batch: classifier_head(pooled, params),
                       [tokenizer.tokenize(t) for t in queries], [tokenizer.tokenize(t) for t in passages],
                       token_limit(hparams, 512 if max_length is None else max_length), batch_size, progress,
                       desc="cross-encoder", cls_only=True, n_threads=n_threads)
    with np.errstate(over="ignore"):  # a sigmoid's exp(-x) overflows for x < -88: 1 / inf = 0, its limit
        scores = np.asarray(activation(np.array(logits, dtype=np.float32).reshape(len(pairs), n_labels(params))),
                            dtype=np.float32)
    if apply_softmax and scores.shape[1] > 1:
        scores = SCORE_FUNCTIONS["softmax"](scores)
    scores = scores[:, 0] if scores.shape[1] == 1 else scores
    return scores[0] if single else scores


def rank(query, documents, tokenizer, params, hparams, top_k=None, return_documents=False, batch_size=32,
         activation_fn=None, max_length=None, progress=False, n_threads=None):
    """[{"corpus_id": index in documents, "score": float}, ...] for the top_k documents (None: all), best
    first, as CrossEncoder.rank: each document scored with the query by predict; ties keep the documents' order.
    return_documents: each result also has "text", the document. Only for a model with one label."""
    check_top_k(top_k, none_means="every document")
    if n_labels(params) != 1:
        raise ValueError(f"rank needs a model with one label (a reranker); this one has {n_labels(params)}: use "
                         f"predict on [query, document] pairs")
    documents = check_texts(documents, "documents")
    scores = predict([[query, d] for d in documents], tokenizer, params, hparams, batch_size, activation_fn,
                     max_length=max_length, progress=progress, n_threads=n_threads)
    results = [{"corpus_id": i, "score": float(s), **({"text": documents[i]} if return_documents else {})}
               for i, s in enumerate(scores)]
    return sorted(results, key=lambda r: r["score"], reverse=True)[:top_k]
