"""Generate tests/golden/squad_features.json.gz: extractive question answering's training features as
transformers' examples/pytorch/question-answering/run_qa.py makes them (prepare_train_features, restated below
step for step, with a fast BertTokenizer), for squad.train_features to match.

Contexts: real IMDB reviews (imdb_sample.csv, see review_data.py; only the reviews used are stored), long enough
for many windows at max_seq_len 48 or 64. Answers: seeded spans of each review, at the places labelling is
hard: its first and last tokens, across window ends, a window's last token (run_qa's quirk), inside a word's
pieces, punctuation, <br /> markup, accented letters, dropped control characters, leading or trailing spaces,
longer than a window, a later occurrence of a common word; several answers (the first is trained on); no
answer (SQuAD v2). Tokenizers: all-MiniLM-L6-v2's bert-base-uncased vocabulary lowercasing and not (cased:
capitals and accented words become [UNK]), and tiny-gelu's small vocabulary (words in many pieces).

A group is one question and context under one tokenizer and max_seq_len / doc_stride / padding: its features'
input_ids once (the same for all its answers), then for each answer set run_qa's start and end positions per
feature and where run_qa's start falls past the window (its quirk).

Needs transformers 5 (requirements-golden.txt); never needed to run the tests. Run from tests/:
    python make_golden_squad.py
"""
import gzip
import json
import os
import re

import numpy as np
import tokenizers
import transformers
from transformers import BertTokenizerFast

import task_models as tm
from conftest import GOLDEN_DIR, minilm_dir

PATH = os.path.join(GOLDEN_DIR, "squad_features.json.gz")
VOCABS = {"minilm": os.path.join(minilm_dir(), "vocab.txt"), "tiny-gelu": os.path.join(GOLDEN_DIR, "tiny-gelu",
                                                                                          "vocab.txt")}
TOKENIZERS = {"uncased": ("minilm", True), "cased": ("minilm", False), "tiny": ("tiny-gelu", True)}
QUESTIONS = ["Who wrote the stories the film is based on?", "What does the reviewer think of the acting?",
             "   Which scene is the best?",  # leading spaces: run_qa strips them (no token either way)
             "Why would anyone, after reading this review and the others like it, still want to watch this "
             "film on a tape, not a DVD?"]  # long: 28 tokens, little room left in 48
# (tokenizer, review row, question, max_seq_len, doc_stride, padding to max_seq_len)
GROUPS = [("uncased", 3, 0, 384, 128, False), ("uncased", 3, 0, 64, 16, False), ("uncased", 34, 1, 48, 8, False),
          ("uncased", 32, 2, 96, 32, True), ("uncased", 1, 1, 384, 128, False), ("uncased", 1, 2, 48, 16, False),
          ("cased", 34, 1, 64, 20, False), ("cased", 26, 2, 48, 12, True), ("tiny", 8, 1, 64, 24, False),
          ("uncased", 45, 3, 48, 4, False), ("uncased", 26, 1, 64, 0, False)]
SEED = 7


def hf_tokenizer(name):
    vocab, lower = TOKENIZERS[name]
    tokenizer = BertTokenizerFast(VOCABS[vocab], do_lower_case=lower)  # (vocab_file= is ignored by transformers 5)
    with open(VOCABS[vocab], encoding="utf-8") as f:
        assert tokenizer.is_fast and len(tokenizer) == sum(1 for _ in f), "the vocabulary was not read"
    return tokenizer


