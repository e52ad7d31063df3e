"""Fine-tuning a classifier of sequences or of tokens, or a question-answering model, over a dataset:
length-bucketed shuffled batches, one epoch of AdamW steps (the learning rate of each step given, gradients
clipped), and predictions for evaluation. finetune_demo.py and benchmarks/bench_train.py run these.

    params = training.init_classifier(params, hparams, num_labels, seed=0)
    state, lrs = optim.adamw_init(params), schedule(epochs * steps_per_epoch, warmup_ratio=0.1, lr=5e-5)
    for epoch in range(epochs):
        batches = training_batches(lengths, 32, rng)  # lengths: each row's number of tokens
        train_epoch(params, hparams, tokenizer, tokens, labels, batches, state, lrs[epoch * steps_per_epoch:],
                    rng=rng)
    logits = predict(texts, tokenizer, params, hparams)

A token classifier (e.g. NER) starts from training.init_token_classifier; its rows are words with a label
each, token_labels(tokenizer, words, word_labels) gives the tokens and token labels that train_epoch takes,
and predict_tokens the logits of each row's tokens. A question-answering model starts from
training.init_question_answering; its rows are squad.train_features' (question tokens, window tokens) pairs,
its labels their (start, end) positions [N, 2], and the question_answering pipeline answers with it. A
sentence-embedding model starts from embedding_training.init_embedding_training and trains on pairs with
train_pairs_epoch (columns of tokens: anchors, positives, hard negatives).
"""
import numpy as np
from threadpoolctl import ThreadpoolController
from tqdm import tqdm

from bert import classifier_head, mlm_head, token_classifier_head
from embedding_training import check as check_mnrl, embed_backward, embed_forward, mnrl_backward, mnrl_forward
from optim import adamw_step, clip_grad_norm, linear_schedule, run_split, threads, warmup_steps
from runner import per_token, run_model
from layers import IGNORE, MLM, SPANS, TOKENS, cross_entropy_forward
from mlm_data import mask_tokens, padded
from parallel import bert_threaded
from training import add_grads, check, checked_loss_and_grads, real_length

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
    is spread too. The loss and gradients are the whole batch's (each shard weighs its share of the rows, or of
    a token classifier's labelled tokens), up to float rounding; dropout draws from rng.spawn(shards). A shard
    is cut to its own rows' length, except for a question-answering model, whose softmax over the positions
    takes in the batch's padding too (as in HF)."""
    hp, kind, input_ids, segment_ids, attention_mask, labels, rng = check(
        params, hparams, input_ids, segment_ids, attention_mask, labels, rng)
    shards = [rows for rows in np.array_split(np.arange(len(input_ids)), threads()) if len(rows)]
    if kind in (TOKENS, MLM):  # a shard weighs its share of the labelled tokens; one without any adds nothing
        counts = [np.count_nonzero(labels[rows] != IGNORE) for rows in shards]
        shards, weights = [r for r, n in zip(shards, counts) if n], [n / sum(counts) for n in counts if n]
    else:
        weights = [len(rows) / len(input_ids) for rows in shards]
    rngs = rng.spawn(len(shards)) if rng is not None else [None] * len(shards)

    def run(part):
        results = []
        for rows, weight, shard_rng in part:
            length = input_ids.shape[1] if kind == SPANS else real_length(attention_mask[rows])
            inputs = [a[rows, :length] for a in (input_ids, segment_ids, attention_mask)]
            shard_labels = labels[rows, :length] if kind in (TOKENS, MLM) else labels[rows]
            results.append(checked_loss_and_grads(params, hp, kind, *inputs, shard_labels, shard_rng, weight))
        return results

    work = list(zip(shards, weights, rngs))
    if len(work) == 1:
        return run(work)[0]
    with BLAS.limit(limits=1, user_api="blas"):
        results = [r for part in run_split(run, work) for r in part]
    loss, grads = results[0]
    for (shard_loss, shard_grads), rows in zip(results[1:], shards[1:]):
        loss += shard_loss
        add_grads(grads, shard_grads, None if kind == MLM else input_ids[rows])
    return loss, grads


