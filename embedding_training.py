"""Training a sentence-embedding model (a sentence-transformers model: the encoder, then pooling, then
Normalize if the folder has it) with sentence-transformers' MultipleNegativesRankingLoss, its default form: for
each anchor, a softmax over scale x the cosine similarity to every candidate of the batch (its own positive,
the other rows' positives, and any hard negatives), the cross-entropy of its own positive.

    trained = init_embedding_training(params, hparams)  # writable copies of the encoder's arrays
    columns = [tokenizer.batch_encode(anchors), tokenizer.batch_encode(positives)]  # (+ hard negatives ...)
    loss, grads = mnrl_loss_and_grads(trained, hparams, columns, scale=20.0, rng=rng)

Each column (a batch_encode dict) goes through the encoder and pooling (embed_forward); the loss couples the
columns (mnrl_forward / mnrl_backward); each column's gradient goes back through pooling and the encoder
(embed_backward). The pooler is not part of a sentence embedding: it gets no gradient and stays as it was.
"""
import numpy as np

from bert import model_config
from st_modules import ST_PLAIN
from training import (add_grads, check_rng, encoder_backward, encoder_forward, real_length, settings,
                      writable_copy)

POOLINGS = ("mean", "cls")  # the poolings trained here (sentence-transformers' Pooling modes of the same names)


def init_embedding_training(params, hparams):
    """Writable float32 copies of the encoder's arrays ({"embeddings", "blocks"}), the arrays that
    MultipleNegativesRankingLoss trains; save with {**params, **trained} to keep the pooler."""
    training_settings(model_config(params, hparams))
    return writable_copy({key: params[key] for key in ("embeddings", "blocks")})


def training_settings(hparams):
    """The folder's pooling and normalize (hparams["sentence_transformers"], else a plain BERT's mean pooling),
    or a ValueError for what is not trained here."""
    if hparams.get("model_type", "bert") != "bert":
        raise ValueError(f"fine-tuning trains BERT checkpoints, not {hparams['model_type']} ones")
    st = {**ST_PLAIN, **(hparams.get("sentence_transformers") or {})}
    if st["pooling"] not in POOLINGS:
        raise ValueError(f"training embeddings with {st['pooling']!r} pooling is not supported: use a model with "
                         f"{' or '.join(POOLINGS)} pooling")
    if st["dense"]:
        raise ValueError("training a model with Dense modules after its pooling is not supported")
    return st


def pooling_forward(x, attention_mask, pooling):  # x [B, L, H] -> [B, H], as sentence-transformers' Pooling
    if pooling == "cls":
        return x[:, 0].copy(), (x.shape, None)
    mask = attention_mask.astype(x.dtype)[:, :, None]  # [B, L, 1]
    counts = np.maximum(mask.sum(axis=1), np.float32(1e-9))  # [B, 1], clamped as torch.clamp(min=1e-9)
    return (x * mask).sum(axis=1) / counts, (x.shape, mask / counts[:, None, :])


def pooling_backward(dpooled, cache):  # [B, H] -> dx [B, L, H]
    shape, weights = cache
    if weights is None:
        dx = np.zeros(shape, dpooled.dtype)
        dx[:, 0] = dpooled
        return dx
    return dpooled[:, None, :] * weights


def normalize_forward(x):  # rows to unit length, as torch.nn.functional.normalize (eps 1e-12)
    norms = np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(1e-12))
    y = x / norms
    return y, (y, norms)


def normalize_backward(dy, cache):
    y, norms = cache
    return (dy - y * (dy * y).sum(axis=-1, keepdims=True)) / norms


def mnrl_forward(embeddings, scale):  # [anchors [B, E], candidates [B, E] ...] -> loss, cache
    """The mean over anchors of -log softmax(scale * cos(anchor, every candidate))[its own positive]."""
    anchors, anchors_cache = normalize_forward(embeddings[0])
    candidates, candidates_cache = normalize_forward(np.concatenate(embeddings[1:]))
    scores = (anchors @ candidates.T) * np.float32(scale)  # [B, k B]
    scores -= scores.max(axis=1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=1, keepdims=True)
    rows = np.arange(len(anchors))
    loss = float(-np.log(probs[rows, rows]).mean())
    return loss, (probs, anchors_cache, candidates_cache, scale)


