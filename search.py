"""Semantic search over embeddings, as sentence-transformers' util.semantic_search: for each query, the top_k
rows of a corpus by cosine similarity (or dot product), best first, computed chunk by chunk so that the scores
in memory stay query_chunk_size x corpus_chunk_size.

    corpus = embed(documents, tokenizer, params, hparams)
    hits = semantic_search(embed(["a thriller set in Berlin"], tokenizer, params, hparams), corpus, top_k=3)
    # [[{"corpus_id": 17, "score": 0.61}, {"corpus_id": 4, "score": 0.55}, {"corpus_id": 9, "score": 0.52}]]
"""
import numpy as np

from checks import check_positive

SCORE_FUNCTIONS = ("cos_sim", "dot_score")


def semantic_search(query_embeddings, corpus_embeddings, top_k=10, score_function="cos_sim", query_chunk_size=100,
                    corpus_chunk_size=500000):
    """One list per query of {"corpus_id", "score"}, the top_k best corpus rows, best first.

    query_embeddings [Q, D] (or one query [D]), corpus_embeddings [N, D]: arrays (e.g. embed's, or a column of
    embed_corpus.py's shards). score_function: "cos_sim" (each row scaled to length 1 first, as
    torch.nn.functional.normalize) or "dot_score"."""
    queries, corpus = _matrix(query_embeddings, "query_embeddings"), _matrix(corpus_embeddings, "corpus_embeddings")
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"query_embeddings have {queries.shape[1]} dimensions but corpus_embeddings have "
                         f"{corpus.shape[1]}: embed both with the same model")
    for name, value in (("top_k", top_k), ("query_chunk_size", query_chunk_size),
                        ("corpus_chunk_size", corpus_chunk_size)):
        check_positive(name, value)
    if score_function not in SCORE_FUNCTIONS:
        raise ValueError(f"unknown score_function {score_function!r}: use {' or '.join(SCORE_FUNCTIONS)}")
    prepare = unit_rows if score_function == "cos_sim" else (lambda x: x)
    query_chunks = [prepare(queries[q:q + query_chunk_size]) for q in range(0, len(queries), query_chunk_size)]
    best = [(np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64))
            for q in query_chunks]  # per query chunk: the best scores so far [rows, <= top_k] and their corpus ids
    for start in range(0, len(corpus), corpus_chunk_size):
        chunk = prepare(corpus[start:start + corpus_chunk_size])
        for n, query_chunk in enumerate(query_chunks):
            kept_scores, kept_ids = best[n]
            scores = np.concatenate([kept_scores, query_chunk @ chunk.T], axis=1)
            ids = np.concatenate([kept_ids, np.broadcast_to(np.arange(start, start + len(chunk)),
                                                            (len(scores), len(chunk)))], axis=1)
            keep = np.argpartition(-scores, min(top_k, scores.shape[1]) - 1, axis=1)[:, :top_k]
            best[n] = np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)
    results = []
    for scores, ids in best:
        order = np.argsort(-scores, axis=1, kind="stable")
        results += [[{"corpus_id": int(i), "score": float(s)} for i, s in zip(row_ids, row_scores)]
                    for row_ids, row_scores in zip(np.take_along_axis(ids, order, 1),
                                                   np.take_along_axis(scores, order, 1))]
    return results


def _matrix(embeddings, name):
    """embeddings as a float32 [rows, D] array (one [D] row as [1, D]), or a ValueError naming them."""
    array = np.asarray(embeddings, dtype=np.float32)
    array = array[None] if array.ndim == 1 else array
    if array.ndim != 2 or not array.size:
        raise ValueError(f"{name} must be a non-empty [rows, dimensions] array, got shape {np.shape(embeddings)}")
    return array


def unit_rows(x):  # a new array: each row over max(its length, 1e-12), as torch.nn.functional.normalize
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))
