"""tokenization.py against HF BertTokenizer's output, stored by tests/make_golden_tokenizer.py."""
import json
import os

import numpy as np
import pytest

from conftest import GOLDEN_DIR
from tokenization import FullTokenizer

MODES = {"lower": True, "cased": False}


def golden(name):
    with open(os.path.join(GOLDEN_DIR, "tokenizer", name), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module", params=list(MODES))
def mode_tok(request, minilm):
    return request.param, FullTokenizer(os.path.join(minilm, "vocab.txt"), do_lower_case=MODES[request.param])


def test_tokenize_matches_hf_on_every_corpus_line(mode_tok):
    mode, tok = mode_tok
    lines = golden("tokenize.json")[mode]
    assert len(lines) > 400
    mismatches = [(text, tok.tokenize(text), want) for text, want in lines if tok.tokenize(text) != want]
    assert not mismatches, mismatches[:3]


def test_every_codepoint_between_letters_matches_hf(mode_tok):
    """"a" + chr(cp) + "b" for all of planes 0-2, tags/variation selectors and some private use."""
    mode, tok = mode_tok
    checked, mismatches = 0, []
    for tokens, ranges in golden("codepoints.json")[mode].items():
        want = tokens.split(" ") if tokens else []
        for first, last in ranges:
            for cp in range(first, last + 1):
                checked += 1
                if tok.tokenize("a" + chr(cp) + "b") != want:
                    mismatches.append(hex(cp))
    assert checked > 190_000
    assert not mismatches, mismatches[:20]


def test_encode_matches_hf_truncation(mode_tok):
    mode, tok = mode_tok
    cases = golden("encode.json")[mode]["cases"]
    for case in cases:
        tokens, ids, segments = tok.encode(case["a"], case["b"], max_length=case["max_length"])
        assert (ids, segments) == (case["input_ids"], case["segment_ids"]), case
        assert tok.convert_tokens_to_ids(tokens) == ids
    assert {c["max_length"] for c in cases} >= {3, 4, 5, 8, 16, 64, 512}


def test_batch_encode_matches_hf_padding(mode_tok):
    mode, tok = mode_tok
    for batch in golden("encode.json")[mode]["batches"]:
        out = tok.batch_encode(batch["texts_a"], batch["texts_b"], max_length=batch["max_length"])
        for ours, theirs in (("input_ids", "input_ids"), ("segment_ids", "segment_ids"),
                             ("attention_mask", "attention_mask")):
            assert out[ours].dtype == np.int64
            np.testing.assert_array_equal(out[ours], np.array(batch[theirs]))


def test_decode_matches_hf(mode_tok):
    mode, tok = mode_tok
    for ids, text in golden("decode.json")[mode]:
        assert tok.decode(ids) == text, ids