def mnrl_backward(cache):  # -> the gradient of each column's embeddings
    probs, anchors_cache, candidates_cache, scale = cache
    anchors, candidates = anchors_cache[0], candidates_cache[0]
    dscores = probs.copy()
    rows = np.arange(len(anchors))
    dscores[rows, rows] -= 1
    dscores *= np.float32(scale / len(anchors))
    danchors = normalize_backward(dscores @ candidates, anchors_cache)
    dcandidates = normalize_backward(dscores.T @ anchors, candidates_cache)
    return [danchors, *np.split(dcandidates, len(candidates) // len(anchors))]


def embed_forward(params, hp, batch, rng):
    """One column's embeddings [B, E] (encoder, pooling, Normalize if the model has it) and its cache."""
    trimmed = {key: batch[key][:, :real_length(batch["attention_mask"])]
               for key in ("input_ids", "segment_ids", "attention_mask")}
    x, encoder = encoder_forward(params, hp, trimmed["input_ids"], trimmed["segment_ids"], trimmed["attention_mask"],
                                 rng)
    pooled, pooling = pooling_forward(x, trimmed["attention_mask"], hp["st"]["pooling"])
    normalized = normalize_forward(pooled) if hp["st"]["normalize"] else (pooled, None)
    return normalized[0], (encoder, pooling, normalized[1], trimmed["input_ids"])


def embed_backward(dembeddings, cache, params, hp):  # -> grads of {"embeddings", "blocks"}
    encoder, pooling, normalized, _ = cache
    dpooled = normalize_backward(dembeddings, normalized) if normalized is not None else dembeddings
    return encoder_backward(pooling_backward(dpooled, pooling), encoder, params, hp)


def check(params, hparams, columns, scale, rng):
    """mnrl_loss_and_grads' arguments checked: the settings the pass reads (hp, with hp["st"] the pooling)."""
    hp = {**model_config(params, hparams), **settings(hparams)}
    hp["st"] = training_settings(hp)
    if sorted(params) != ["blocks", "embeddings"]:
        raise ValueError("params must hold the encoder alone ({'embeddings', 'blocks'}): start from "
                         "init_embedding_training(params, hparams)")
    if not isinstance(columns, (list, tuple)) or len(columns) < 2:
        raise ValueError("columns must be a list of at least two batches: anchors, positives (and hard negatives)")
    rows = {len(np.asarray(column["input_ids"])) for column in columns}
    if len(rows) != 1 or 0 in rows:
        raise ValueError(f"every column must have the same number of rows (one per anchor), got {sorted(rows)}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    check_rng(rng)
    return hp


def mnrl_loss_and_grads(params, hparams, columns, scale=20.0, rng=None):
    """MultipleNegativesRankingLoss (sentence-transformers' default: cos_sim, scale 20, anchors to candidates)
    and its gradient for every array of params ({"embeddings", "blocks"}, as init_embedding_training makes
    them). columns: [anchors, positives, hard negatives ...], each tokenizer.batch_encode's dict of the same
    B rows (input_ids, segment_ids, attention_mask). rng: dropout on (training mode); None: no dropout."""
    hp = check(params, hparams, columns, scale, rng)
    forwards = [embed_forward(params, hp, column, rng) for column in columns]
    loss, cache = mnrl_forward([embeddings for embeddings, _ in forwards], scale)
    grads = None
    for dembeddings, (_, column_cache) in zip(mnrl_backward(cache), forwards):
        column_grads = embed_backward(dembeddings, column_cache, params, hp)
        if grads is None:
            grads = column_grads
        else:
            add_grads(grads, column_grads, column_cache[-1])
    return loss, grads
