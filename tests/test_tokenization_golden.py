"""tokenization.py against HF BertTokenizer's output, stored by tests/make_golden_tokenizer.py."""
import functools
import gzip
import json
import os

import numpy as np
import pytest

from conftest import GOLDEN_DIR
from tokenization import FullTokenizer

MODES = {"lower": True, "cased": False}
SETTINGS = ("lower-keep-accents", "cased-strip-accents", "no-chinese-chars")  # tokenizer_config.json's others


@functools.lru_cache(maxsize=None)
def golden(name):
    with (gzip.open if name.endswith(".gz") else open)(os.path.join(GOLDEN_DIR, "tokenizer", name), "rt",
                                                         encoding="utf-8") as f:
        return json.load(f)


def pairs(flat):
    """[(start, end), ...] from the golden files' flat start, end, start, end, ..."""
    return list(zip(flat[::2], flat[1::2]))


@pytest.fixture(scope="module", params=list(MODES))
def mode_tok(request, minilm):
    return request.param, FullTokenizer(os.path.join(minilm, "vocab.txt"), do_lower_case=MODES[request.param])


def test_tokenize_matches_hf_on_every_corpus_line(mode_tok):
    mode, tok = mode_tok
    lines = golden("tokenize.json")[mode]
    assert len(lines) > 400
    mismatches = [(text, tok.tokenize(text), want) for text, want in lines if tok.tokenize(text) != want]
    assert not mismatches, mismatches[:3]


def codepoint_mismatches(tok, groups):
    """(how many code points were checked, those whose "a" + chr(cp) + "b" tok tokenizes otherwise than HF):
    groups is the golden {tokens joined by spaces: [[first, last], ...]}."""
    checked, mismatches = 0, []
    for tokens, ranges in groups.items():
        want = tokens.split(" ") if tokens else []
        for first, last in ranges:
            for cp in range(first, last + 1):
                checked += 1
                if tok.tokenize("a" + chr(cp) + "b") != want:
                    mismatches.append(hex(cp))
    return checked, mismatches


def test_every_codepoint_between_letters_matches_hf(mode_tok):
    """"a" + chr(cp) + "b" for all of planes 0-2, tags/variation selectors and some private use."""
    mode, tok = mode_tok
    checked, mismatches = codepoint_mismatches(tok, golden("codepoints.json")[mode])
    assert checked > 190_000
    assert not mismatches, mismatches[:20]


@pytest.fixture(scope="module", params=SETTINGS)
def settings_tok(request, minilm):
    case = golden("settings.json.gz")[request.param]
    return case, FullTokenizer(os.path.join(minilm, "vocab.txt"), **case["kwargs"])


def test_other_settings_match_hf_tokens_and_offsets_on_every_corpus_line(settings_tok):
    """strip_accents False with lowercasing, True without it, and tokenize_chinese_chars False, as
    BertTokenizer(do_lower_case=..., strip_accents=..., tokenize_chinese_chars=...) gives them."""
    case, tok = settings_tok
    mismatches = [(text, tok.tokenize_with_offsets(text), tokens) for text, tokens, offsets in case["lines"]
                  if tok.tokenize(text) != tokens or tok.tokenize_with_offsets(text) != (tokens, pairs(offsets))]
    assert len(case["lines"]) > 400
    assert not mismatches, mismatches[:3]


def test_other_settings_match_hf_on_every_codepoint_between_letters(settings_tok):
    case, tok = settings_tok
    checked, mismatches = codepoint_mismatches(tok, case["codepoints"])
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


def test_offsets_match_hf_on_every_corpus_line(mode_tok):
    mode, tok = mode_tok
    lines, offsets = golden("tokenize.json")[mode], golden("offsets.json.gz")[mode]["lines"]
    assert len(lines) == len(offsets) > 400
    mismatches = []
    for (text, want_tokens), want in zip(lines, offsets):
        got = tok.tokenize_with_offsets(text)
        if got != (want_tokens, pairs(want)):
            mismatches.append((text, got, want))
    assert not mismatches, mismatches[:3]


def test_batch_offsets_match_hf_padding_and_truncation(mode_tok):
    mode, tok = mode_tok
    batches = golden("offsets.json.gz")[mode]["batches"]
    for batch in batches:
        out = tok.batch_encode(batch["texts_a"], batch["texts_b"], max_length=batch["max_length"], return_offsets=True)
        np.testing.assert_array_equal(out["input_ids"], np.array(batch["input_ids"]))
        assert out["offsets"].dtype == np.int64
        np.testing.assert_array_equal(out["offsets"], np.array(batch["offsets"]))
    assert {b["max_length"] for b in batches} >= {9, 512} and any(b["texts_b"] for b in batches)


def test_offsets_follow_hf_reordering_of_combining_marks(minilm):
    """"x \u0345" + mark + "\U0001d165": the mark's combining class in HF's (Unicode 9) tables decides where
    NFD's reordering puts U+1D165, so which original character it maps to."""
    tok = FullTokenizer(os.path.join(minilm, "vocab.txt"), do_lower_case=True)
    probe = golden("offsets.json.gz")["lower"]["combining_marks"]
    assert len(probe["marks"]) > 800
    mismatches = [hex(cp) for cp, tokens, want in zip(probe["marks"], probe["tokens"], probe["offsets"])
                  if tok.tokenize_with_offsets("x \u0345" + chr(cp) + "\U0001d165") != (tokens, pairs(want))]
    assert not mismatches, mismatches[:20]
