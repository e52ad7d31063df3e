"""Fine-tuning a sequence classifier over a dataset: length-bucketed shuffled batches, one epoch of AdamW steps
(the learning rate of each step given, gradients clipped), and predictions for evaluation. finetune_demo.py
and benchmarks/bench_train.py run these.

    params = training.init_classifier(params, hparams, num_labels, seed=0)
    state, lrs = optim.adamw_init(params), schedule(epochs * steps_per_epoch, warmup_ratio=0.1, lr=5e-5)
    for epoch in range(epochs):
        batches = training_batches(lengths, 32, rng)  # lengths: each row's number of tokens
        train_epoch(params, hparams, tokenizer, tokens, labels, batches, state, lrs[epoch * steps_per_epoch:],
                    rng=rng)
    logits = predict(texts, tokenizer, params, hparams)
"""
import numpy as np
from threadpoolctl import ThreadpoolController
from tqdm import tqdm

from bert import classifier_head
from optim import adamw_step, clip_grad_norm, leaves, linear_schedule, run_split, threads, warmup_steps
from pipelines import embed
from training import check, checked_loss_and_grads

# batches per length bucket: transformers' LengthGroupedSampler groups 50, which on a 1,600-row training set sorts
# the whole epoch by length; groups of 8 keep more mixing of lengths across batches (closer to Trainer's default
# random batches) for a little more padding
BUCKET = 8
BLAS = ThreadpoolController()


def training_batches(lengths, batch_size, rng, group=BUCKET):
    """Row indices in batches of batch_size (the last may be smaller) with little padding: the rows are
    shuffled, cut into groups of `group` batches, sorted by length within each group and cut into batches;
    then the order of the batches is shuffled. group=1: random batches, as Trainer's default sampler draws
    them."""
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), group * batch_size):
        group_rows = order[start:start + group * batch_size]
        group_rows = group_rows[np.argsort(lengths[group_rows], kind="stable")]
        batches += [group_rows[i:i + batch_size] for i in range(0, len(group_rows), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def schedule(total_steps, warmup_ratio, lr):
    """The learning rate of every optimizer step: linear warmup over ceil(warmup_ratio * total_steps) steps,
    then linear decay to 0 (optim.linear_schedule)."""
    warmup = warmup_steps(total_steps, warmup_ratio)
    return [linear_schedule(step, total_steps, warmup, lr) for step in range(total_steps)]


def parallel_loss_and_grads(params, hparams, input_ids, segment_ids, attention_mask, labels, rng=None):
    """training.loss_and_grads with the batch's rows split into one shard per thread (optim.threads()), the
    shards run at once while BLAS runs single-threaded: the element-wise work, which NumPy does on one thread,
    is spread too. The loss and gradients are the whole batch's (each shard weighs its share of the rows), up
    to float rounding; dropout draws from rng.spawn(shards)."""
    hp, kind, input_ids, segment_ids, attention_mask, labels, rng = check(
        params, hparams, input_ids, segment_ids, attention_mask, labels, rng)
    shards = [rows for rows in np.array_split(np.arange(len(input_ids)), threads()) if len(rows)]
    rngs = rng.spawn(len(shards)) if rng is not None else [None] * len(shards)

    def run(part):
        results = []
        for rows, shard_rng in part:
            length = np.flatnonzero(attention_mask[rows].any(axis=0))[-1] + 1  # the shard's own padding only
            inputs = [a[rows, :length] for a in (input_ids, segment_ids, attention_mask)]
            results.append(checked_loss_and_grads(params, hp, kind, *inputs, labels[rows], shard_rng,
                                                  weight=len(rows) / len(input_ids)))
        return results

    if len(shards) == 1:
        return run([(shards[0], rngs[0])])[0]
    with BLAS.limit(limits=1, user_api="blas"):
        results = [r for part in run_split(run, list(zip(shards, rngs))) for r in part]
    loss, grads = results[0]
    for (shard_loss, shard_grads), rows in zip(results[1:], shards[1:]):
        loss += shard_loss
        for (path, total), (_, g) in zip(leaves(grads), leaves(shard_grads)):
            if path == "embeddings/word":  # only the rows of the shard's tokens
                ids = np.unique(input_ids[rows])
                total[ids] += g[ids]
            else:
                total += g
    return loss, grads


def train_epoch(params, hparams, tokenizer, tokens, labels, batches, state, lrs, max_length=128,
                weight_decay=0.01, max_norm=1.0, rng=None, desc="train", progress=True):
    """One AdamW step per batch of rows (clip_grad_norm to max_norm first, unless max_norm is None), params
    updated in place, the gradients from parallel_loss_and_grads. tokens: each row's WordPiece tokens
    (tokenizer.tokenize); labels: the rows' labels as loss_and_grads takes them; lrs: the learning rate of
    each step; rng: dropout (None: no dropout). A tqdm bar shows the mean loss so far. Returns the mean loss
    over the epoch."""
    total = 0.0
    with tqdm(total=len(batches), desc=desc, unit="batch", disable=not progress) as bar:
        for step, (rows, lr) in enumerate(zip(batches, lrs), 1):
            batch = tokenizer.batch_encode_tokens([tokens[i] for i in rows], max_length=max_length)
            loss, grads = parallel_loss_and_grads(params, hparams, batch["input_ids"], batch["segment_ids"],
                                                  batch["attention_mask"], labels[rows], rng)
            if max_norm is not None:
                clip_grad_norm(grads, max_norm)
            adamw_step(params, grads, state, lr, weight_decay)
            total += loss
            bar.set_postfix(loss=f"{total / step:.4f}", refresh=False)
            bar.update()
    return total / max(1, len(batches))


def predict(texts, tokenizer, params, hparams, batch_size=32, max_length=128):
    """The classifier's logits (N, num_labels) for the texts, float32 (inference: no dropout)."""
    pooled = embed(texts, tokenizer, params, hparams, batch_size=batch_size, pooling="pooler", normalize=False,
                   max_length=max_length, progress=False)
    return classifier_head(pooled, params)
