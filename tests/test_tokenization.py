"""tokenization.py: the classic BERT reference behaviours, bad input, and properties on arbitrary text."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenization import FullTokenizer

SMALL_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "want", "##want", "##ed", "wa", "un", "runn",
               "##ing", ",", "low", "lowest", "Hello", "hello", "!", "H\u00e9llo", "caf\u00e9", "cafe"]


def write_vocab(folder, tokens):
    path = os.path.join(folder, "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in tokens))
    return path


@pytest.fixture(scope="module")
def tok(minilm):
    return FullTokenizer(os.path.join(minilm, "vocab.txt"), do_lower_case=True)


@pytest.fixture(scope="module")
def cased(minilm):
    return FullTokenizer(os.path.join(minilm, "vocab.txt"), do_lower_case=False)


@pytest.fixture
def small(tmp_path):
    return FullTokenizer(write_vocab(tmp_path, SMALL_VOCAB), do_lower_case=False)


def test_vocab_is_file_order_and_inverse(tok):
    assert tok.vocab["[PAD]"] == 0 and tok.vocab["[UNK]"] == 100 and tok.vocab["[CLS]"] == 101
    assert len(tok.vocab) == len(tok.inv_vocab) == 30522
    assert all(tok.inv_vocab[i] == t for t, i in tok.vocab.items())


def test_lowercasing_strips_accents_and_splits_punctuation(tok):
    assert tok.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you", "?"]
    assert tok.tokenize("H\u00e9llo caf\u00e9 Ni\u00f1o") == ["hello", "cafe", "nino"]


def test_cased_keeps_case_and_accents(small):
    assert small.tokenize("H\u00e9llo Hello hello caf\u00e9") == ["H\u00e9llo", "Hello", "hello", "caf\u00e9"]
    # no normalisation to NFC when cased: a combining accent stays a separate, unknown character
    assert small.tokenize("cafe\u0301") == ["[UNK]"]


def test_chinese_characters_become_single_tokens(tok):
    # each ideograph is its own word: in the vocab, or [UNK] on its own without swallowing neighbours
    assert tok.tokenize("ah\u535a\u63a8zz") == ["ah", "\u535a", "[UNK]", "z", "##z"]


def test_control_characters_dropped_whitespace_splits(tok):
    assert tok.tokenize("x\u0000y\ufffdz") == ["x", "##y", "##z"]  # dropped characters join their neighbours
    assert tok.tokenize("a\tb\nc\r\nd\u00a0e\u3000f\u2028g") == list("abcdefg")
    assert tok.tokenize("a\u200bb\u0001c") == tok.tokenize("abc")


def test_wordpiece_longest_match_first_and_unk(small):
    assert small.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert small.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
    assert small.tokenize("lowest,low") == ["lowest", ",", "low"]


def test_words_over_100_characters_are_unknown(tok):
    assert tok.tokenize("a" * 100) != ["[UNK]"]
    assert tok.tokenize("a" * 101) == ["[UNK]"]
    assert tok.tokenize("a" * 101 + "!") == ["[UNK]", "!"]  # the limit applies after the punctuation split


def test_literal_special_tokens_stay_whole(tok, cased):
    assert tok.tokenize("The capital of France is [MASK].") == ["the", "capital", "of", "france", "is", "[MASK]", "."]
    assert tok.tokenize("word[MASK].") == ["word", "[MASK]", "."]
    assert tok.tokenize("a[MASK][MASK]b[SEP]") == ["a", "[MASK]", "[MASK]", "b", "[SEP]"]
    assert tok.tokenize("[mask] [Mask]") == ["[", "mask", "]", "[", "mask", "]"]  # matching is case-sensitive
    assert cased.tokenize("[MASK] [CLS] [PAD] [UNK]") == ["[MASK]", "[CLS]", "[PAD]", "[UNK]"]


def test_final_capital_sigma_lowercases_character_by_character(tok):
    assert tok.tokenize("\u039f\u0394\u039f\u03a3") == ["\u03bf", "##\u03b4", "##\u03bf", "##\u03c3"]


def test_encode_single_and_pair(tok):
    tokens, ids, segments = tok.encode("Hello, world!", "Good bye.")
    assert tokens == ["[CLS]", "hello", ",", "world", "!", "[SEP]", "good", "bye", ".", "[SEP]"]
    assert ids == tok.convert_tokens_to_ids(tokens) and ids[0] == 101 and ids[-1] == 102
    assert segments == [0] * 6 + [1] * 4
    assert tok.encode("Hello", max_length=2)[0] == ["[CLS]", "[SEP]"]


def test_pair_truncation_is_longest_first(tok):
    a, b = " ".join("a" * 9), " ".join("b" * 3)
    tokens, _, segments = tok.encode(a, b, max_length=10)
    assert tokens == ["[CLS]"] + ["a"] * 4 + ["[SEP]"] + ["b"] * 3 + ["[SEP]"]
    tokens, _, _ = tok.encode(a, a, max_length=8)  # odd budget 5: the second text gets the extra token
    assert tokens.index("[SEP]") == 3 and len(tokens) == 8


def test_batch_encode_pads_to_longest_row(tok):
    out = tok.batch_encode(["a b c d", "x"], ["e", "y z"], max_length=512)
    assert set(out) == {"input_ids", "segment_ids", "attention_mask", "untruncated_length"}
    assert all(out[k].dtype == np.int64 and out[k].shape == (2, 8) for k in ("input_ids", "segment_ids",
                                                                             "attention_mask"))
    np.testing.assert_array_equal(out["attention_mask"], [[1] * 8, [1] * 6 + [0] * 2])
    np.testing.assert_array_equal(out["segment_ids"][1], [0, 0, 0, 1, 1, 1, 0, 0])
    assert list(out["input_ids"][1, -2:]) == [0, 0]


def test_batch_encode_tells_each_rows_length_before_truncation(tok):
    out = tok.batch_encode(["a b c d e f", "x", ""], max_length=5)
    assert out["input_ids"].shape == (3, 5) and out["untruncated_length"].dtype == np.int64
    assert out["untruncated_length"].tolist() == [8, 3, 2]
    pairs = tok.batch_encode(["a b c d", "x"], ["e f g", ""], max_length=6)
    assert pairs["untruncated_length"].tolist() == [10, 4]  # an empty second text is a segment: [SEP] counts


def test_batch_encode_tokens_is_batch_encode_after_tokenize(tok):
    texts_a, texts_b = ["Hello, world!", "unaffable"], ["fine", "x y z"]
    out = tok.batch_encode_tokens([tok.tokenize(t) for t in texts_a], [tok.tokenize(t) for t in texts_b], 7)
    expected = tok.batch_encode(texts_a, texts_b, max_length=7)
    assert out.keys() == expected.keys()
    for key in out:
        np.testing.assert_array_equal(out[key], expected[key])


def test_batch_encode_tokens_takes_rows_without_a_second_text(tok):
    """A None row of tokens_b is [CLS] a [SEP], as encode gives for no second text (offsets too)."""
    texts_a, texts_b = ["Hello, world!", "unaffable", "x"], ["fine", None, ""]
    split_a = [tok.tokenize_with_offsets(t) for t in texts_a]
    split_b = [None if t is None else tok.tokenize_with_offsets(t) for t in texts_b]
    out = tok.batch_encode_tokens([t for t, _ in split_a], [s and s[0] for s in split_b], max_length=7,
                                  offsets_a=[o for _, o in split_a], offsets_b=[s and s[1] for s in split_b])
    for row, (a, b) in enumerate(zip(texts_a[:2], texts_b)):  # (encode takes "" as no second text)
        _, ids, segments = tok.encode(a, b, max_length=7)
        assert out["input_ids"][row, :len(ids)].tolist() == ids and out["attention_mask"][row].sum() == len(ids)
        assert out["segment_ids"][row, :len(ids)].tolist() == segments
    assert out["input_ids"][2].tolist()[:5] == tok.convert_tokens_to_ids(["[CLS]", "x", "[SEP]", "[SEP]", "[PAD]"])
    assert out["untruncated_length"].tolist() == [8, 5, 4]
    assert out["offsets"][1].tolist() == [[0, 0], [0, 3], [3, 6], [6, 9], [0, 0], [0, 0], [0, 0]]


def spans(tok, text):
    """{token: the text it spans} for each token of tokenize_with_offsets, in order."""
    tokens, offsets = tok.tokenize_with_offsets(text)
    return [(token, text[start:end]) for token, (start, end) in zip(tokens, offsets)]


def test_offsets_point_into_the_original_text(tok, cased):
    assert tok.tokenize_with_offsets("Héllo, unaffable World!") == (
        ["hello", ",", "una", "##ffa", "##ble", "world", "!"],
        [(0, 5), (5, 6), (7, 10), (10, 13), (13, 16), (17, 22), (22, 23)])
    # a stripped accent is left out of the span when it is a character of its own, as in HF
    assert spans(tok, "cafe\u0301 na\u00efve") == [("cafe", "cafe"), ("naive", "na\u00efve")]
    assert spans(tok, "x\u0000y\u200bz") == [("x", "x"), ("##y", "y"), ("##z", "z")]  # dropped: left out
    assert spans(cased, "\u0130stanbul") == [("[UNK]", "\u0130stanbul")]  # [UNK]: the whole word
    assert spans(tok, "\u0130stanbul") == [("istanbul", "\u0130stanbul")]


def test_offsets_of_pieces_from_one_character_are_that_character(tok):
    # a Hangul syllable decomposes into jamo pieces: each spans the whole syllable, as in HF
    assert spans(tok, "\ud55c\uad6d") == [("\u1112", "\ud55c"), ("##\u1161", "\ud55c"), ("##\u11ab", "\ud55c"),
                                       ("##\u1100", "\uad6d"), ("##\u116e", "\uad6d"), ("##\u11a8", "\uad6d")]


def test_offsets_count_code_points_even_beyond_the_bmp(tok):
    assert tok.tokenize_with_offsets("\U0001f600 ok \U0001f44d\U0001f3fd x") == (
        ["[UNK]", "ok", "[UNK]", "x"], [(0, 1), (2, 4), (5, 7), (8, 9)])
    assert tok.tokenize_with_offsets("\U00020000x") == (["[UNK]", "x"], [(0, 1), (1, 2)])  # astral CJK ideograph


def test_offsets_of_literal_special_tokens_and_long_words(tok):
    assert spans(tok, "word[MASK]. [mask]") == [("word", "word"), ("[MASK]", "[MASK]"), (".", "."), ("[", "["),
                                                ("mask", "mask"), ("]", "]")]
    assert tok.tokenize_with_offsets("\u00e9" * 101 + "!") == (["[UNK]", "!"], [(0, 101), (101, 102)])
    assert tok.tokenize_with_offsets("") == ([], [])


def test_batch_encode_offsets_as_hf(tok):
    out = tok.batch_encode(["Héllo world", "x"], ["Fine!", ""], max_length=7, return_offsets=True)
    assert out["offsets"].dtype == np.int64 and out["offsets"].shape == (2, 7, 2)
    assert out["offsets"].tolist() == [[[0, 0], [0, 5], [6, 11], [0, 0], [0, 4], [4, 5], [0, 0]],  # b's index into b
                                       [[0, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0]]]  # [SEP], [PAD]: (0, 0)
    cut = tok.batch_encode(["Héllo world"], ["Fine!"], max_length=6, return_offsets=True)["offsets"]
    assert cut.tolist() == [[[0, 0], [0, 5], [0, 0], [0, 4], [4, 5], [0, 0]]]  # truncated longest first
    assert "offsets" not in tok.batch_encode(["x"])


def test_batch_encode_tokens_carries_offsets_after_sorting(tok):
    texts = ["a much longer text, with more tokens", "short", "Caf\u00e9 au lait"]
    split = sorted((tok.tokenize_with_offsets(t) for t in texts), key=lambda s: len(s[0]))
    out = tok.batch_encode_tokens([t for t, _ in split], max_length=8, offsets_a=[o for _, o in split])
    expected = tok.batch_encode(sorted(texts, key=lambda t: len(tok.tokenize(t))), max_length=8, return_offsets=True)
    assert out.keys() == expected.keys()
    for key in out:
        np.testing.assert_array_equal(out[key], expected[key])


def test_batch_encode_tokens_rejects_offsets_that_do_not_fit(tok):
    tokens, offsets = tok.tokenize_with_offsets("hello world")
    with pytest.raises(ValueError, match=r"offsets_a\[0\] has 1 spans for 2 tokens"):
        tok.batch_encode_tokens([tokens], offsets_a=[offsets[:1]])
    with pytest.raises(ValueError, match="offsets_a has 2 rows for 1 texts"):
        tok.batch_encode_tokens([tokens], offsets_a=[offsets, offsets])
    for kwargs in ({"offsets_a": [offsets]}, {"offsets_b": [offsets]}):  # pairs need both sides' offsets
        with pytest.raises(ValueError, match="offsets_b goes with offsets_a and tokens_b"):
            tok.batch_encode_tokens([tokens], [tokens], **kwargs)
    with pytest.raises(ValueError, match="offsets_b goes with offsets_a and tokens_b"):
        tok.batch_encode_tokens([tokens], offsets_a=[offsets], offsets_b=[offsets])


def test_decode_joins_pieces_and_drops_cls_sep_pad(tok):
    _, ids, _ = tok.encode("Unaffable, isn't it? [MASK]")
    assert tok.decode(ids + [0, 0]) == "unaffable, isn ' t it? [MASK]"


def test_decode_glues_what_hf_decoder_glues(tmp_path):
    """HF's WordPiece decoder glues tokens starting with . ? ! , n't 's 'm 've 're; a leading ## stays."""
    tokens = ["##x", "a", "...", ",x", "n't", "'s", "'m", "'ve", "'re", "do", "'", "##x"]
    small = FullTokenizer(write_vocab(tmp_path, ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + tokens))
    assert small.decode(small.convert_tokens_to_ids(tokens)) == "##x a...,xn't's'm've're do 'x"


