"""parallel.map_batches: results in order, calls on several threads at once with one BLAS thread each,
batches read as needed, errors and early stops cancel the rest, the BLAS limit is lifted afterwards.
parallel.ahead: the items in order, the next one made while the caller uses the current one.
parallel.bert_threaded: bert.bert's outputs, its batch cut over worker threads."""
import os
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from bert import bert
from conftest import GOLDEN_DIR
from parallel import ahead, available_cores, bert_threaded, map_batches
from utils import load_tokenizer_hparams_and_params


def blas_threads():
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


@pytest.mark.parametrize("n_threads", [1, 2, 5])
def test_results_come_in_input_order(n_threads):
    def slow_square(x):
        time.sleep(0.002 * (x % 3))  # later batches often finish first
        return x * x
    assert list(map_batches(slow_square, range(20), n_threads)) == [x * x for x in range(20)]


def test_workers_run_at_once_on_one_blas_thread_each():
    before = blas_threads()
    both_running = threading.Barrier(2, timeout=10)  # breaks (and the test fails) unless 2 calls overlap

    def work(batch):
        both_running.wait()
        return threading.get_ident(), blas_threads()
    results = list(map_batches(work, [0, 1], n_threads=2))
    assert len({ident for ident, _ in results}) == 2
    assert all(threads == [1] * len(before) for _, threads in results)
    assert blas_threads() == before  # lifted when the last result is out
    assert list(map_batches(lambda batch: blas_threads(), [0], n_threads=1)) == [[1] * len(before)]


def test_an_error_stops_the_batches_not_yet_started():
    started = []

    def fail_on_two(x):
        started.append(x)
        if x == 2:
            raise RuntimeError("batch 2 failed")
        time.sleep(0.05)
        return x
    with pytest.raises(RuntimeError, match="batch 2 failed"):
        list(map_batches(fail_on_two, range(100), n_threads=2))
    assert len(started) < 10


def test_stopping_early_cancels_the_rest():
    started = []
    results = map_batches(lambda x: started.append(x) or time.sleep(0.05), range(100), n_threads=2)
    next(results)
    results.close()
    assert len(started) < 10


@pytest.mark.parametrize("bad", [0, -1, 2.5, "2", True])
def test_bad_thread_counts_are_named_before_any_work(bad):
    with pytest.raises(ValueError, match=f"n_threads must be a positive integer or None, got {bad!r}"):
        map_batches(pytest.fail, [1], bad)


def test_default_is_every_available_core():
    assert available_cores() >= 1
    assert list(map_batches(lambda x: x + 1, [1, 2, 3])) == [2, 3, 4]


def test_batches_are_read_only_as_the_threads_need_them():
    read = []

    def batches():
        for x in range(1000):
            read.append(x)
            yield x
    results = map_batches(lambda x: x, batches(), n_threads=2)
    assert next(results) == 0 and len(read) == 4  # two batches per thread in hand
    assert list(results) == list(range(1, 1000))


def test_ahead_makes_the_next_item_while_the_caller_uses_this_one():
    made = [threading.Event() for _ in range(3)]

    def items():
        for i, event in enumerate(made):
            event.set()
            yield threading.get_ident(), i
    caller = threading.get_ident()
    for maker, i in ahead(items()):
        assert maker != caller
        assert made[min(i + 1, 2)].wait(timeout=10)  # made while the caller holds item i


def test_ahead_passes_errors_on_in_order():
    def items():
        yield 1
        raise KeyError("no more")
    got = ahead(items())
    assert next(got) == 1
    with pytest.raises(KeyError, match="no more"):
        next(got)


@pytest.fixture(scope="module")
def tiny():
    _, hparams, params = load_tokenizer_hparams_and_params(os.path.join(GOLDEN_DIR, "tiny-gelu"))
    return params, hparams


@pytest.mark.parametrize("n_threads, cls_only", [(2, False), (3, True), (8, False)])
def test_bert_threaded_equals_bert(tiny, n_threads, cls_only):
    params, hparams = tiny
    rng = np.random.default_rng(0)
    ids, segments = rng.integers(0, hparams["vocab_size"], (5, 9)), rng.integers(0, 2, (5, 9))
    mask = np.arange(9) < rng.integers(1, 10, (5, 1))  # padded rows of different lengths
    threaded = bert_threaded(ids, segments, params, hparams, mask, cls_only, n_threads)
    alone = bert(ids, segments, params, hparams, mask, cls_only)
    for got, expected in zip(threaded, alone):
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)  # float32 rounding of other batch shapes


def test_bert_threaded_on_one_sequence_is_bert(tiny):
    params, hparams = tiny
    ids = np.arange(1, 8)
    for got, expected in zip(bert_threaded(ids, None, params, hparams), bert(ids, None, params, hparams)):
        np.testing.assert_array_equal(got, expected)


def test_bert_threaded_names_mistakes_as_bert_does(tiny):
    params, hparams = tiny
    with pytest.raises(ValueError, match=r"segment_ids has shape \(3, 4\) but input_ids has shape \(4, 4\)"):
        bert_threaded(np.ones((4, 4), int), np.zeros((3, 4), int), params, hparams)
    with pytest.raises(ValueError, match="n_threads must be a positive integer or None, got 0"):
        bert_threaded(np.ones((4, 4), int), None, params, hparams, n_threads=0)
