"""Running BERT over many texts, on the batched runner (runner.run_model: length-sorted batches): sentence features
(embed) and transformers' task pipelines (text_classification, token_classification, question_answering,
fill_mask), with their outputs, semantics and defaults.

    features = embed(texts, tokenizer, params, hparams)   # (N, H) float32, in input order, the model's own pooling
    text_classification(["a gripping film"], tokenizer, params, hparams)  # [[{"label": ..., "score": ...}]]

answer_spans.py and entities.py hold the post-processing of question answering and token classification.
"""
import re
import warnings

import numpy as np
from tqdm import tqdm

import answer_spans
import entities
from bert import classifier_head, head_of, mlm_head, model_config, qa_head, softmax, token_classifier_head
from bert_normalizer import lowercase
from checks import check_doc_stride, check_positive, check_texts, check_top_k, check_word_lists
from quantization import check_precision, quantize_embeddings
from runner import overflow_windows, per_token, run_model, run_model_parts, token_limit
from search import unit_rows
from st_modules import dense_modules
from tokenization import MASK, PAD

POOLINGS = ("pooler", "cls", "mean", "max", "mean_sqrt_len")
# embed's settings for a checkpoint that is not a sentence-transformers folder (hparams["sentence_transformers"])
PLAIN_BERT = {"pooling": "pooler", "normalize": False, "max_seq_length": 512, "do_lower_case": False}
SCORE_FUNCTIONS = {"softmax": softmax, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "none": lambda x: x}


# --- Sentence features ----------------------------------------------------------------------------------

def embed(texts, tokenizer, params, hparams, batch_size=32, pooling=None, normalize=None, max_length=None,
          progress=True, return_n_tokens=False, n_threads=None, prompt_name=None, prompt=None, truncate_dim=None,
          precision="float32"):
    """One float32 feature row per text, (N, H), in input order; with return_n_tokens, also each text's
    token count before truncation, [CLS] and [SEP] included, (N,) int64.

    pooling: "pooler" (BERT's pooled output), "cls" (the final [CLS] vector), "mean" (the final token vectors
    averaged over the real tokens), "max" (their elementwise maximum) or "mean_sqrt_len" (their sum over the
    square root of their number), as sentence-transformers pools, then the folder's Dense modules, if any
    (st_modules.dense_modules); normalize: scale each row to unit length.
    None (the default) for pooling, normalize and max_length means the model's own setting: a
    sentence-transformers folder's (hparams["sentence_transformers"], whose do_lower_case also lowercases the
    texts first), else PLAIN_BERT's (pooler output, not normalized, 512 tokens). A text longer than
    token_limit(hparams, max_length) tokens is cut, keeping the final [SEP]. n_threads: see run_model (the
    features are the same for any n_threads). prompt: a text put before every text, as sentence-transformers'
    prompts (e.g. "query: "), or prompt_name: the name of one of the folder's prompts; neither means the
    folder's default_prompt_name's prompt, if it has one (see prompt_text). truncate_dim: keep each row's first
    truncate_dim values (Matryoshka models), as sentence-transformers' encode does: after the folder's Normalize
    module (so the rows are not of unit length) but before normalize=True's scaling. precision: "float32", or
    the rows quantized as quantization.quantize_embeddings does, the int8 / uint8 ranges from these rows (as
    encode's precision)."""
    if isinstance(texts, str):
        raise TypeError("embed takes a list of texts; wrap a single text in a list")
    check_precision(precision)
    stream = embed_parts([texts], tokenizer, params, hparams, batch_size, pooling, normalize, max_length, n_threads,
                         done=lambda n: bar.update(n), prompt_name=prompt_name, prompt=prompt,
                         truncate_dim=truncate_dim)
    # the settings are checked here (embed_parts checks them at its call), before the bar shows
    with tqdm(total=len(texts), desc="embed", unit="text", disable=not progress) as bar:
        features, n_tokens = next(stream)
    features = quantize_embeddings(features, precision)
    return (features, n_tokens) if return_n_tokens else features