ANY_TEXT = st.lists(st.one_of(st.characters(min_codepoint=0, max_codepoint=0x10FFFF),
                               st.integers(0xD800, 0xDFFF).map(chr),  # lone surrogates, excluded by default
                               st.sampled_from(["[MASK]", "[CLS]", "[", "]", "\u03a3", "\u0301", " "])),
                     max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_any_text_tokenizes_and_round_trips(tok, text):
    tokens = tok.tokenize(text)
    assert all(t in tok.vocab for t in tokens)
    assert tok.convert_ids_to_tokens(tok.convert_tokens_to_ids(tokens)) == tokens
    tokens, ids, segments = tok.encode(text, text, max_length=16)
    assert len(tokens) == len(ids) == len(segments) <= 16


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_offsets_are_ordered_nonempty_spans_of_the_tokens(tok, cased, text):
    for tokenizer in (tok, cased):
        tokens, offsets = tokenizer.tokenize_with_offsets(text)
        assert tokens == tokenizer.tokenize(text) and len(offsets) == len(tokens)
        assert all(0 <= start < end <= len(text) for start, end in offsets)
        starts, ends = [start for start, _ in offsets], [end for _, end in offsets]
        assert starts == sorted(starts) and ends == sorted(ends)  # pieces of one character share its span
        assert all(text[start:end] == token for token, (start, end) in zip(tokens, offsets)
                   if token in ("[MASK]", "[CLS]", "[SEP]"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30521), max_size=30))
