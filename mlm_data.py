"""A masked language model's training inputs, as transformers' run_mlm.py makes them: the texts' tokens
concatenated and cut into blocks of equal length (group_texts), or with --line_by_line each text a sequence of
its own, cut to the longest allowed (line_rows) and padded per batch (padded); and BERT's masking of 15% of the
tokens (DataCollatorForLanguageModeling), drawn anew for each batch, token by token or whole words at a time
(its whole_word_mask: word_starts). NumPy alone.

    ids = [tokenizer.convert_tokens_to_ids(["[CLS]"] + tokenizer.tokenize(text) + ["[SEP]"]) for text in texts]
    blocks = group_texts(ids, 128)  # [n_blocks, 128]
    input_ids, labels = mask_tokens(blocks[rows], rng, mask_id, vocab_size, special_ids)
    loss, grads = training.loss_and_grads(params, hparams, input_ids, None, None, labels, rng)
"""
import numpy as np

from layers import IGNORE

MASK_FRACTIONS = (0.8, 0.1)  # of the chosen tokens: replaced by [MASK], by a random token; the rest stay as they are


def group_texts(ids, block_size):
    """run_mlm's group_texts: every text's token ids (each text's own [CLS] ... [SEP] included) concatenated in
    order and cut into rows of block_size, an int64 array [n_blocks, block_size]; the tokens after the last
    whole block are dropped, as run_mlm drops them. So a block may start inside a text and hold the end of one
    text and the start of the next."""
    if type(block_size) is not int or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    flat = np.fromiter((i for text in ids for i in text), dtype=np.int64)
    n_blocks = len(flat) // block_size
    if n_blocks == 0:
        raise ValueError(f"the texts hold {len(flat)} tokens, fewer than one block of {block_size}: give more "
                         "text or a smaller block size")
    return flat[:n_blocks * block_size].reshape(n_blocks, block_size)


def line_rows(ids, max_length):
    """run_mlm's --line_by_line sequences: each text's ids ([CLS] ... [SEP]) as an int64 array of its own, cut to
    max_length by dropping the text's last tokens and keeping the final [SEP], as the tokenizer truncates."""
    if type(max_length) is not int or max_length < 2:
        raise ValueError(f"max_length must be an integer of at least 2 ([CLS] and [SEP]), got {max_length!r}")
    return [np.array(text if len(text) <= max_length else [*text[:max_length - 1], text[-1]], dtype=np.int64)
            for text in ids]


def padded(rows, pad_id):
    """(input_ids [B, L], attention_mask [B, L]) of sequences of different lengths, padded with pad_id after
    each to the longest (L), as the collator pads a batch; attention_mask is 1 on the real tokens."""
    lengths = np.array([len(row) for row in rows])
    attention_mask = (np.arange(lengths.max()) < lengths[:, None]).astype(np.int64)
    input_ids = np.full(attention_mask.shape, pad_id, dtype=np.int64)
    input_ids[attention_mask == 1] = np.concatenate(rows)
    return input_ids, attention_mask


def word_starts(offsets):
    """Which of a text's tokens start a word (a list of bools), from their (start, end) character offsets
    (tokenizer.tokenize_with_offsets), as transformers' whole-word masking finds words: a token starts one
    unless it begins where the token before it ends, so a word's ##pieces, and punctuation written against a
    word ("don't", "end."), belong to it."""
    return [i == 0 or start != offsets[i - 1][1] for i, (start, _) in enumerate(offsets)]


def mask_tokens(input_ids, rng, mask_id, vocab_size, special_ids, mlm_probability=0.15, starts=None):
    """DataCollatorForLanguageModeling's masking: each token that is not one of special_ids is chosen with
    probability mlm_probability; a chosen token becomes mask_id with probability 0.8, a random token id of
    [0, vocab_size) with probability 0.1 (any id, special ones included, as transformers draws them), and
    stays as it is otherwise. Returns (the new input_ids, labels): labels hold the original id of every chosen
    token and IGNORE (-100) elsewhere, both int64 arrays of input_ids' shape. input_ids itself is not changed.
    rng: a numpy Generator (the draws differ from torch's, the probabilities are the same).
    starts: None, or bools of input_ids' shape, true where a token starts a word (word_starts, grouped as the
    ids are): its whole_word_mask, where a word is chosen with probability mlm_probability and then all its
    tokens are; a row's first token, and a token after a special one, starts a word whatever starts says."""
    input_ids = np.asarray(input_ids)
    if input_ids.dtype.kind not in "iu" or input_ids.ndim != 2:
        raise ValueError(f"input_ids must be integer token ids [B, L], got dtype {input_ids.dtype} and shape "
                         f"{input_ids.shape}")
    if not 0 < mlm_probability < 1:
        raise ValueError(f"mlm_probability must lie between 0 and 1, got {mlm_probability!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    maskable = ~np.isin(input_ids, list(special_ids))
    chosen = rng.random(input_ids.shape) < mlm_probability
    if starts is None:
        chosen &= maskable
    else:
        chosen = whole_words(chosen, maskable, starts)
    labels = np.where(chosen, input_ids, IGNORE).astype(np.int64)
    draw = rng.random(input_ids.shape)
    masked = chosen & (draw < MASK_FRACTIONS[0])
    randomized = chosen & (draw >= MASK_FRACTIONS[0]) & (draw < sum(MASK_FRACTIONS))
    inputs = np.array(input_ids, dtype=np.int64)
    inputs[masked] = mask_id
    inputs[randomized] = rng.integers(0, vocab_size, size=int(randomized.sum()))
    return inputs, labels


def whole_words(drawn, maskable, starts):  # [B, L] bools -> the tokens of every word whose start was drawn
    after_special = np.pad(~maskable[:, :-1], ((0, 0), (1, 0)), constant_values=True)
    starts = maskable & (np.asarray(starts, dtype=bool) | after_special)
    word = np.cumsum(starts, axis=1)  # a row's words numbered from 1; every maskable token in one
    hit = np.zeros((len(word), word.shape[1] + 1), dtype=bool)  # [row, word]: the word was drawn
    hit[np.nonzero(drawn & starts)[0], word[drawn & starts]] = True
    return hit[np.arange(len(word))[:, None], word] & maskable
