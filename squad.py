"""Extractive question answering's training features (SQuAD): a question, its context and its answers -> one
(question tokens, window tokens, start position, end position) per window of the context, labelled as
transformers' examples/pytorch/question-answering/run_qa.py labels them (prepare_train_features, with a fast BERT
tokenizer: truncation="only_second", return_overflowing_tokens, stride=doc_stride, return_offsets_mapping).

    features = train_features(tokenizer, "Who directed it?", context, {"text": ["Kubrick"], "answer_start": [412]})
    questions, windows, starts, ends = map(list, zip(*features))
    batch = tokenizer.batch_encode_tokens(questions, windows, max_length=384)  # starts, ends: the targets of
    # BertForQuestionAnswering's start and end logits, one row each
"""
import numbers
from collections.abc import Mapping

import numpy as np

from answer_spans import windows
from checks import check_doc_stride, check_positive

SQUAD_FORMAT = '{"text": [...], "answer_start": [...]}'


def train_features(tokenizer, question, context, answers, max_seq_len=384, doc_stride=128):
    """-> list of (question_tokens, window_tokens, start_position, end_position), one per window of the
    context ([CLS] question [SEP] window [SEP], the windows as answer_spans.windows cuts them, which equals
    transformers' overflowing windows). answers: SQuAD's {"text": [...], "answer_start": [...]}; the first
    answer is the one trained on (as run_qa), every one is checked. Positions are token indices into the model
    input ([CLS] = 0, the window's first token = len(question_tokens) + 2); a window that does not hold the whole
    answer, and every window of a question without answers (empty lists: SQuAD v2's unanswerable), gets (0, 0),
    [CLS]. The features share one question_tokens list.

    In a window that holds it, as run_qa: start is the last token that begins at or before the answer's first
    character, end the first token that ends at or after its last one (each scan as run_qa's, on the tokens'
    offsets): an answer that begins or ends inside a word's piece takes in the whole piece, and one whose text
    begins or ends with whitespace (or a character the tokenizer drops, such as U+0085) takes in the token before
    or after it. One deliberate difference, run_qa's quirk: when the answer starts in the window's last token,
    run_qa's forward scan runs on into [SEP] and the padding (their offsets are (0, 0), which begin before the
    answer too) and labels the input's final position, past the window; here start is the window's last token,
    the one that holds the answer's start.

    A ValueError, one line naming what to fix: a question or context that is not a str or holds no token;
    answers not two lists of equal length; an answer_start that is not a character index of the context; an
    answer text that is empty, holds no token (whitespace alone), or is not what the context holds at its
    answer_start; max_seq_len and doc_stride as answer_spans.windows refuses them (and not integers, max_seq_len
    < 1, doc_stride < 0). max_seq_len is used as given: cap it at the model's limit (runner.token_limit), as
    run_qa caps it at the tokenizer's model_max_length."""
    question_tokens, _ = _tokenized(tokenizer, question, "question")
    tokens, offsets = _tokenized(tokenizer, context, "context")
    check_positive("max_seq_len", max_seq_len)
    check_doc_stride(doc_stride)
    answer = _first_answer(tokenizer, context, answers)
    first = len(question_tokens) + 2  # [CLS] question [SEP]
    features = []
    for start, stop in windows(len(question_tokens), len(tokens), max_seq_len, doc_stride):
        span = _answer_tokens(offsets[start:stop], *answer) if answer else None
        s, e = (first + span[0], first + span[1]) if span else (0, 0)
        features.append((question_tokens, tokens[start:stop], s, e))
    return features


def _answer_tokens(offsets, start_char, end_char):
    """(s, e): the first and last of a window's tokens (given by their offsets) that the answer's characters
    start_char:end_char fall in, found as run_qa finds them; None when the window does not hold the whole answer."""
    if not (offsets[0][0] <= start_char and offsets[-1][1] >= end_char):
        return None
    s = 0
    while s + 1 < len(offsets) and offsets[s + 1][0] <= start_char:  # run_qa's scan goes on past the window
        s += 1
    e = len(offsets) - 1
    while e > 0 and offsets[e - 1][1] >= end_char:  # run_qa's stops at [SEP], whose end 0 < end_char
        e -= 1
    return s, e


def _tokenized(tokenizer, text, name):
    """tokenizer.tokenize_with_offsets(text), or a ValueError when text is not a str or holds no token."""
    if not isinstance(text, str):
        raise ValueError(f"the {name} must be a str, got {type(text).__name__}")
    tokens, offsets = tokenizer.tokenize_with_offsets(text)
    if not tokens:
        raise ValueError(f"the {name} holds no token (it is empty or whitespace alone): give the {name}'s text")
    return tokens, offsets


def _first_answer(tokenizer, context, answers):
    """(start_char, end_char) of the first answer, None for a question without answers; every answer checked."""
    if not isinstance(answers, Mapping):
        raise ValueError(f"answers must be a dict {SQUAD_FORMAT} (SQuAD's format), got {type(answers).__name__}")
    for key in ("text", "answer_start"):
        if key not in answers:
            raise ValueError(f'answers lacks "{key}": give {SQUAD_FORMAT} (empty lists for no answer)')
        values = answers[key]
        if not (isinstance(values, (list, tuple)) or isinstance(values, np.ndarray) and values.ndim == 1):
            raise ValueError(f'answers["{key}"] must be a list, one entry per answer ({SQUAD_FORMAT}, empty lists '
                             f'for no answer), got {type(values).__name__}')
    texts, starts = answers["text"], answers["answer_start"]
    if len(texts) != len(starts):
        raise ValueError(f"answers has {len(texts)} texts but {len(starts)} answer_starts: give one answer_start "
                         "per text")
    for i, (text, start) in enumerate(zip(texts, starts)):
        _check_answer(tokenizer, context, text, start, i)
    return (int(starts[0]), int(starts[0]) + len(texts[0])) if len(texts) else None


def _check_answer(tokenizer, context, text, start, i):
    """A ValueError naming answer i when its text is not what the context holds at its answer_start."""
    if not isinstance(text, str) or not text:
        raise ValueError(f'answers["text"][{i}] must be a non-empty str (the answer as the context writes it), '
                         f"got {text!r}")
    if isinstance(start, bool) or not isinstance(start, numbers.Integral) or not 0 <= start < len(context):
        raise ValueError(f'answers["answer_start"][{i}] must be an int from 0 to {len(context) - 1} (where the '
                         f"answer begins in the context), got {start!r}")
    held = context[start:start + len(text)]
    if held != text:
        found = _nearest(context, text, start)
        raise ValueError(f'answers["text"][{i}] {_shown(text)} is not what the context holds at answer_start '
                         f"{start} ({_shown(held)}): " + (f"the text begins at {found}, fix answer_start" if found
                                                          is not None else "the text is nowhere in the context"))
    if not tokenizer.tokenize(text):
        raise ValueError(f'answers["text"][{i}] {_shown(text)} holds no token (whitespace alone, or characters the '
                         "tokenizer drops): there is nothing to label")


def _nearest(context, text, near):
    """The place of text in context nearest to near, or None."""
    found, at = [], context.find(text)
    while at >= 0:
        found.append(at)
        at = context.find(text, at + 1)
    return min(found, key=lambda at: abs(at - near)) if found else None


def _shown(text, most=40):
    return repr(text) if len(text) <= most else repr(text[:most]) + "..."
