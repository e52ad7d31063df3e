"""search.semantic_search against sentence-transformers' util.semantic_search (tests/golden/pipelines/
semantic_search.json.gz, make_golden_pipelines.py) on golden embeddings: the same corpus rows in the same
order (rows of equal score may come in either order), scores within 1e-6; chunking changes nothing."""
import os

import numpy as np
import pytest

import task_models as tm
from search import semantic_search

GOLDEN = tm.read_golden("semantic_search")
QUERIES, CORPUS = tm.search_inputs(np.load(os.path.join(tm.GOLDEN, "embeddings.npz")))


def assert_same_hits(ours, theirs, score_function="cos_sim"):
    """The same scores rank by rank, and the same corpus rows but where another row has the same score (the
    corpus holds duplicates): there the row given must truly have that score."""
    unit = (lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)) if score_function == "cos_sim" else (lambda x: x)
    true_scores = unit(QUERIES.astype(np.float64)) @ unit(CORPUS.astype(np.float64)).T
    assert [len(hits) for hits in ours] == [len(hits) for hits in theirs]
    for query, (mine, expected) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose([h["score"] for h in mine], [h["score"] for h in expected], rtol=1e-6, atol=1e-6)
        for a, b in zip(mine, expected):
            assert a["corpus_id"] == b["corpus_id"] or true_scores[query, a["corpus_id"]] == pytest.approx(
                b["score"], rel=1e-5, abs=1e-5), (query, a, b)


@pytest.mark.parametrize("case", GOLDEN, ids=lambda case: "-".join(f"{k}={v}" for k, v in case["kwargs"].items()))
def test_semantic_search_matches_sentence_transformers(case):
    ours = semantic_search(QUERIES, CORPUS, **case["kwargs"])
    assert_same_hits(ours, case["outputs"], case["kwargs"].get("score_function", "cos_sim"))
    assert all(type(h["corpus_id"]) is int and type(h["score"]) is float for hits in ours for h in hits)


def test_chunks_do_not_change_the_hits():
    whole = semantic_search(QUERIES, CORPUS, top_k=7)
    for chunks in ({"query_chunk_size": 1, "corpus_chunk_size": 1}, {"query_chunk_size": 5, "corpus_chunk_size": 6}):
        assert_same_hits(semantic_search(QUERIES, CORPUS, top_k=7, **chunks), whole)
    assert_same_hits(semantic_search(QUERIES[0], CORPUS, top_k=7), whole[:1])  # one query as a [D] vector
    assert len(semantic_search(QUERIES, CORPUS[:3], top_k=10)[0]) == 3  # top_k over a smaller corpus


@pytest.mark.parametrize("kwargs, message", [
    ({"corpus_embeddings": CORPUS[:, :8]}, "query_embeddings have 32 dimensions but corpus_embeddings have 8"),
    ({"corpus_embeddings": CORPUS[:0]}, r"corpus_embeddings must be a non-empty \[rows, dimensions\] array"),
    ({"top_k": 0}, "top_k must be a positive integer, got 0"),
    ({"score_function": "euclidean"}, "unknown score_function 'euclidean': use cos_sim or dot_score"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        semantic_search(**{"query_embeddings": QUERIES, "corpus_embeddings": CORPUS, **kwargs})