def token_labels(tokenizer, words, word_labels):
    """A sentence given as words (e.g. a CoNLL sentence) with one class id per word -> (tokens, labels): its
    WordPiece tokens, each word tokenized on its own, and one label per token: the word's on its first token,
    IGNORE on the others, as transformers' token-classification examples align them (word_ids(),
    label_all_tokens=False). A word without tokens (only spaces or control characters) loses its label."""
    if len(words) != len(word_labels):
        raise ValueError(f"{len(words)} words but {len(word_labels)} labels: give one label per word")
    tokens, labels = [], []
    for word, label in zip(words, word_labels):
        pieces = tokenizer.tokenize(word)
        tokens += pieces
        labels += [int(label)] + [IGNORE] * (len(pieces) - 1) if pieces else []
    return tokens, labels


def batch_labels(labels, rows, width):
    """The labels of a batch of the rows: labels[rows] when labels is an array (one entry per row); when it is
    a list of each row's token labels (token_labels), an int64 array [B, width] of them after [CLS], cut as
    tokenizer.batch_encode_tokens cuts the tokens, IGNORE on [CLS], [SEP] and padding."""
    if isinstance(labels, np.ndarray):
        return labels[rows]
    batch = np.full((len(rows), width), IGNORE, dtype=np.int64)
    for r, i in enumerate(rows):
        kept = labels[i][:width - 2]
        batch[r, 1:1 + len(kept)] = kept
    return batch


def train_epoch(params, hparams, tokenizer, tokens, labels, batches, state, lrs, max_length=128,
                weight_decay=0.01, max_norm=1.0, rng=None, desc="train", progress=True):
    """One AdamW step per batch of rows (clip_grad_norm to max_norm first, unless max_norm is None), params
    updated in place, the gradients from parallel_loss_and_grads. tokens: each row's WordPiece tokens
    (tokenizer.tokenize), or a pair of token lists for a row of two texts (e.g. squad.train_features' question
    and context window: [CLS] first [SEP] second [SEP]); labels: the rows' labels as loss_and_grads takes
    them, or for a token classifier a list of each row's token labels (token_labels); lrs: the learning rate of
    each step; rng: dropout (None: no dropout). A tqdm bar shows the mean loss so far. Returns the mean loss
    over the epoch."""
    def loss_and_grads(rows):
        batch = encode_rows(tokenizer, [tokens[i] for i in rows], max_length)
        return parallel_loss_and_grads(params, hparams, batch["input_ids"], batch["segment_ids"],
                                       batch["attention_mask"], batch_labels(labels, rows, batch["input_ids"].shape[1]),
                                       rng)

    return run_epoch(params, loss_and_grads, batches, state, lrs, weight_decay, max_norm, desc, progress)


def encode_rows(tokenizer, rows, max_length):
    """tokenizer.batch_encode_tokens of rows of tokens, or of rows of (first, second) token lists."""
    if rows and isinstance(rows[0], tuple):
        first, second = zip(*rows)
        return tokenizer.batch_encode_tokens(list(first), list(second), max_length=max_length)
    return tokenizer.batch_encode_tokens(rows, max_length=max_length)


def train_pairs_epoch(params, hparams, tokenizer, columns, batches, state, lrs, max_length=128, weight_decay=0.01,
                      max_norm=1.0, rng=None, desc="train", progress=True, scale=20.0):
    """train_epoch for a sentence-embedding model (params from embedding_training.init_embedding_training) and
    MultipleNegativesRankingLoss: columns are the anchors', positives' (and hard negatives') WordPiece tokens,
    one list per column of one entry per row; the gradients from parallel_mnrl_loss_and_grads."""
    def loss_and_grads(rows):
        encoded = [tokenizer.batch_encode_tokens([column[i] for i in rows], max_length=max_length)
                   for column in columns]
        return parallel_mnrl_loss_and_grads(params, hparams, encoded, scale, rng)

    return run_epoch(params, loss_and_grads, batches, state, lrs, weight_decay, max_norm, desc, progress)


