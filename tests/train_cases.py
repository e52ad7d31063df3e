"""Random-weight classifiers, batches and training settings for the training tests, the same on every machine:
make_golden_train.py feeds them to torch and stores only torch's outputs; the tests feed them to numpy-bert."""
import zlib

import numpy as np

from convert import to_params
from optim import adamw_init, adamw_step, clip_grad_norm, leaves, linear_schedule, warmup_steps
from synthetic import synthetic_state_dict
from layers import IGNORE
from training import init_classifier, init_masked_lm, init_question_answering, init_token_classifier, loss_and_grads

BASE = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
            max_position_embeddings=24, type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0,
            initializer_range=0.2)
CASES = {  # name: config changes; every batch is padded except relu's
    "gelu": dict(hidden_act="gelu", num_labels=3),
    "gelu_new": dict(hidden_act="gelu_new", hidden_size=24, num_attention_heads=3, intermediate_size=40,
                     num_hidden_layers=3, type_vocab_size=3, layer_norm_eps=1e-5, num_labels=2),
    "relu": dict(hidden_act="relu", num_labels=2),
    "mse": dict(hidden_act="gelu", num_labels=1),
    "multi_label": dict(hidden_act="gelu", num_labels=4, problem_type="multi_label_classification"),
}
TOKEN_CASES = {  # token classifiers (BertForTokenClassification): labels per token, IGNORE (-100) on some
    "tokens": dict(hidden_act="gelu", num_labels=5),
    "tokens_gelu_new": dict(CASES["gelu_new"], num_labels=3),
}
QA_CASES = {  # question-answering models (BertForQuestionAnswering): an answer's (start, end) per row
    "qa": dict(hidden_act="gelu"),
    "qa_gelu_new": dict(CASES["gelu_new"], num_labels=2),
}
MLM_CASES = {  # masked language models (BertForMaskedLM, the synthetic MLM head): token ids on some tokens
    "mlm": dict(hidden_act="gelu"),
    "mlm_gelu_new": dict(CASES["gelu_new"]),
    "mlm_untied": dict(hidden_act="gelu_new", tie_word_embeddings=False),  # a decoder of its own
}
GRADIENT_CASES = [*CASES, *TOKEN_CASES, *QA_CASES, *MLM_CASES]  # the random models whose gradients torch's check
BATCH, LENGTH = 5, 12

# The real all-MiniLM-L6-v2 with a seeded head, on a padded batch of real sentences
MINILM_SENTENCES = [
    "a charming , funny and touching film .",
    "it is dull , far too long and never once surprising .",
    "great .",
    "the plot is thin , but the performances are all solid and the ending lands .",
    "an ambitious mess .",
    "i laughed , i cried , and then i checked my watch .",
    "few movies this year have been so confidently made , or so easy to forget .",
    "worth seeing for the music alone .",
]
MINILM_LABELS = np.array([1, 0, 1, 1, 0, 1, 0, 1])
HEAD_SEED = 0
# The same model as a token classifier of 5 labels, on sentences given as words with seeded labels; the
# rare words split into several WordPiece tokens
MINILM_WORDS = [sentence.split() for sentence in MINILM_SENTENCES[:5]] + [
    "schwarzenegger and gyllenhaal meet in reykjavik".split(),
    ["the", "u.s.", "premiere", ",", "in", "mid-october"],
]
MINILM_TOKEN_LABELS = 5
# ... and as a question-answering model: the sentences as contexts of one question
MINILM_QUESTION = "what does the critic think of the film ?"
# ... and as a masked language model (a new seeded MLM head): the sentences with this share of tokens masked
MINILM_MLM_PROBABILITY = 0.3

# MultipleNegativesRankingLoss: (anchor, positive, hard negative) triplets of short real-looking reviews; the
# MiniLM case trains on the pairs with its own mean pooling and Normalize, the tiny one on the triplets with
# cls pooling, no Normalize and another scale
MNRL_TRIPLETS = [
    ("a charming , funny and touching film .", "warm , witty and moving .", "cold , dull and forgettable ."),
    ("it is dull , far too long and never once surprising .", "a tedious , overlong bore .",
     "a tight thriller full of surprises ."),
    ("great .", "wonderful .", "awful ."),
    ("the plot is thin , but the performances are all solid .", "weak story , strong cast .",
     "a gripping story with a wooden cast ."),
    ("an ambitious mess .", "it aims high and falls apart .", "a modest film that gets everything right ."),
    ("worth seeing for the music alone .", "the soundtrack is the best thing about it .",
     "the music is the worst thing about it ."),
]
MNRL_CASES = {  # name: (folder, sentence-transformers settings or None for the folder's own, columns, scale)
    "minilm": (None, None, 2, 20.0),
    "tiny_cls": ("tiny-gelu", {"pooling": "cls", "normalize": False, "dense": []}, 3, 7.5),
}

