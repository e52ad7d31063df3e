"""squad.train_features against transformers' run_qa.py prepare_train_features (tests/golden/squad_features.json.gz,
from make_golden_squad.py with transformers 5's fast BertTokenizer) on real reviews: every window's token ids
and its start and end positions, run_qa's quirk aside (there run_qa labels past the window, numpy-bert the
window's last token); a worked example by hand; and the refusals of bad input, one line each."""
import functools
import gzip
import json
import os

import numpy as np
import pytest

from conftest import GOLDEN_DIR, minilm_dir
from squad import train_features
from tokenization import FullTokenizer

with gzip.open(os.path.join(GOLDEN_DIR, "squad_features.json.gz"), "rt", encoding="utf-8") as f:
    GOLDEN = json.load(f)
EXAMPLES = [(group, example) for group in GOLDEN["groups"] for example in group["examples"]]
CONTEXT = "Ann met Bob in Paris. They watched a film by Kubrick, unbelievably long."
QUESTION = "Where did they meet?"  # 5 tokens: the windows of max_seq_len 16 hold 8 context tokens, from 7 on


@functools.lru_cache(maxsize=None)
def tokenizer(vocab="minilm", do_lower_case=True):
    folder = minilm_dir() if vocab == "minilm" else os.path.join(GOLDEN_DIR, vocab)
    return FullTokenizer(os.path.join(folder, "vocab.txt"), do_lower_case=do_lower_case)


def example_id(i):
    group, example = EXAMPLES[i]
    return (f"{group['vocab']}-{'lower' if group['do_lower_case'] else 'cased'}-review{group['context']}-"
            f"{group['max_seq_len']}-{group['doc_stride']}{'-padded' if group['padding'] else ''}-{i}-{example['why']}")


@pytest.mark.parametrize("i", range(len(EXAMPLES)), ids=example_id)
def test_features_match_run_qa(i):
    group, example = EXAMPLES[i]
    tok = tokenizer(group["vocab"], group["do_lower_case"])
    features = train_features(tok, group["question"], GOLDEN["contexts"][str(group["context"])], example["answers"],
                              group["max_seq_len"], group["doc_stride"])
    assert len(features) == len(group["input_ids"])
    for k, (question_tokens, window_tokens, start, end) in enumerate(features):
        ids = tok.convert_tokens_to_ids(["[CLS]", *question_tokens, "[SEP]", *window_tokens, "[SEP]"])
        padding = group["max_seq_len"] - len(ids) if group["padding"] else 0
        assert ids + [tok.vocab["[PAD]"]] * padding == group["input_ids"][k], f"feature {k}'s tokens"
        theirs = example["start_positions"][k], example["end_positions"][k]
        if example["quirk"][k]:  # run_qa: the input's final position; here the window's last token
            assert theirs[0] == len(group["input_ids"][k]) - 1
            assert (start, end) == (len(question_tokens) + 1 + len(window_tokens), theirs[1]), f"feature {k}"
        else:
            assert (start, end) == theirs, f"feature {k}"


def test_the_golden_features_hold_what_they_are_for():
    groups, quirks = GOLDEN["groups"], [(group["padding"], q) for group, e in EXAMPLES for q in e["quirk"]]
    assert {(g["vocab"], g["do_lower_case"]) for g in groups} == {("minilm", True), ("minilm", False),
                                                                  ("tiny-gelu", True)}
    assert {padding for padding, quirk in quirks if quirk} == {False, True}  # the quirk, with padding and without
    assert min(len(g["input_ids"]) for g in groups) == 1 and max(len(g["input_ids"]) for g in groups) >= 30
    positions = [(e["answers"]["text"] != [], s) for _, e in EXAMPLES for s in e["start_positions"]]
    assert sum(s != 0 for _, s in positions) > 500 and sum(answered and s == 0 for answered, s in positions) > 5000
    assert {g["doc_stride"] for g in groups} >= {0, 4, 128} and {g["max_seq_len"] for g in groups} >= {48, 64, 384}


def labels(answers, **kwargs):
    return [(start, end) for _, _, start, end in train_features(tokenizer(), QUESTION, CONTEXT, answers,
                                                                 **{"max_seq_len": 16, "doc_stride": 3, **kwargs})]


def answer(text, start=None, *more):
    """SQuAD's answers with `text` at `start` (default: its first place in CONTEXT), then the (text, start) more."""
    pairs = [(text, CONTEXT.index(text) if start is None else start), *more]
    return {"text": [t for t, _ in pairs], "answer_start": [s for _, s in pairs]}


def test_a_worked_example():
    features = train_features(tokenizer(), QUESTION, CONTEXT, answer("Kubrick"), max_seq_len=16, doc_stride=3)
    assert [window for _, window, _, _ in features] == [
        ["ann", "met", "bob", "in", "paris", ".", "they", "watched"],
        [".", "they", "watched", "a", "film", "by", "ku", "##brick"],
        ["by", "ku", "##brick", ",", "un", "##bel", "##ie", "##va"], ["##bel", "##ie", "##va", "##bly", "long", "."]]
    assert all(question == ["where", "did", "they", "meet", "?"] for question, _, _, _ in features)
    assert [(start, end) for _, _, start, end in features] == [(0, 0), (13, 14), (8, 9), (0, 0)]  # window: from 7
    assert labels(answer("believ")) == [(0, 0), (0, 0), (12, 14), (7, 9)]  # to inside "##va": all of it
    assert labels(answer("ly long.")) == [(0, 0), (0, 0), (0, 0), (10, 12)]  # from inside "##bly"
    assert labels(answer("Kubrick"), max_seq_len=384) == [(18, 19)]  # one window