def train_mlm_epoch(params, hparams, tokenizer, blocks, batches, state, lrs, mask_rng, weight_decay=0.01,
                    max_norm=1.0, rng=None, desc="train", progress=True, mlm_probability=0.15, starts=None):
    """train_epoch for a masked language model (params from training.init_masked_lm): blocks are
    mlm_data.group_texts' rows of token ids, or line_rows' sequences (each batch padded to its longest); each
    batch is masked anew, as run_mlm's collator does (mlm_data.mask_tokens with mask_rng, never [CLS], [SEP],
    [PAD] or [MASK]); starts: the blocks' word starts for whole-word masking (see masked_batch), or None."""
    def loss_and_grads(rows):
        input_ids, labels, attention_mask = masked_batch(blocks, rows, tokenizer, mask_rng, mlm_probability, starts)
        return parallel_loss_and_grads(params, hparams, input_ids, None, attention_mask, labels, rng)

    return run_epoch(params, loss_and_grads, batches, state, lrs, weight_decay, max_norm, desc, progress)


def masked_batch(blocks, rows, tokenizer, mask_rng, mlm_probability=0.15, starts=None):
    """(input_ids, labels, attention_mask) of the rows, masked as run_mlm's collator masks them
    (mlm_data.mask_tokens with mask_rng, never [CLS], [SEP], [PAD] or [MASK]): group_texts' blocks as they are
    (attention_mask None: no padding), line_rows' sequences padded with [PAD] (mlm_data.padded). starts: None
    (token by token), or whole words: the blocks' mlm_data.word_starts, grouped or cut as the blocks are."""
    if isinstance(blocks, np.ndarray):
        input_ids, attention_mask = blocks[rows], None
        starts = None if starts is None else starts[rows]
    else:
        input_ids, attention_mask = padded([blocks[i] for i in rows], tokenizer.vocab["[PAD]"])
        starts = None if starts is None else padded([starts[i] for i in rows], 0)[0]
    input_ids, labels = mask_tokens(input_ids, mask_rng, tokenizer.vocab["[MASK]"], len(tokenizer.vocab),
                                    never_masked(tokenizer), mlm_probability, starts)
    return input_ids, labels, attention_mask


def never_masked(tokenizer):
    """The ids mask_tokens never chooses: the special tokens but [UNK] (run_mlm's special_tokens_mask marks the
    [CLS] and [SEP] it adds and leaves a word's [UNK] maskable; the collator never masks padding)."""
    return [tokenizer.vocab[token] for token in tokenizer.specials if token != "[UNK]"]


def masked_lm_loss(input_ids, labels, params, hparams, batch_size=32, attention_mask=None):
    """The mean cross-entropy of a masked language model over every masked token (labels not IGNORE) of the
    rows input_ids [N, L] (attention_mask: 1 on real tokens, None: all real; inference: no dropout); its
    exponential is the perplexity."""
    input_ids, labels = np.asarray(input_ids), np.asarray(labels)
    if not (labels != IGNORE).any():
        raise ValueError("no token is masked (every label is IGNORE, -100): the loss would be undefined")
    total, count = 0.0, 0
    for start in range(0, len(input_ids), batch_size):
        rows = slice(start, start + batch_size)
        masked = labels[rows] != IGNORE
        if not masked.any():
            continue
        seq_output, _ = bert_threaded(input_ids[rows], None, params, hparams,
                                      None if attention_mask is None else attention_mask[rows])
        logits = mlm_head(seq_output[masked], params, hparams)  # [n, V] for the batch's n masked tokens
        total += cross_entropy_forward(logits, labels[rows][masked])[0] * len(logits)  # the training loss's
        count += len(logits)
    return total / count