def prepare_train_features(examples, tokenizer, max_seq_length, doc_stride, pad_to_max_length):
    """run_qa.py's prepare_train_features (padding side right, as BERT's): the same tokenizer call and the same
    labelling loop, its arguments as data_args would give them."""
    examples["question"] = [q.lstrip() for q in examples["question"]]
    tokenized = tokenizer(examples["question"], examples["context"], truncation="only_second",
                          max_length=max_seq_length, stride=doc_stride, return_overflowing_tokens=True,
                          return_offsets_mapping=True, padding="max_length" if pad_to_max_length else False)
    sample_mapping = tokenized.pop("overflow_to_sample_mapping")
    offset_mapping = tokenized.pop("offset_mapping")
    tokenized["start_positions"], tokenized["end_positions"] = [], []
    for i, offsets in enumerate(offset_mapping):
        input_ids = tokenized["input_ids"][i]
        cls_index = input_ids.index(tokenizer.cls_token_id)
        sequence_ids = tokenized.sequence_ids(i)
        answers = examples["answers"][sample_mapping[i]]
        if len(answers["answer_start"]) == 0:
            tokenized["start_positions"].append(cls_index)
            tokenized["end_positions"].append(cls_index)
            continue
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        token_start_index = 0
        while sequence_ids[token_start_index] != 1:
            token_start_index += 1
        token_end_index = len(input_ids) - 1
        while sequence_ids[token_end_index] != 1:
            token_end_index -= 1
        if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
            tokenized["start_positions"].append(cls_index)
            tokenized["end_positions"].append(cls_index)
        else:
            while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
                token_start_index += 1
            tokenized["start_positions"].append(token_start_index - 1)
            while offsets[token_end_index][1] >= end_char:
                token_end_index -= 1
            tokenized["end_positions"].append(token_end_index + 1)
    tokenized["overflow_to_sample_mapping"] = sample_mapping  # kept to group the features by example
    return tokenized