# Ten AdamW steps with the linear schedule and clipping, dropout off
TRAIN_STEPS = dict(steps=10, lr=1e-3, warmup_ratio=0.1, weight_decay=0.01, max_norm=1.0)
MINILM_TRAIN_STEPS = dict(TRAIN_STEPS, lr=5e-5, max_norm=0.05)  # a small max_norm so that clipping acts
# adamw_step alone, large settings: a wrong decay mask or epsilon placement shows
ADAMW = dict(steps=3, lr=1e-2, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6)


def config(name):
    """The case's config.json as a dict (num_labels and problem_type included)."""
    return {**BASE, **{**CASES, **TOKEN_CASES, **QA_CASES, **MLM_CASES}[name]}


def classifier(name, dtype=np.float32):
    """(hparams, params): synthetic encoder weights and a seeded classifier head (of tokens for TOKEN_CASES),
    in dtype."""
    hparams = config(name)
    seed = zlib.crc32(name.encode())
    encoder = to_params(synthetic_state_dict(hparams, seed=seed), hparams["num_hidden_layers"],
                        hparams.get("tie_word_embeddings", True))
    if name in QA_CASES:
        params = init_question_answering(encoder, hparams, seed=seed)
    elif name in MLM_CASES:
        params = init_masked_lm(encoder, hparams, seed=seed)
    else:
        init = init_token_classifier if name in TOKEN_CASES else init_classifier
        params = init(encoder, hparams, hparams["num_labels"], seed=seed)
    return hparams, cast(params, dtype)


def cast(tree, dtype):
    if isinstance(tree, dict):
        return {key: cast(value, dtype) for key, value in tree.items()}
    if isinstance(tree, list):
        return [cast(value, dtype) for value in tree]
    return tree.astype(dtype, order="C")


def batch(name, step=0):
    """(input_ids, segment_ids, attention_mask, labels) for the case: ids in [1, V) with a [PAD] id (0) among
    the real tokens of row 0, rows padded after random lengths (not in the relu case), two segments."""
    hparams = config(name)
    rng = np.random.default_rng([zlib.crc32(name.encode()), step])
    lengths = np.full(BATCH, LENGTH) if name == "relu" else rng.integers(3, LENGTH + 1, BATCH)
    lengths[rng.integers(BATCH)] = LENGTH
    positions = np.arange(LENGTH)
    attention_mask = (positions < lengths[:, None]).astype(np.int64)
    input_ids = rng.integers(1, hparams["vocab_size"], (BATCH, LENGTH)) * attention_mask
    input_ids[0, 1] = hparams["pad_token_id"]
    splits = rng.integers(1, lengths + 1)
    segment_ids = ((positions >= splits[:, None]) * attention_mask * rng.integers(1, hparams["type_vocab_size"],
                                                                                 (BATCH, 1)))
    n = hparams.get("num_labels", 2)
    if name in QA_CASES:  # a start and an end among each row's tokens, (0, 0) ([CLS]: no answer) in one row
        ends = rng.integers(0, lengths)
        labels = np.stack([rng.integers(0, ends + 1), ends], axis=1)
        labels[1] = 0
    elif name in TOKEN_CASES or name in MLM_CASES:  # IGNORE on [CLS], padding and some of the other tokens
        labels = rng.integers(0, hparams["vocab_size"] if name in MLM_CASES else n, (BATCH, LENGTH))
        unlabelled = rng.random((BATCH, LENGTH)) < (0.7 if name in MLM_CASES else 0.25)
        labels[(attention_mask == 0) | (positions == 0) | unlabelled] = IGNORE
    elif n == 1:
        labels = rng.standard_normal(BATCH).astype(np.float32)
    elif hparams.get("problem_type") == "multi_label_classification":
        labels = (rng.random((BATCH, n)) < 0.5).astype(np.float32)
    else:
        labels = rng.integers(0, n, BATCH)
    return input_ids, segment_ids, attention_mask, labels


def minilm_batch(tokenizer):
    encoded = tokenizer.batch_encode(MINILM_SENTENCES, max_length=128)
    return encoded["input_ids"], encoded["segment_ids"], encoded["attention_mask"], MINILM_LABELS