def run_epoch(params, loss_and_grads, batches, state, lrs, weight_decay, max_norm, desc, progress):
    """One clipped AdamW step per batch of rows, loss_and_grads(rows) -> (loss, grads), under a tqdm bar of
    the mean loss so far; returns the mean loss."""
    total = 0.0
    with tqdm(total=len(batches), desc=desc, unit="batch", disable=not progress) as bar:
        for step, (rows, lr) in enumerate(zip(batches, lrs), 1):
            loss, grads = loss_and_grads(rows)
            if max_norm is not None:
                clip_grad_norm(grads, max_norm)
            adamw_step(params, grads, state, lr, weight_decay)
            total += loss
            bar.set_postfix(loss=f"{total / step:.4f}", refresh=False)
            bar.update()
    return total / max(1, len(batches))


def parallel_mnrl_loss_and_grads(params, hparams, columns, scale=20.0, rng=None):
    """embedding_training.mnrl_loss_and_grads with each column's rows split into one shard per thread, the
    shards' forward and backward passes run at once while BLAS runs single-threaded; the loss couples all rows,
    so it is computed between the two. The same loss and gradients up to float rounding; dropout draws from
    rng.spawn(shards)."""
    hp = check_mnrl(params, hparams, columns, scale, rng)
    shards = [rows for rows in np.array_split(np.arange(len(columns[0]["input_ids"])), threads()) if len(rows)]
    pieces = [{key: np.asarray(column[key])[rows] for key in ("input_ids", "segment_ids", "attention_mask")}
              for column in columns for rows in shards]  # column by column, shard by shard
    rngs = rng.spawn(len(pieces)) if rng is not None else [None] * len(pieces)

    def forward(part):
        return [embed_forward(params, hp, piece, piece_rng) for piece, piece_rng in part]

    def backward(part):
        return [embed_backward(dembeddings, cache, params, hp) for dembeddings, cache in part]

    with BLAS.limit(limits=1, user_api="blas"):
        forwards = [out for part in run_split(forward, list(zip(pieces, rngs))) for out in part]
        n = len(shards)
        loss, cache = mnrl_forward([np.concatenate([e for e, _ in forwards[c * n:(c + 1) * n]])
                                    for c in range(len(columns))], scale)
        cuts = np.cumsum([len(rows) for rows in shards])[:-1]
        dembeddings = [d for column in mnrl_backward(cache) for d in np.split(column, cuts)]
        results = [g for part in run_split(backward, [(d, c) for d, (_, c) in zip(dembeddings, forwards)])
                   for g in part]
    grads = results[0]
    for piece_grads, piece in zip(results[1:], pieces[1:]):
        add_grads(grads, piece_grads, piece["input_ids"])
    return loss, grads


def predict(texts, tokenizer, params, hparams, batch_size=32, max_length=128, text_pairs=None):
    """The classifier's logits (N, num_labels) for the texts, or for the pairs [CLS] text [SEP] text_pair [SEP]
    (cut longest-first to max_length tokens), float32 (inference: no dropout)."""
    logits = run_model(tokenizer, params, hparams, lambda seq, pooled, batch: classifier_head(pooled, params),
                       [tokenizer.tokenize(t) for t in texts],
                       None if text_pairs is None else [tokenizer.tokenize(t) for t in text_pairs], max_length,
                       batch_size, cls_only=True)
    return np.array(logits, dtype=np.float32).reshape(len(texts), -1)


def predict_tokens(tokens, tokenizer, params, hparams, batch_size=32, max_length=128):
    """A token classifier's logits for each row of tokens (token_labels' tokens): one float32 array
    [n, num_labels] per row, for its first n = min(len(row), max_length - 2) tokens (no [CLS], no [SEP])."""
    return run_model(tokenizer, params, hparams,
                     lambda seq, pooled, batch: [row[1:-1] for row in per_token(token_classifier_head(seq, params),
                                                                                  batch)],
                     tokens, None, max_length, batch_size)
