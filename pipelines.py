"""Running BERT over many texts: length-sorted batches, sentence features (embed) and their pooling.

    features = embed(texts, tokenizer, params, hparams, pooling="mean")   # (N, H) float32, in input order
"""
import numpy as np
from tqdm import tqdm

from bert import bert, model_config
from parallel import map_batches

POOLINGS = ("pooler", "cls", "mean")


def check_pooling(pooling, params):
    """Raise ValueError unless `pooling` is one of POOLINGS and the checkpoint supports it."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}: use one of {', '.join(POOLINGS)}")
    if pooling == "pooler" and "pooler" not in params:
        raise ValueError("this checkpoint has no pooler: use pooling 'cls' or 'mean'")


def token_limit(hparams, max_length=512):
    """The most tokens, [CLS] and [SEP] included, that one input may have: max_length, or the model's
    max_position_embeddings when that is smaller."""
    return min(max_length, hparams["max_position_embeddings"])


def embed(texts, tokenizer, params, hparams, batch_size=32, pooling="pooler", max_length=512, progress=True,
          return_n_tokens=False, n_threads=None):
    """One float32 feature row per text, (N, H), in input order; with return_n_tokens, also each text's
    token count before truncation, [CLS] and [SEP] included, (N,) int64.

    pooling: "pooler" (BERT's pooled output), "cls" (the final [CLS] vector) or "mean" (the final token
    vectors averaged over the attention mask, as sentence-transformers does). Texts are sorted by token
    length into batches of at most batch_size (length_batches), so little padding is computed; a text
    longer than token_limit(hparams, max_length) tokens is cut, keeping the final [SEP]. The batches run on
    n_threads worker threads (default: one per core) with one BLAS thread each (parallel.map_batches);
    the features are the same for any n_threads."""
    model_config(params, hparams)
    check_pooling(pooling, params)
    for name, value in (("batch_size", batch_size), ("max_length", max_length)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    max_length = token_limit(hparams, max_length)
    if isinstance(texts, str):
        raise TypeError("embed takes a list of texts; wrap a single text in a list")
    tokens = [tokenizer.tokenize(text) for text in texts]  # once: lengths for sorting, then the batches
    n_tokens = np.array([len(t) + 2 for t in tokens], dtype=np.int64)
    features = np.empty((len(tokens), params["embeddings"]["word"].shape[1]), dtype=np.float32)

    def run(rows):
        batch = tokenizer.batch_encode_tokens([tokens[i] for i in rows], max_length=max_length)
        seq_output, pooled_output = bert(batch["input_ids"], batch["segment_ids"], params, hparams,
                                         attention_mask=batch["attention_mask"], cls_only=pooling != "mean")
        return _pool(pooling, seq_output, pooled_output, batch["attention_mask"])

    # the longest batches first, so that the worker threads finish together
    batches = length_batches(np.minimum(n_tokens, max_length), batch_size, hparams["hidden_size"])[::-1]
    with tqdm(total=len(tokens), desc="embed", unit="text", disable=not progress) as bar:
        for rows, pooled in zip(batches, map_batches(run, batches, n_threads)):
            features[rows] = pooled
            bar.update(len(rows))
    return (features, n_tokens) if return_n_tokens else features


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


def _pool(pooling, seq_output, pooled_output, attention_mask):
    """(B, H) sentence features from the encoder's outputs."""
    if pooling == "pooler":
        return pooled_output
    if pooling == "cls":
        return seq_output[:, 0]
    weights = attention_mask[:, :, None].astype(np.float32)
    return (seq_output * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1e-9))