def test_ids_round_trip_through_tokens(tok, ids):
    assert tok.convert_tokens_to_ids(tok.convert_ids_to_tokens(ids)) == ids


@pytest.mark.parametrize("text", ["", " ", "\t\n", "\ud800", "a\udfffb", "\ue000", "\U0010ffff", "\u0378"])
def test_odd_strings_do_not_raise(tok, text):
    assert isinstance(tok.tokenize(text), list)
    assert tok.tokenize_with_offsets(text)[0] == tok.tokenize(text)
    assert tok.encode(text)[0][0] == "[CLS]"


@pytest.mark.parametrize("bad", [None, b"bytes", 3, ["list"]])
def test_non_str_text_raises_type_error(tok, bad):
    with pytest.raises(TypeError, match=type(bad).__name__):
        tok.tokenize(bad)
    with pytest.raises(TypeError, match=type(bad).__name__):
        tok.tokenize_with_offsets(bad)
    with pytest.raises(TypeError, match="text_a must be a str, got " + type(bad).__name__):
        tok.encode(bad)
    if bad is not None:  # None is a valid text_b: no second text
        with pytest.raises(TypeError, match="text_b must be a str, got " + type(bad).__name__):
            tok.encode("ok", bad)


def test_batch_encode_rejects_bad_lists(tok):
    with pytest.raises(TypeError, match="texts_a must be a list of str, got str"):
        tok.batch_encode("not a list")
    with pytest.raises(TypeError, match=r"texts_a\[1\]"):
        tok.batch_encode(["ok", 5])
    with pytest.raises(ValueError, match="texts_b has 1 texts but texts_a has 2"):
        tok.batch_encode(["a", "b"], ["c"])


