"""bert_normalizer.py: its tables agree with each other, and the map back to the original text is consistent
with the normalised text. (Agreement with HF is tested through the tokenizer in test_tokenization_golden.py.)"""
import unicodedata

from hypothesis import example, given, settings
from hypothesis import strategies as st

import bert_normalizer
from bert_normalizer import category, combining, normalize, normalize_with_sources


def test_reordered_kept_marks_follow_from_the_category_and_combining_class_tables():
    """The characters sent down the exact path are those whose NFD holds a non-"Mn" mark with a class."""
    derived = {chr(cp) for cp in range(0x110000)
               if (unicodedata.combining(chr(cp)) or unicodedata.decomposition(chr(cp)))
               and any(combining(c) and category(c) != "Mn" for c in unicodedata.normalize("NFD", chr(cp)))}
    assert set(bert_normalizer._code_points(bert_normalizer._REORDERED_KEPT_MARKS)) == derived


def test_sources_map_each_normalised_character_to_its_origin():
    assert normalize_with_sources("H\u00e9\u200bllo\tW", lower=True) == ("hello w", [0, 1, 3, 4, 5, 6, 7])
    assert normalize_with_sources("\u00c9\u4e00", lower=False) == ("\u00c9 \u4e00 ", [0, 1, 1, 1])
    assert normalize_with_sources("\ud55c", lower=True) == ("\u1112\u1161\u11ab", [0, 0, 0])
    assert normalize_with_sources("Hello\tWorld", lower=True) == ("hello\tworld", None)  # None: one to one
    # NFD's canonical ordering moves the kept U+1D165 before the dropped U+0301: it takes that position
    assert normalize_with_sources("x \u0301\U0001d165", lower=True) == ("x \U0001d165", [0, 1, 2])


TEXT = st.lists(st.one_of(st.characters(min_codepoint=0, max_codepoint=0x10FFFF),
                          st.sampled_from(["\u0301", "\u0345", "\U0001d165", "\U0001d16d", "\u03a3", "\u0130", "\ud55c",
                                           "\u4e00", "\x00", "\u200b", "\t", "A"])),
                max_size=40).map("".join)


@settings(max_examples=200, deadline=None)
@given(TEXT, st.booleans(), st.sampled_from([None, False, True]), st.booleans())
@example("\x1f\n", False, None, True)  # ASCII with a dropped control: both keep the \n
def test_sources_are_ordered_and_as_long_as_the_normalised_text(text, lower, strip_accents, chinese_chars):
    normalized, sources = normalize_with_sources(text, lower, strip_accents, chinese_chars)
    assert normalized == normalize(text, lower, strip_accents, chinese_chars)
    if sources is None:  # one to one
        sources = list(range(len(text)))
    assert len(sources) == len(normalized)
    assert sources == sorted(sources) and all(0 <= k < len(text) for k in sources)