def context_windows(tokenizer, question, context, max_seq_len, doc_stride):
    """(offsets of the context's tokens, their tokens, (start, stop) of each window among them) as HF cuts it."""
    whole = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in whole["offset_mapping"]]
    encoded = tokenizer(question.lstrip(), context, truncation="only_second", max_length=max_seq_len,
                        stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    spans = []
    for i, window in enumerate(encoded["offset_mapping"]):
        held = [tuple(o) for o, s in zip(window, encoded.sequence_ids(i)) if s == 1]
        start = next(k for k in range(len(offsets)) if offsets[k:k + len(held)] == held)
        spans.append((start, start + len(held)))
    return offsets, tokenizer.convert_ids_to_tokens(whole["input_ids"]), spans


def placements(context, offsets, tokens, spans, rng):
    """(why, answers) for one context: answers at the hard places (see the module docstring), seeded."""
    n = len(offsets)

    def at(why, a, b):
        return why, {"text": [context[a:b]], "answer_start": [a]}

    def tok(why, i, j):
        return at(why, offsets[i][0], offsets[j][1])

    found = [tok("first token", 0, 0), tok("first words", 0, 2), tok("last token", n - 1, n - 1),
             tok("last words", n - 3, n - 1), at("the whole context", 0, len(context)),
             tok("past the first window", 1, min(n - 1, spans[0][1] + 2))]
    for k, (a, b) in enumerate(spans[:-1][:3]):
        found += [tok(f"across window {k}'s end", b - 3, min(b + 1, n - 1)),
                  tok(f"window {k}'s last token", b - 1, b - 1),
                  at(f"inside window {k}'s last token", offsets[b - 1][1] - 1, offsets[b - 1][1])]
    for p in sorted(rng.choice([p for p, t in enumerate(tokens) if t.startswith("##")], 2, replace=False)):
        found += [at("from inside a piece", offsets[p - 1][1] - 1, offsets[p][1]),
                  tok("from a piece's start", p, min(p + 2, n - 1)),
                  at("to inside a piece", offsets[p - 1][0], offsets[p][0] + 1)]
    for why, pattern in (("parentheses", r"\([^()]{1,40}\)"), ("exclamation", r"\w+[!?]+"), ("comma", r","),
                         ("apostrophe", r"\w+'\w+"), ("markup around", r"\w+\.?<br /><br />\w+"),
                         ("markup", r"<br />"), ("inside markup", r"br /><br"), ("a later 'the'", r"\bthe\b"),
                         ("accented letter", r"[À-ÖØ-öø-ÿ]\w*"),  # Latin-1's letters
                         ("accented word", r"\w*[À-ÖØ-öø-ÿ]\w* \w+"),
                         ("from a control character", r"[\x80-\x9f]\W*\w+"),
                         ("to a control character", r"\w+[\x80-\x9f]")):
        hits = list(re.finditer(pattern, context))
        if hits:
            hit = hits[rng.integers(len(hits))] if why != "a later 'the'" else hits[-1]
            found.append(at(why, hit.start(), hit.end()))
    spaced = [i for i in range(1, n - 1) if context[offsets[i][0] - 1].isspace() and context[offsets[i][1]].isspace()]
    for i in rng.choice(spaced, 3, replace=False):
        found += [at("leading space", offsets[i][0] - 1, offsets[i][1]),
                  at("trailing space", offsets[i][0], offsets[i][1] + 1)]
    found += [at("random", int(a), int(a + length)) for a, length in zip(rng.integers(0, len(context), 6),
                                                                          rng.integers(1, 40, 6))]
    starts = [int(a) for a in rng.integers(0, len(context) - 12, 3)]  # the first is the one trained on
    found.append(("several answers", {"text": [context[a:a + 12] for a in starts], "answer_start": starts}))
    return found + [("no answer", {"text": [], "answer_start": []})]


def usable(tokenizer, answers):
    """False for an answer squad.train_features refuses: text holding no token (whitespace alone)."""
    return all(tokenizer(text, add_special_tokens=False)["input_ids"] for text in answers["text"])


def make_group(tokenizer_name, row, question, max_seq_len, doc_stride, padding, rng):
    tokenizer, context = hf_tokenizer(tokenizer_name), tm.reviews([row])[0]
    found = [(why, answers) for why, answers in placements(context, *context_windows(
        tokenizer, question, context, max_seq_len, doc_stride), rng) if usable(tokenizer, answers)]
    found = list({json.dumps(answers): (why, answers) for why, answers in found}.values())  # no repeats
    features = prepare_train_features({"question": [question] * len(found), "context": [context] * len(found),
                                       "answers": [answers for _, answers in found]},
                                      tokenizer, max_seq_len, doc_stride, padding)
    examples, ids = [], None
    for j, (why, answers) in enumerate(found):
        rows = [i for i, sample in enumerate(features["overflow_to_sample_mapping"]) if sample == j]
        assert ids is None or ids == [features["input_ids"][i] for i in rows]  # the answers change no input
        ids = [features["input_ids"][i] for i in rows]
        starts, ends = ([features[key][i] for i in rows] for key in ("start_positions", "end_positions"))
        quirk = [s != 0 and features.sequence_ids(i)[s] != 1 for s, i in zip(starts, rows)]
        examples.append({"why": why, "answers": answers, "start_positions": starts, "end_positions": ends,
                         "quirk": quirk})
    vocab, lower = TOKENIZERS[tokenizer_name]
    return {"vocab": vocab, "do_lower_case": lower, "context": row, "question": question, "max_seq_len": max_seq_len,
            "doc_stride": doc_stride, "padding": padding, "input_ids": ids, "examples": examples}


def main():
    rng = np.random.default_rng(SEED)
    groups = [make_group(name, row, QUESTIONS[q], *rest, rng) for name, row, q, *rest in GROUPS]
    golden = {"made_by": f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}",
              "contexts": {str(row): tm.reviews([row])[0] for row in sorted({g["context"] for g in groups})},
              "groups": groups}
    text = json.dumps(golden, ensure_ascii=False, separators=(",", ":"))
    with open(PATH + ".tmp", "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", filename="", mtime=0) as z:
        z.write(text.encode("utf-8"))  # no timestamp: the same features give the same bytes
    os.replace(PATH + ".tmp", PATH)
    examples = [e for g in groups for e in g["examples"]]
    n_features, n_quirk = (sum(f(e["quirk"]) for e in examples) for f in (len, sum))
    print(f"wrote {PATH}: {len(groups)} groups, {len(examples)} examples, {n_features} features "
          f"({n_quirk} with run_qa's quirk), {os.path.getsize(PATH)} bytes ({len(text.encode())} unzipped)")


if __name__ == "__main__":
    main()