def embed_parts(parts, tokenizer, params, hparams, batch_size=32, pooling=None, normalize=None, max_length=None,
                n_threads=None, done=lambda n_texts: None, prompt_name=None, prompt=None, truncate_dim=None):
    """For each list of texts in the iterable parts, embed's features and n_tokens (a generator; the settings
    are checked at the call), computed as a stream (run_model_parts): the next parts are read while the threads
    compute, and no core waits between parts. done(n) is called as each batch of n texts is finished."""
    model_config(params, hparams)
    scale_after = normalize is True and truncate_dim is not None  # encode's normalize_embeddings: after the cut
    pooling, normalize, max_length, lower = embedding_settings(hparams, pooling, normalize, max_length)
    check_pooling(pooling, params)
    check_positive("batch_size", batch_size)
    check_positive("max_length", max_length)
    if truncate_dim is not None:
        check_positive("truncate_dim", truncate_dim)
    empty = np.empty((0, embedding_dimension(params, truncate_dim)), np.float32)

    def tokens(texts):
        return [tokenizer.tokenize(text) for text in (lowercased(texts, tokenizer) if lower else texts)]

    prompt, n_prompt = embedding_prompt(hparams, prompt_name, prompt, lambda text: len(tokens([text])[0]),
                                        token_limit(hparams, max_length))

    def tokenized(texts):
        return tokens([prompt + text for text in texts] if prompt else texts), None

    def head(seq_output, pooled_output, batch):
        mask = batch["attention_mask"].copy()
        mask[:, :n_prompt] = 0  # the prompt's tokens, when the pooling leaves them out
        features = dense_modules(_pool(pooling, seq_output, pooled_output, mask), params, hparams)
        if normalize and not scale_after:
            features = unit_rows(features)
        features = features[:, :truncate_dim]
        return unit_rows(features) if scale_after else features

    stream = run_model_parts(tokenizer, params, hparams, head, map(tokenized, parts), token_limit(hparams, max_length),
                             batch_size, pooling == "pooler" or pooling == "cls" and not n_prompt, n_threads, done)
    return ((np.stack(rows) if rows else empty, np.array([len(t) + 2 for t in tokens], dtype=np.int64))
            for (tokens, _), rows in stream)


def embedding_dimension(params, truncate_dim=None):
    """The size of embed's features: the last Dense module's output size, else the hidden size; at most
    truncate_dim."""
    dense = params.get("sentence_dense")
    size = dense[-1]["w"].shape[1] if dense else params["embeddings"]["word"].shape[1]
    return size if truncate_dim is None else min(size, truncate_dim)


def embedding_settings(hparams, pooling=None, normalize=None, max_length=None):
    """(pooling, normalize, max_length, lowercase the texts?) for embed: the values given, else the model's own
    (see embed)."""
    own = {**PLAIN_BERT, **hparams.get("sentence_transformers", {})}
    max_length = max_length if max_length is not None else own["max_seq_length"] or PLAIN_BERT["max_seq_length"]
    return (own["pooling"] if pooling is None else pooling, own["normalize"] if normalize is None else normalize,
            max_length, own["do_lower_case"])


def embedding_prompt(hparams, prompt_name, prompt, n_tokens, limit):
    """(the text put before each text (prompt_text), or "", how many tokens from the start the pooling leaves
    out: [CLS] and the prompt's when the folder's include_prompt is False, else 0), as sentence-transformers'
    encode counts them. n_tokens(text): how many tokens text has; limit: embed's token_limit."""
    prompt = prompt_text(hparams, prompt_name, prompt)
    if hparams.get("sentence_transformers", {}).get("include_prompt", True) or not prompt:
        return prompt, 0
    return prompt, min(n_tokens(prompt) + 2, limit) - 1  # as sentence-transformers counts it: [CLS] prompt


