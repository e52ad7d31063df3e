"""Question answering's windows over long contexts and its post-processing: start/end logits -> scored answer
spans, as transformers 4.x's question-answering pipeline computes them (4.57, fast tokenizer).

For each window [CLS] question [SEP] context tokens [SEP]:
1. start and end probabilities: a softmax over the window's tokens, where only [CLS] and the context tokens
   may be chosen; then [CLS]'s probability is set to 0 (before that, its p_start * p_end is the window's
   score for "no answer");
2. span scores p_start[s] * p_end[e] for s <= e < s + max_answer_len; the window's best 2 * top_k + 10 spans
   are candidates;
3. each candidate is widened to whole words (of the context tokens in that window) and read from the context
   (with align_to_words False: the best top_k spans, read as their tokens span, not widened).
Candidates whose text is the same, ignoring case, are merged, their scores added (also across windows).
With handle_impossible_answer, the empty answer (start 0, end 0) is a candidate too, scored with the smallest
"no answer" score of the windows. The top_k best answers are returned.
"""
import numpy as np

from runner import overflow_windows

NO_NULL_SCORE = 1000000.0  # transformers' starting value for the smallest "no answer" score


def windows(n_question, n_context, max_seq_len, doc_stride):
    """(start, stop) ranges of context tokens, one per model input of at most max_seq_len tokens: the question
    whole, then the next window; consecutive windows overlap by doc_stride tokens and the last one ends with
    the context (transformers' overflowing windows). A ValueError where transformers raises: doc_stride too
    large, or a question that leaves no room for the context."""
    if doc_stride >= max_seq_len - 2:
        raise ValueError(f"doc_stride ({doc_stride}) must be smaller than max_seq_len - 2 ({max_seq_len - 2})")
    if n_question + n_context + 3 <= max_seq_len:
        return [(0, n_context)]
    room = max_seq_len - n_question - 3  # [CLS] question [SEP] window [SEP]
    if room < 1:
        raise ValueError(f"a question of {n_question} tokens leaves no room for the context in max_seq_len "
                         f"{max_seq_len} tokens (the question is never truncated): raise max_seq_len")
    if doc_stride >= room:
        raise ValueError(f"doc_stride ({doc_stride}) must be smaller than the {room} context tokens of each window "
                         f"(max_seq_len {max_seq_len} - {n_question} question tokens - 3): lower doc_stride")
    return overflow_windows(n_context, room, doc_stride)


def answers(context, tokens, offsets, n_question, windows, top_k, max_answer_len, handle_impossible_answer,
            align_to_words=True):
    """The top_k answers {"score", "start", "end", "answer"} for one question, best first; align_to_words False:
    each window's top_k best spans, read from their tokens' own offsets (not widened to whole words).

    tokens, offsets: the context's tokens and their character spans in context; windows: (start, stop, logits)
    per window, start:stop the context tokens it holds and logits [L, 2] the start and end logits of its L
    tokens ([CLS], n_question question tokens, [SEP], the window, [SEP])."""
    found, null_score = [], NO_NULL_SCORE
    first = n_question + 2  # where the window's context tokens begin
    for start, stop, logits in windows:
        allowed = np.zeros(len(logits), dtype=bool)
        allowed[0] = allowed[first:first + stop - start] = True
        p_start, p_end = (_softmax(np.where(allowed, logits[:, k], np.float32(-10000.0))) for k in (0, 1))
        if handle_impossible_answer:
            null_score = min(null_score, float(p_start[0] * p_end[0]))
        p_start[0] = p_end[0] = 0
        for s, e, score in _best_spans(p_start, p_end, allowed, 2 * top_k + 10 if align_to_words else top_k,
                                       max_answer_len):
            if s == 0 or e == 0 or not align_to_words:  # a span from or to [CLS] has no word: transformers
                # falls back to the tokens' offsets, (0, 0) for [CLS] (a span to [CLS] scores 0, and comes only
                # when top_k asks for many)
                char_start = int(offsets[s - first + start][0]) if s else 0
                char_end = int(offsets[e - first + start][1]) if e else 0
            else:
                char_start, char_end = _word_span(tokens, offsets, s - first + start, e - first + start, start, stop)
            text = context[char_start:char_end]
            same = next((answer for answer in found if answer["answer"].lower() == text.lower()), None)
            if same:
                same["score"] += float(score)
            else:
                found.append({"score": float(score), "start": char_start, "end": char_end, "answer": text})
    if handle_impossible_answer:
        found.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
    return sorted(found, key=lambda answer: answer["score"], reverse=True)[:top_k]


def _softmax(x):  # float32, as transformers computes it
    x = np.exp(x - x.max())
    return x / x.sum()


def _best_spans(p_start, p_end, allowed, k, max_answer_len):
    """(s, e, score) of the k best spans s <= e < s + max_answer_len, best first, those with an end that may not
    be chosen left out (numpy's argpartition and argsort pick among equal scores, as in transformers)."""
    scores = np.tril(np.triu(np.outer(p_start, p_end)), max_answer_len - 1)
    flat = scores.ravel()
    if len(flat) <= k:  # (transformers' < fails on numpy's argpartition when they are equal)
        best = np.argsort(-flat)
    else:
        best = np.argpartition(-flat, k)[:k]
        best = best[np.argsort(-flat[best])]
    s, e = np.unravel_index(best, scores.shape)
    keep = allowed[s] & allowed[e]
    return zip(s[keep], e[keep], scores[s[keep], e[keep]])


def _word_span(tokens, offsets, s, e, start, stop):
    """Character span of context tokens s..e widened to whole words: back to the first token of s's word and on
    to the last of e's, within the window's tokens start:stop (a word continues with each "##" token)."""
    while s > start and tokens[s].startswith("##"):
        s -= 1
    while e + 1 < stop and tokens[e + 1].startswith("##"):
        e += 1
    return int(offsets[s][0]), int(offsets[e][1])