def test_missing_vocab_file_names_the_path(tmp_path):
    missing = str(tmp_path / "nope" / "vocab.txt")
    with pytest.raises(FileNotFoundError, match="nope"):
        FullTokenizer(missing)


def test_vocab_without_required_specials_names_them(tmp_path):
    path = write_vocab(tmp_path, ["[PAD]", "[CLS]", "hello"])
    with pytest.raises(ValueError, match=r"\[UNK\], \[SEP\]"):
        FullTokenizer(path)


def test_max_length_too_small_raises(tok):
    with pytest.raises(ValueError, match="need 2"):
        tok.encode("hello", max_length=1)
    with pytest.raises(ValueError, match="need 3"):
        tok.encode("hello", "there", max_length=2)
    with pytest.raises(ValueError, match="need 3"):
        tok.batch_encode(["a"], ["b"], max_length=2)
    with pytest.raises(TypeError, match="max_length must be an int"):
        tok.encode("hello", max_length=8.0)


def test_unknown_id_raises(tok):
    with pytest.raises(ValueError, match="30522"):
        tok.convert_ids_to_tokens([5, 30522])
    assert tok.convert_ids_to_tokens(np.array([101, 102])) == ["[CLS]", "[SEP]"]
    for bad in ([1.9], [-1], ["5"]):
        with pytest.raises(ValueError, match=f"token id {bad[0]!r} is not an integer in the vocabulary"):
            tok.decode(bad)