def prompt_text(hparams, prompt_name=None, prompt=None):
    """The text embed puts before each text, or "": prompt, else the folder's prompt named prompt_name, else its
    default_prompt_name's, as sentence-transformers' encode resolves them (but giving both is a ValueError,
    where it warns and takes prompt)."""
    own = hparams.get("sentence_transformers", {})
    prompts = own.get("prompts", {})
    if prompt is not None and prompt_name is not None:
        raise ValueError("give prompt or prompt_name, not both")
    if prompt_name is not None and prompt_name not in prompts:
        raise ValueError(f"prompt_name {prompt_name!r} is not one of the model's prompts "
                         f"({', '.join(map(repr, prompts)) or 'it has none'})")
    if prompt is None:
        prompt = prompts.get(own.get("default_prompt_name") if prompt_name is None else prompt_name, "")
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a str, got {type(prompt).__name__}")
    return prompt


def lowercased(texts, tokenizer):
    """texts lowercased as sentence-transformers' do_lower_case does it (HF's Lowercase normalizer, which acts
    after the literal special tokens such as [MASK] are cut out, so they stay special)."""
    specials = re.compile("(" + "|".join(map(re.escape, tokenizer.specials)) + ")")
    return ["".join(part if i % 2 else lowercase(part) for i, part in enumerate(specials.split(text)))
            for text in texts]


