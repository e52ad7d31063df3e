"""Running a function over batches on worker threads, one BLAS thread each, so that every core computes.

A forward pass alternates matrix products (BLAS spreads each over the cores) with element-wise work (NumPy
runs it on one core while the others wait). With one worker thread per core and BLAS held to one thread,
each core runs its own batch, element-wise work included: NumPy releases the GIL inside matrix products and
ufuncs, so the threads run at once.

    for result in map_batches(fn, batches, n_threads=2):   # fn(batch) for each batch, in order
    for item in ahead(items):        # the items of an iterable, the next one computed while the caller uses this one
    seq_output, pooled_output = bert_threaded(input_ids, None, params, hparams)   # bert.bert on every core
"""
import collections
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from bert import bert, check_inputs, model_config


def available_cores():
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def map_batches(fn, batches, n_threads=None):
    """Yield fn(batch) for each batch, in order, computed by n_threads worker threads (default:
    available_cores()) with BLAS limited to one thread (process-wide, until the last result is out). With
    n_threads=1 the calling thread computes them, on one BLAS thread too: each batch is computed the same
    way whatever n_threads is, so the results are identical. batches is read as the threads need more work
    (two batches per thread in hand), so it may be a generator over more than memory holds. Stopping early,
    or an exception in fn, cancels the calls not yet started."""
    return _map_batches(fn, batches, thread_count(n_threads))


def thread_count(n_threads):
    """n_threads, or available_cores() for None; anything but a positive integer is a ValueError."""
    n_threads = available_cores() if n_threads is None else n_threads
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    return n_threads


def _map_batches(fn, batches, n_threads):
    with threadpool_limits(limits=1, user_api="blas"):
        if n_threads == 1:
            yield from map(fn, batches)
            return
        pool, running = ThreadPoolExecutor(n_threads), collections.deque()
        try:
            for batch in batches:
                running.append(pool.submit(fn, batch))
                if len(running) == 2 * n_threads:
                    yield running.popleft().result()
            while running:
                yield running.popleft().result()
        finally:
            pool.shutdown(cancel_futures=True)


def ahead(items):
    """Yield the items of an iterable in order, each one computed on a thread of its own while the caller
    uses the one before: work done to produce an item (reading, tokenizing) overlaps the caller's."""
    iterator, end = iter(items), object()
    with ThreadPoolExecutor(1) as pool:
        coming = pool.submit(next, iterator, end)
        while (item := coming.result()) is not end:
            coming = pool.submit(next, iterator, end)
            yield item


def bert_threaded(input_ids, segment_ids, params, hparams, attention_mask=None, cls_only=False, n_threads=None):
    """bert.bert with the batch cut into a slice per thread (n_threads: default available_cores()), each slice
    run on a worker thread with one BLAS thread (map_batches), so the element-wise work between the matrix
    products (softmax, layer norm, GELU) runs on every core too. Returns what bert.bert returns, to float32
    rounding; a single sequence, or n_threads=1, is bert.bert itself, its products on all BLAS threads."""
    n_threads = thread_count(n_threads)
    ids, segments, mask, _ = check_inputs(input_ids, segment_ids, attention_mask, model_config(params, hparams))
    if len(ids) < 2 or n_threads == 1:
        return bert(input_ids, segment_ids, params, hparams, attention_mask, cls_only)
    slices = np.array_split(np.arange(len(ids)), min(n_threads, len(ids)))
    outputs = list(map_batches(lambda rows: bert(ids[rows], segments[rows], params, hparams, mask[rows], cls_only),
                               slices, len(slices)))
    pooled = None if outputs[0][1] is None else np.concatenate([p for _, p in outputs])
    return np.concatenate([x for x, _ in outputs]), pooled