def zero_gradients(params):
    """Paths of the gradients that are zero but for rounding: for a question-answering model, those of its head's
    bias and of the last layer norm's bias (the start and the end softmax's gradients each sum to zero over a
    row's tokens, and these gradients are such sums)."""
    return {"qa/b", f"blocks/{len(params['blocks']) - 1}/ln_2/b"} if "qa" in params else set()


def minilm_qa_batch(tokenizer):
    """(input_ids, segment_ids, attention_mask, positions): [CLS] question [SEP] sentence [SEP] for each
    MiniLM sentence, with seeded answers (start <= end) among the sentence's tokens, [CLS]'s (0, 0) in row 2."""
    encoded = tokenizer.batch_encode([MINILM_QUESTION] * len(MINILM_SENTENCES), MINILM_SENTENCES, max_length=128)
    first = len(tokenizer.tokenize(MINILM_QUESTION)) + 2  # the context's first token
    last = encoded["attention_mask"].sum(axis=1) - 2  # ... and its last
    rng = np.random.default_rng(HEAD_SEED)
    starts = rng.integers(first, last + 1)
    positions = np.stack([starts, rng.integers(starts, np.minimum(starts + 3, last) + 1)], axis=1)
    positions[2] = 0
    return encoded["input_ids"], encoded["segment_ids"], encoded["attention_mask"], positions


def minilm_word_labels():
    """Seeded labels in [0, MINILM_TOKEN_LABELS) for each word of MINILM_WORDS."""
    rng = np.random.default_rng(HEAD_SEED)
    return [rng.integers(0, MINILM_TOKEN_LABELS, len(words)) for words in MINILM_WORDS]


def mnrl_columns(name):
    """The case's columns of texts: anchors, positives (and hard negatives)."""
    return [list(column) for column in zip(*MNRL_TRIPLETS)][:MNRL_CASES[name][2]]


def probe_vectors(path, size, n=3):
    """n seeded random vectors, uniform in [-0.5, 0.5), for the projections of the tensor at `path`:
    float32 (n, size), cheap to draw for an 11.7M-entry embedding table."""
    vectors = np.random.default_rng(zlib.crc32(path.encode())).random((n, size), dtype=np.float32)
    vectors -= np.float32(0.5)
    return vectors


def probe_indices(path, flat, n=48):
    """n seeded indices into the vector flat: half among its non-zero entries (all of them when fewer), the
    rest anywhere."""
    rng = np.random.default_rng(zlib.crc32(path.encode()) + 1)
    nonzero = np.flatnonzero(flat)
    some = rng.choice(nonzero, min(n // 2, len(nonzero)), replace=False) if len(nonzero) else nonzero
    return np.concatenate([some, rng.choice(flat.size, n - len(some))]).astype(np.int64)


def train_steps(params, hparams, batches, settings):
    """numpy-bert's side of TRAIN_STEPS: one AdamW step per batch with the schedule and clipping, params
    updated in place. Returns the loss and the gradient norm (before clipping) at every step."""
    state = adamw_init(params)
    total = len(batches)
    warmup = warmup_steps(total, settings["warmup_ratio"])
    losses, norms = [], []
    for step, inputs in enumerate(batches):
        loss, grads = loss_and_grads(params, hparams, *inputs)
        norms.append(clip_grad_norm(grads, settings["max_norm"]))
        adamw_step(params, grads, state, linear_schedule(step, total, warmup, settings["lr"]),
                   settings["weight_decay"])
        losses.append(loss)
    return np.array(losses), np.array(norms)


def adamw_grads(params, step):
    """Seeded gradients for adamw_step alone: a different scale per array (1e-4 to 1), a few exact zeros."""
    rng = np.random.default_rng([7, step])
    grads = {}
    for path, p in leaves(params):
        g = rng.standard_normal(p.shape).astype(np.float32) * np.float32(10 ** rng.uniform(-4, 0))
        g.reshape(-1)[rng.choice(g.size, max(1, g.size // 10), replace=False)] = 0
        grads[path] = g
    return unflatten(params, grads)


def unflatten(params, flat, prefix=""):
    """The tree of params' layout holding flat[path] at each path."""
    items = params.items() if isinstance(params, dict) else enumerate(params)
    tree = {key: unflatten(value, flat, f"{prefix}{key}/") if isinstance(value, (dict, list)) else
            flat[f"{prefix}{key}"] for key, value in items}
    return tree if isinstance(params, dict) else [tree[i] for i in range(len(params))]