def check_pooling(pooling, params):
    """Raise ValueError unless `pooling` is one of POOLINGS and the checkpoint supports it."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}: use one of {', '.join(POOLINGS)}")
    if pooling == "pooler" and "pooler" not in params:
        raise ValueError("this checkpoint has no pooler: use pooling 'cls' or 'mean'")


def _pool(pooling, seq_output, pooled_output, attention_mask):
    """(B, H) sentence features from the encoder's outputs, as sentence-transformers' Pooling computes them."""
    if pooling == "pooler":
        return pooled_output
    if pooling == "cls":  # the first token left in: [CLS], or the first after a prompt left out (a copy)
        return seq_output[np.arange(len(seq_output)), attention_mask.argmax(axis=1)]
    real = attention_mask[:, :, None].astype(bool)
    if pooling == "max":
        return np.where(real, seq_output, np.float32(-np.inf)).max(axis=1)
    count = np.maximum(real.sum(axis=1, dtype=np.float32), np.float32(1e-9))
    return np.where(real, seq_output, np.float32(0)).sum(axis=1) / (count if pooling == "mean" else np.sqrt(count))


# --- Task pipelines -------------------------------------------------------------------------------------

def text_classification(texts, tokenizer, params, hparams, text_pairs=None, top_k=1, function_to_apply=None,
                        batch_size=32, progress=False):
    """One list per text of {"label", "score"}, best first: top_k of them (None: every label), as transformers'
    text-classification pipeline (BertForSequenceClassification checkpoints).

    function_to_apply: "softmax", "sigmoid" or "none"; None chooses as transformers does: none for problem_type
    "regression", sigmoid for "multi_label_classification" or a single label, else softmax. text_pairs: one
    second text per text, as cross-encoders score (query, passage); an empty one ("") means no second text, as
    in transformers' pipeline ([CLS] text [SEP], not [CLS] text [SEP] [SEP]). Labels come from config.json's id2label
    (else LABEL_0, LABEL_1, ...). Inputs over the model's limit are cut longest-first (transformers' pipeline
    fails on them)."""
    texts, text_pairs = check_texts(texts), None if text_pairs is None else check_texts(text_pairs, "text_pairs")
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"text_pairs has {len(text_pairs)} texts but texts has {len(texts)}: pass one pair per text")
    check_top_k(top_k, none_means="every label")
    labels = task_labels(params, hparams, "text")
    if function_to_apply is None:
        problem = hparams.get("problem_type")
        function_to_apply = ("none" if problem == "regression" else "sigmoid"
                             if problem == "multi_label_classification" or len(labels) == 1 else "softmax")
    if function_to_apply not in SCORE_FUNCTIONS:
        raise ValueError(f"unknown function_to_apply {function_to_apply!r}: use {', '.join(SCORE_FUNCTIONS)} or None")
    logits = run_model(tokenizer, params, hparams, lambda seq, pooled, batch: classifier_head(pooled, params),
                       [tokenizer.tokenize(t) for t in texts],
                       None if text_pairs is None else [tokenizer.tokenize(t) if t else None for t in text_pairs],
                       token_limit(hparams), batch_size, progress, desc="text-classification", cls_only=True)
    results = []
    for scores in SCORE_FUNCTIONS[function_to_apply](np.array(logits, dtype=np.float32)):
        order = sorted(range(len(labels)), key=lambda i: -scores[i])[:top_k]
        results.append([{"label": labels[i], "score": float(scores[i])} for i in order])
    return results


def token_classification(texts, tokenizer, params, hparams, aggregation_strategy="none", ignore_labels=("O",),
                         batch_size=32, progress=False, stride=None, is_split_into_words=False, delimiter=" "):
    """One list per text of entity dicts, exactly as transformers' token-classification pipeline returns them
    (BertForTokenClassification checkpoints, e.g. NER): see entities.entities for the aggregation strategies
    "none", "simple", "first", "average" and "max". Labels in ignore_labels are left out; start and end are
    character offsets into the text. A text over the model's limit is cut, as transformers does; with stride,
    it is read whole instead, in windows of the model's limit that overlap by stride tokens, and the entities of
    all windows are merged (entities.merge_overlapping), as transformers' stride does (for a strategy other than
    "none"). is_split_into_words: each text is a list of words (e.g. a CoNLL sentence), read as the words joined
    by delimiter, each word tokenized on its own (entities.split_words); start and end index into that text."""
    if is_split_into_words:
        split = [entities.split_words(check_texts(words, f"texts[{i}]"), tokenizer, delimiter)
                 for i, words in enumerate(check_word_lists(texts))]
        texts, encoded = [text for text, _, _ in split], [(tokens, offsets) for _, tokens, offsets in split]
    else:
        texts = check_texts(texts)
        encoded = [tokenizer.tokenize_with_offsets(text) for text in texts]
    if aggregation_strategy not in entities.STRATEGIES:
        raise ValueError(f"unknown aggregation_strategy {aggregation_strategy!r}: use one of "
                         f"{', '.join(entities.STRATEGIES)}")
    labels = task_labels(params, hparams, "token")
    limit = token_limit(hparams)
    if stride is not None:
        if aggregation_strategy == "none":
            raise ValueError('stride merges the entities of overlapping windows: it needs an aggregation_strategy '
                             'other than "none" (e.g. "simple"), as in transformers')
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 0 <= stride < limit - 2:
            raise ValueError(f"stride must be an integer from 0 to {limit - 3} (the model reads {limit - 2} tokens "
                             f"of a text at a time), got {stride!r}")
    inputs = [(i, start, stop) for i, (tokens, _) in enumerate(encoded)
              for start, stop in ([(0, min(len(tokens), limit - 2))] if stride is None
                                  else overflow_windows(len(tokens), limit - 2, stride))]
    logits = run_model(tokenizer, params, hparams,
                       lambda seq, pooled, batch: per_token(token_classifier_head(seq, params), batch),
                       [encoded[i][0][start:stop] for i, start, stop in inputs], None, limit, batch_size, progress,
                       desc="token-classification")
    found = [[] for _ in texts]  # per text: the entities of each window
    for (i, start, stop), row in zip(inputs, logits):
        tokens, offsets = encoded[i]
        found[i].append(entities.entities(texts[i], tokens[start:stop], offsets[start:stop], softmax(row[1:-1]),
                                          labels, aggregation_strategy, ignore_labels, tokenizer))
    return [windows[0] if len(windows) == 1 else entities.merge_overlapping(sum(windows, [])) for windows in found]


def question_answering(questions, contexts, tokenizer, params, hparams, top_k=1, doc_stride=128, max_seq_len=384,
                       max_question_len=64, max_answer_len=15, handle_impossible_answer=False, batch_size=32,
                       progress=False, align_to_words=True):
    """One list per question of {"score", "start", "end", "answer"}, best first, as transformers 4.x's
    question-answering pipeline (BertForQuestionAnswering checkpoints); start and end are character offsets
    into the context.

    A context too long for one input of max_seq_len tokens is split into windows that overlap by doc_stride
    tokens; answer_spans.answers says how answers are scored, widened to whole words (unless align_to_words is
    False) and merged across windows.
    max_question_len has no effect: transformers' pipeline never truncates the question (with a fast
    tokenizer), and neither does this one; a question that leaves no room for the context is a ValueError."""
    questions, contexts = check_texts(questions, "questions"), check_texts(contexts, "contexts")
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts: pass one context per question")
    for name, texts in (("question", questions), ("context", contexts)):
        empty = [i for i, text in enumerate(texts) if not text.strip()]
        if empty:
            raise ValueError(f"{name} {empty[0]} is empty: every question needs a {name}")
    check_top_k(top_k)
    for name, value in (("max_answer_len", max_answer_len), ("max_seq_len", max_seq_len),
                        ("max_question_len", max_question_len)):
        check_positive(name, value)
    check_doc_stride(doc_stride)
    head_of(params, "qa")
    max_seq_len = token_limit(hparams, max_seq_len)
    asked = [tokenizer.tokenize(question) for question in questions]
    read = [tokenizer.tokenize_with_offsets(context) for context in contexts]
    spans = [answer_spans.windows(len(q), len(c), max_seq_len, doc_stride) for q, (c, _) in zip(asked, read)]
    inputs = [(i, start, stop) for i, windows in enumerate(spans) for start, stop in windows]
    logits = run_model(tokenizer, params, hparams,
                       lambda seq, pooled, batch: per_token(np.stack(qa_head(seq, params), axis=-1), batch),
                       [asked[i] for i, _, _ in inputs], [read[i][0][start:stop] for i, start, stop in inputs],
                       max_seq_len, batch_size, progress, desc="question-answering")
    found = [[] for _ in questions]  # per question: (start, stop, logits) of each window
    for (i, start, stop), row in zip(inputs, logits):
        found[i].append((start, stop, row))
    return [answer_spans.answers(context, *read[i], len(asked[i]), found[i], top_k, max_answer_len,
                                 handle_impossible_answer, align_to_words) for i, context in enumerate(contexts)]


def fill_mask(texts, tokenizer, params, hparams, top_k=5, text_pairs=None, batch_size=32, progress=False,
              targets=None):
    """One result per text, as transformers' fill-mask pipeline: for a text with one [MASK], its top_k
    predictions, best first, each {"score", "token", "token_str", "sequence"}; with several [MASK]s, one such
    list per mask (each mask predicted on its own). token_str keeps a sub-word's "##"; sequence is the input
    with the prediction filled in, decoded without [CLS], [SEP], [UNK] and [MASK] for one mask and with them
    all (the other masks stay) for several. text_pairs: optional second texts (a pair per text). targets: a
    word or a list of words: only they are predicted (their probabilities over the whole vocabulary), at most
    top_k of them; see target_ids for a word that is not a token."""
    texts, text_pairs = check_texts(texts), None if text_pairs is None else check_texts(text_pairs, "text_pairs")
    check_top_k(top_k)
    head_of(params, "mlm")
    if MASK not in tokenizer.vocab:
        raise ValueError("the vocabulary has no [MASK] token: this tokenizer cannot fill masks")
    only = None if targets is None else target_ids(tokenizer, targets)  # the ids that may be predicted
    mask_id, top_k = tokenizer.vocab[MASK], min(top_k, len(tokenizer.vocab) if only is None else len(only))

    def head(seq_output, pooled_output, batch):  # per row: (ids, mask positions, best ids [masks, k], their probs)
        rows, positions = np.nonzero(batch["input_ids"] == mask_id)
        probs = softmax(mlm_head(seq_output[rows, positions], params, hparams))  # [masks, V]
        if only is not None:
            probs = probs[:, only]  # [masks, targets]
        best = np.argpartition(-probs, top_k - 1, axis=1)[:, :top_k]
        best_probs = np.take_along_axis(probs, best, axis=1)
        order = np.argsort(-best_probs, axis=1, kind="stable")
        best, best_probs = np.take_along_axis(best, order, axis=1), np.take_along_axis(best_probs, order, axis=1)
        if only is not None:
            best = only[best]
        return [(ids[:n], positions[rows == j], best[rows == j], best_probs[rows == j])
                for j, (ids, n) in enumerate(zip(batch["input_ids"], batch["attention_mask"].sum(axis=1)))]

    predicted = run_model(tokenizer, params, hparams, head, [tokenizer.tokenize(t) for t in texts],
                          None if text_pairs is None else [tokenizer.tokenize(t) for t in text_pairs],
                          token_limit(hparams), batch_size, progress, desc="fill-mask")
    results = []
    for i, (ids, positions, best, probs) in enumerate(predicted):
        if not len(positions):
            raise ValueError(f"text {i} has no [MASK] within the model's first {token_limit(hparams)} tokens: "
                             "write [MASK] where a word should be predicted")
        filled = [[{"score": float(p), "token": int(t), "token_str": tokenizer.inv_vocab[int(t)],
                    "sequence": _filled_in(tokenizer, ids, position, t, len(positions) == 1)}
                   for t, p in zip(mask_best, mask_probs)]
                  for position, mask_best, mask_probs in zip(positions, best, probs)]
        results.append(filled[0] if len(filled) == 1 else filled)
    return results


def target_ids(tokenizer, targets):
    """The token ids of fill_mask's targets, each once, as transformers finds them: a target that is a token of
    the vocabulary, as it is, else the first token of its tokenization (with a warning, e.g. "Paris" -> "paris"
    for an uncased model); one that has no tokens is left out (with a warning)."""
    targets = check_texts([targets] if isinstance(targets, str) else targets, "targets")
    ids = []
    for target in targets:
        if target not in tokenizer.vocab:
            tokens = tokenizer.tokenize(target)
            warnings.warn(f"fill_mask target {target!r} is not a token of the vocabulary: "
                          + (f"using its first token {tokens[0]!r}" if tokens else "it has no tokens, left out"))
            if not tokens:
                continue
            target = tokens[0]
        ids.append(tokenizer.vocab[target])
    if not ids:
        raise ValueError("none of the targets has a token: give at least one word to predict")
    return np.array(sorted(set(ids)))


def _filled_in(tokenizer, ids, position, token_id, skip_special_tokens):
    """The decoded input with token_id at position, as transformers' decode gives it (every [PAD] left out
    first, the prediction's too, as the fill-mask pipeline does)."""
    filled = [token_id if k == position else i for k, i in enumerate(ids)]
    tokens = tokenizer.convert_ids_to_tokens([i for i in filled if i != tokenizer.vocab.get(PAD)])
    return tokenizer.convert_tokens_to_string(
        [t for t in tokens if not (skip_special_tokens and t in tokenizer.specials)])


# --- Labels ---------------------------------------------------------------------------------------------

def task_labels(params, hparams, kind):
    """The class names of a classifier head (config.json's id2label, else LABEL_i), or a ValueError when the
    checkpoint has no classifier head, or one for the other kind of classification ("text" or "token")."""
    model_config(params, hparams)
    head = head_of(params, "classifier")
    other = {"text": "TokenClassification", "token": "SequenceClassification"}[kind]
    if any(str(a).endswith("For" + other) for a in hparams.get("architectures") or []):
        use = {"text": "token_classification", "token": "text_classification"}[kind]
        raise ValueError(f"this checkpoint is a {hparams['architectures'][0]}: its classifier head is for {use}")
    if kind == "text" and "pooler" not in params:
        raise ValueError("this checkpoint has no pooler, so no pooled_output for the classifier head")
    id2label = hparams.get("id2label") or {}
    return [str(id2label.get(str(i), f"LABEL_{i}")) for i in range(head["w"].shape[1])]