def test_the_window_s_last_token_starts_the_answer_where_run_qa_labels_past_the_window():
    assert labels(answer("watched")) == [(14, 14), (9, 9), (0, 0), (0, 0)]  # run_qa: (15, 14), its [SEP]
    assert labels(answer("ched")) == [(14, 14), (9, 9), (0, 0), (0, 0)]  # from inside the token
    assert labels(answer(".", len(CONTEXT) - 1)) == [(0, 0), (0, 0), (0, 0), (12, 12)]  # the context's last token


def test_whitespace_around_the_answer_takes_in_the_token_beside_it_as_run_qa():
    assert labels(answer("Bob")) == [(9, 9), (0, 0), (0, 0), (0, 0)]
    assert labels(answer(" Bob")) == [(8, 9), (0, 0), (0, 0), (0, 0)]  # "met" too
    assert labels(answer("Bob ")) == [(9, 10), (0, 0), (0, 0), (0, 0)]  # "in" too


def test_no_answer_and_answers_beyond_the_first():
    assert labels({"text": [], "answer_start": []}) == [(0, 0)] * 4
    assert labels(answer("Bob", None, ("long", 67))) == [(9, 9), (0, 0), (0, 0), (0, 0)]  # the first is trained on
    assert labels(answer("long", 67, ("Bob", 8))) == [(0, 0), (0, 0), (0, 0), (11, 11)]
    arrays = {"text": np.array(["Bob", "long"]), "answer_start": np.array([8, 67])}  # as pandas gives them
    assert labels(arrays) == labels(answer("Bob", 8, ("long", 67)))


WHERE = r"answers\[\"answer_start\"\]\[0\] must be an int from 0 to 71 \(where the answer begins in the context\)"


@pytest.mark.parametrize("change, message", [
    ({"question": 5}, "the question must be a str, got int"),
    ({"question": " \n"}, r"the question holds no token \(it is empty or whitespace alone\): give the question's text"),
    ({"context": None}, "the context must be a str, got NoneType"),
    ({"context": ""}, "the context holds no token"),
    ({"answers": [("Paris", 15)]}, r"answers must be a dict \{\"text\": \[...\], \"answer_start\": \[...\]\} \(SQuAD"),
    ({"answers": {"text": ["Paris"]}}, r"answers lacks \"answer_start\": give \{\"text\""),
    ({"answers": {"text": "Paris", "answer_start": [15]}}, r"answers\[\"text\"\] must be a list, one entry per answer"),
    ({"answers": {"text": ["Paris"], "answer_start": 15}}, r"answers\[\"answer_start\"\] must be a list.*got int"),
    ({"answers": {"text": ["Paris", "Bob"], "answer_start": [15]}},
     "answers has 2 texts but 1 answer_starts: give one answer_start per text"),
    ({"answers": answer("", 3)}, r"answers\[\"text\"\]\[0\] must be a non-empty str \(the answer as the context "
                                 r"writes it\), got ''"),
    ({"answers": {"text": [None], "answer_start": [3]}}, r"answers\[\"text\"\]\[0\] must be a non-empty str"),
    ({"answers": answer("Paris", True)}, WHERE + ", got True"),
    ({"answers": answer("Paris", 15.0)}, WHERE + r", got 15\.0"),
    ({"answers": answer("Paris", -1)}, WHERE + ", got -1"),
    ({"answers": answer(".", 72)}, WHERE + ", got 72"),
    ({"answers": answer("Paris", 14)}, r"answers\[\"text\"\]\[0\] 'Paris' is not what the context holds at "
                                       r"answer_start 14 \(' Pari'\): the text begins at 15, fix answer_start"),
    ({"answers": answer("Paris", 70)}, r"at answer_start 70 \('g.'\): the text begins at 15"),
    ({"answers": answer("e", 62)}, r"at answer_start 62 \('a'\): the text begins at 60, fix"),  # the nearest "e"
    ({"answers": answer("paris", 15)}, r"\('Paris'\): the text is nowhere in the context"),
    ({"answers": answer("Bob", 8, ("Rome", 0))}, r"answers\[\"text\"\]\[1\] 'Rome' is not what the context holds"),
    ({"answers": answer(" ", 3)}, r"answers\[\"text\"\]\[0\] ' ' holds no token \(whitespace alone, or characters "
                                  r"the tokenizer drops\): there is nothing to label"),
    ({"max_seq_len": 0}, "max_seq_len must be a positive integer, got 0"),
    ({"max_seq_len": 16.0}, r"max_seq_len must be a positive integer, got 16\.0"),
    ({"doc_stride": -1}, "doc_stride must be an integer >= 0, got -1"),
    ({"doc_stride": True}, "doc_stride must be an integer >= 0, got True"),
    ({"doc_stride": 14}, r"doc_stride \(14\) must be smaller than max_seq_len - 2 \(14\)"),
    ({"doc_stride": 8}, r"doc_stride \(8\) must be smaller than the 8 context tokens of each window"),
    ({"max_seq_len": 8}, "a question of 5 tokens leaves no room for the context in max_seq_len 8"),
])
def test_bad_input_is_refused_in_one_line(change, message):
    kwargs = {"question": QUESTION, "context": CONTEXT, "answers": answer("Paris"), "max_seq_len": 16,
              "doc_stride": 3, **change}
    with pytest.raises(ValueError, match=message) as refusal:
        train_features(tokenizer(), **kwargs)
    assert "\n" not in str(refusal.value)
