"""Running BERT over many inputs: run_model sorts them by length into batches (length_batches) and runs the
batches on worker threads, one BLAS thread each (parallel.map_batches); run_model_parts does the same for a
stream of parts. The pipelines (pipelines.py) are built on it.

    head = lambda seq_output, pooled_output, batch: pooled_output  # B results per batch of B rows
    pooled = run_model(tokenizer, params, hparams, head, [tokenizer.tokenize(t) for t in texts])  # in input order
"""
import numpy as np
from tqdm import tqdm

from bert import bert
from checks import check_positive
from parallel import ahead, map_batches
from tokenization import untruncated_lengths


def run_model(tokenizer, params, hparams, head, tokens_a, tokens_b=None, max_length=512, batch_size=32,
              progress=False, desc="pipeline", cls_only=False, n_threads=None):
    """head's result for each input, in input order, from the model run over batches of similar length.

    tokens_a: one token list per input (as tokenizer.tokenize gives them); tokens_b: None, or the second texts
    of pairs (a None row: that input has no second text). Each input becomes [CLS] a [SEP] (b [SEP]), cut
    longest-first to max_length tokens. Inputs are sorted by length into batches of at most batch_size
    (length_batches), so little padding is computed.
    head(seq_output [B, L, H], pooled_output [B, H] or None, batch) -> B results, one per row of the batch (an
    array with the batch axis first, or a list); batch is tokenizer.batch_encode_tokens' dict of the rows, plus
    "rows": their input indices. cls_only: the head reads only [CLS] (seq_output is [B, 1, H], see bert).
    The batches, longest first, run on n_threads worker threads (default: one per core) with one BLAS thread
    each (parallel.map_batches), the head included; the results are the same for any n_threads."""
    with tqdm(total=len(tokens_a), desc=desc, unit="text", disable=not progress) as bar:
        _, results = next(run_model_parts(tokenizer, params, hparams, head, [(tokens_a, tokens_b)], max_length,
                                          batch_size, cls_only, n_threads, bar.update))
    return results


def run_model_parts(tokenizer, params, hparams, head, parts, max_length=512, batch_size=32, cls_only=False,
                    n_threads=None, done=lambda n_inputs: None):
    """For each (tokens_a, tokens_b) in the iterable parts: that part and run_model's results for it.

    The parts are read and sorted into batches one part ahead, on a thread of their own (parallel.ahead), and
    the batches of all parts go through one map_batches: the worker threads go on to the next part's batches
    while the last ones of a part finish, so a stream of parts keeps every core busy. done(n) is called as
    each batch of n inputs is finished."""
    check_positive("batch_size", batch_size)

    def batches_of(part):  # -> the part and its batches, longest first (so the threads finish together)
        lengths = np.minimum(untruncated_lengths(*part), max_length)
        return part, length_batches(lengths, batch_size, hparams["hidden_size"])[::-1] or [np.arange(0)]

    def work():  # every batch of every part: (part, its number of batches, rows)
        for part, batches in ahead(map(batches_of, parts)):
            yield from ((part, len(batches), rows) for rows in batches)

    def run(job):
        (tokens_a, tokens_b), _, rows = job
        if not len(rows):
            return job, []
        batch = tokenizer.batch_encode_tokens([tokens_a[i] for i in rows],
                                              None if tokens_b is None else [tokens_b[i] for i in rows],
                                              max_length=max_length)
        batch["rows"] = rows
        seq_output, pooled_output = bert(batch["input_ids"], batch["segment_ids"], params, hparams,
                                         attention_mask=batch["attention_mask"], cls_only=cls_only)
        return job, head(seq_output, pooled_output, batch)

    finished = 0
    for (part, n_batches, rows), outputs in map_batches(run, work(), n_threads):
        if finished == 0:
            results = [None] * len(part[0])
        for i, result in zip(rows, outputs):
            results[i] = result
        finished += 1
        done(len(rows))
        if finished == n_batches:
            yield part, results
            finished = 0


def length_batches(lengths, batch_size, hidden_size, overhead=64):
    """Indices of texts in batches of at most batch_size, sorted by length and cut where it saves the most
    work: the cuts minimize the sum over batches of rows x L x (1 + L / 6H) (the encoder's FLOPs for L padded
    tokens, attention included) plus `overhead` tokens' worth per forward pass (dynamic programming)."""
    order = np.argsort(lengths, kind="stable")
    longest = np.asarray(lengths, dtype=np.float64)[order]
    cost = np.zeros(len(order) + 1)  # cost[end]: the least work for the first `end` texts
    cut = np.zeros(len(order) + 1, dtype=int)  # cut[end]: where the last of those batches starts
    for end in range(1, len(order) + 1):
        starts = np.arange(max(0, end - batch_size), end)
        L = longest[end - 1]
        total = cost[starts] + (end - starts) * L * (1 + L / (6 * hidden_size)) + overhead
        cut[end], cost[end] = starts[total.argmin()], total.min()
    batches, end = [], len(order)
    while end:
        batches.append(order[cut[end]:end])
        end = cut[end]
    return batches[::-1]


def overflow_windows(n_tokens, room, stride):
    """(start, stop) ranges over n_tokens tokens, each of at most room tokens, consecutive ones overlapping by
    stride tokens, the last one ending with the tokens: transformers' overflowing windows (one range when they
    fit). 0 <= stride < room."""
    spans, start = [], 0
    while True:
        stop = min(start + room, n_tokens)
        spans.append((start, stop))
        if stop == n_tokens:
            return spans
        start += room - stride


def per_token(outputs, batch):
    """A per-token head output [B, L, ...] as one array per row, cut to the row's real tokens."""
    return [row[:n] for row, n in zip(outputs, batch["attention_mask"].sum(axis=1))]


def token_limit(hparams, max_length=512):
    """The most tokens, [CLS] and [SEP] included, that one input may have: max_length, or the model's
    max_position_embeddings when that is smaller."""
    return min(max_length, hparams["max_position_embeddings"])
