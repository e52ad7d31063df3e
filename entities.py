"""Token classification's post-processing: per-token label probabilities -> the entity dicts of transformers'
token-classification pipeline, for each of its aggregation strategies (and, for pre-split input, its tokens:
split_words).

- "none": one dict per token {"entity", "score", "index", "word", "start", "end"}; word is the WordPiece token
  (e.g. "##pm"), index its position in the input ([CLS] is 0).
- "simple": adjacent tokens whose labels continue one another (B-X then I-X..., not a second B-X) become one
  {"entity_group", "score" (the mean), "word" (the tokens decoded), "start", "end"}.
- "first", "average", "max": as "simple", after giving all the tokens of a word one label: the first token's,
  the best of the averaged probabilities, or that of the token with the highest probability.
Labels in ignore_labels ("O") are left out at the end. A token is a sub-word when its text span is longer or
shorter than the token (so "##pm", and decomposed accents, count as transformers counts them); an [UNK] token
is never one, and its word is the text it stands for.
"""
import numpy as np

from tokenization import UNK

STRATEGIES = ("none", "simple", "first", "average", "max")


def entities(text, tokens, offsets, probs, labels, strategy, ignore_labels, tokenizer):
    """The entity dicts of one text: tokens and offsets (character spans into text) without [CLS] and [SEP],
    probs [len(tokens), len(labels)] their label probabilities."""
    pre = []
    for index, (token, (start, end), p) in enumerate(zip(tokens, offsets, probs), start=1):
        start, end = int(start), int(end)
        if token == UNK:
            word, is_subword = text[start:end], False
        else:
            word, is_subword = token, len(token) != end - start
        pre.append({"word": word, "probs": p, "start": start, "end": end, "index": index, "is_subword": is_subword})
    if strategy in ("none", "simple"):
        found = [{"entity": labels[p["probs"].argmax()], "score": p["probs"].max(), "index": p["index"],
                  "word": p["word"], "start": p["start"], "end": p["end"]} for p in pre]
    else:
        found = [_word_entity(word, labels, strategy, tokenizer) for word in _words(pre)]
    if strategy != "none":
        found = [_group(group, tokenizer) for group in _label_runs(found)]
    key = "entity" if strategy == "none" else "entity_group"
    return [dict(e, score=float(e["score"])) for e in found if e[key] not in ignore_labels]


def split_words(words, tokenizer, delimiter=" "):
    """(the text, its tokens, their character spans in it) for a text given as a list of words, as transformers'
    is_split_into_words reads it: the text is the words joined by delimiter, each word tokenized on its own."""
    tokens, offsets, at = [], [], 0
    for word in words:
        word_tokens, word_offsets = tokenizer.tokenize_with_offsets(word)
        tokens += word_tokens
        offsets += [(start + at, end + at) for start, end in word_offsets]
        at += len(word) + len(delimiter)
    return delimiter.join(words), tokens, offsets


def _words(pre):
    """The tokens grouped into words: a word starts at every token that is not a sub-word."""
    words = []
    for p in pre:
        if p["is_subword"] and words:
            words[-1].append(p)
        else:
            words.append([p])
    return words


def _word_entity(word, labels, strategy, tokenizer):
    """One {"entity", "score", "word", "start", "end"} for the tokens of one word."""
    if strategy == "first":
        probs = word[0]["probs"]
    elif strategy == "max":
        probs = max(word, key=lambda p: p["probs"].max())["probs"]
    else:  # average
        probs = np.nanmean(np.stack([p["probs"] for p in word]), axis=0)
    best = probs.argmax()
    return {"entity": labels[best], "score": probs[best],
            "word": tokenizer.convert_tokens_to_string([p["word"] for p in word]),
            "start": word[0]["start"], "end": word[-1]["end"]}


def _tag(label):
    """("B" or "I", the entity type) of a label: B-PER -> ("B", "PER"), I-PER and PER -> ("I", "PER")."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def _label_runs(found):
    """Adjacent entities grouped while each continues the one before: same type, and not a "B"."""
    runs = []
    for entity in found:
        bi, tag = _tag(entity["entity"])
        if runs and bi != "B" and tag == _tag(runs[-1][-1]["entity"])[1]:
            runs[-1].append(entity)
        else:
            runs.append([entity])
    return runs


def _group(run, tokenizer):
    return {"entity_group": run[0]["entity"].split("-", 1)[-1],
            "score": np.mean(np.nanmean([e["score"] for e in run])),
            "word": tokenizer.convert_tokens_to_string([e["word"] for e in run]),
            "start": run[0]["start"], "end": run[-1]["end"]}


def merge_overlapping(found):
    """The entities of a text's overlapping windows (token_classification's stride) as one list, as transformers
    merges them: sorted by start; of an entity and the next ones that start inside it, the longest is kept (at
    the same length, the one with the higher score)."""
    if not found:
        return found
    found = sorted(found, key=lambda e: e["start"])
    merged, previous = [], found[0]
    for entity in found:
        if previous["start"] <= entity["start"] < previous["end"]:
            longer = (entity["end"] - entity["start"]) - (previous["end"] - previous["start"])
            if longer > 0 or longer == 0 and entity["score"] > previous["score"]:
                previous = entity
        else:
            merged.append(previous)
            previous = entity
    merged.append(previous)
    return merged
