"""Characters as HF's Rust BERT tokenizer sees them: its Unicode tables, its text normalisation, and where each
normalised character comes from in the original text (the map its offsets go through).

    normalize("Héllo\\u200b WORLD", lower=True)               # 'hello world'
    normalize_with_sources("Héllo\\u200b WORLD", lower=True)  # ('hello world', [0, 1, 2, 3, 4, 6, 7, ...])

Normalisation, in HF's order: NUL, U+FFFD and control/format/private-use characters are dropped, every
whitespace character becomes a space, CJK ideographs get spaces around them (unless chinese_chars=False);
accents are stripped (NFD, then nonspacing marks dropped) when strip_accents is True, or when it is None
(the default) and lower is True; with lower, each character is then lowercased on its own. Every character
of the result comes from one character of the input: sources[i] is its index there (all the characters an
accented letter or a Hangul syllable decomposes into come from that letter or syllable).

Standard library only, like the tokenizer (tokenization.py) that uses it.
"""
import re
import unicodedata

# ASCII characters BERT treats as punctuation: every non-alphanumeric printable one.
ASCII_PUNCT = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())
# ASCII control characters; \t \n \r count as whitespace, the rest (incl. \x0b \x0c) are dropped.
_ASCII_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Characters that may not become exactly one character: all but printable ASCII and \t \n \r.
_NOT_ONE_TO_ONE = re.compile("[^\t\n\r\x20-\x7e]")
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))

# HF's Rust tokenizer classifies characters with older Unicode tables than Python 3.11's (Unicode 14):
# these code points were unassigned there (so ordinary letters, "Lo") or had another category.
# Found by tokenizing "a" + chr(cp) + "b" for every code point with both tokenizers (tests/golden/tokenizer/
# codepoints.json keeps planes 0-2). A newer Python knows more characters than Unicode 14: HF treats those
# as letters, this module by their new category.
_HF_CATEGORY_OVERRIDES = """
Lo 61D 7FD 890-891 898-89F 8CA-8E2 9FD-9FE A76 AFA-AFF B55 C04 C3C C77 C84 D00 D3B-D3C D81 EBA 180F 1885-1886
   1ABF-1ACE 1B7D-1B7E 1DF6-1DFB 2E43-2E4F 2E52-2E5D A82C A8C5 A8FF A9BD 10D24-10D27 10EAB-10EAD 10F46-10F50
   10F55-10F59 10F82-10F89 11070 11073-11074 110C2 110CD 111CF 1123E 1133B 11438-1143F 11442-11444 11446
   1144B-1144F 1145A-1145B 1145D-1145E 11660-1166C 116B9 1182F-11837 11839-1183B 1193B-1193C 1193E 11943-11946
   119D4-119D7 119DA-119DB 119E0 119E2 11A01-11A0A 11A33-11A38 11A3B-11A47 11A51-11A56 11A59-11A5B 11A8A-11A96
   11A98-11A9C 11A9E-11AA2 11C30-11C36 11C38-11C3D 11C3F 11C41-11C45 11C70-11C71 11C92-11CA7 11CAA-11CB0
   11CB2-11CB3 11CB5-11CB6 11D31-11D36 11D3A 11D3C-11D3D 11D3F-11D45 11D47 11D90-11D91 11D95 11D97 11EF3-11EF4
   11EF7-11EF8 11FFF 12FF1-12FF2 13430-13438 16E97-16E9A 16F4F 16FE2 16FE4 1CF00-1CF2D 1CF30-1CF46 1E000-1E006
   1E008-1E018 1E01B-1E021 1E023-1E024 1E026-1E02A 1E130-1E136 1E2AE 1E2EC-1E2EF 1E944-1E94A 1E95E-1E95F
Po 166D 111C9
Mn 1734
"""
# HF's NFD knows the combining classes of Unicode 9: marks added since are starters (class 0) there.
# Found by tokenizing "x \u0345" + mark + "\U0001D165" with HF for every mark Python gives a class.
_HF_NO_COMBINING_CLASS = """
7FD 898-89F 8CA-8D3 9FE C3C D3B-D3C EBA 1715 1ABF-1ACE 1DF6-1DFA A82C 10D24-10D27 10EAB-10EAC 10F46-10F50
10F82-10F85 11070 1133B 1145E 11839-1183A 1193D-1193E 11943 119E0 11A34 11A47 11A99 11D42 11D44-11D45 11D97
16FF0-16FF1 1E130-1E136 1E2AE 1E2EC-1E2EF
"""
# Characters that decompose to a mark kept by accent stripping (not "Mn") with a nonzero combining class
# (in HF's tables): NFD's canonical reordering moves such a mark across its neighbours, so text with one goes
# through the exact, slow path. tests/test_normalizer.py derives this list from the two tables above.
_REORDERED_KEPT_MARKS = """
8D4-8E1 1B44 1BAA 1BF2-1BF3 1DFB 302E-302F A953 A9C0 111C0 11235 1134D 11442 11446 116B6 11C3F 1D15E-1D166
1D16D-1D172 1D1BB-1D1C0 1E000-1E006 1E008-1E018 1E01B-1E021 1E023-1E024 1E026-1E02A 1E944-1E94A
"""


def _code_points(table):
    """{character: the label before it} from a table of labels (such as "Lo") and hexadecimal code points or
    ranges (in capitals)."""
    chars, label = {}, None
    for item in table.split():
        if item[-1].islower():
            label = item
            continue
        lo, _, hi = item.partition("-")
        chars.update((chr(cp), label) for cp in range(int(lo, 16), int(hi or lo, 16) + 1))
    return chars


_OVERRIDES = _code_points(_HF_CATEGORY_OVERRIDES)
_NO_COMBINING_CLASS = _code_points(_HF_NO_COMBINING_CLASS)
_REORDERED = frozenset(_code_points(_REORDERED_KEPT_MARKS))  # text.isdisjoint() is faster than a regex


def category(char):
    """Unicode general category of `char` as HF's tokenizer sees it."""
    return _OVERRIDES.get(char) or unicodedata.category(char)


def combining(char):
    """Canonical combining class of `char` as HF's NFD sees it."""
    return 0 if char in _NO_COMBINING_CLASS else unicodedata.combining(char)


def is_punctuation(char):
    return char in ASCII_PUNCT or category(char)[0] == "P"


def _is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _clean_char(char, chinese_chars=True):
    """What text cleaning turns one character into: None (dropped), a space, itself, or itself spaced."""
    if char in "\t\n\r":
        return " "
    if char == "\ufffd" or category(char) in ("Cc", "Cf", "Co", "Cs"):
        return None
    if char.isspace():
        return " "
    if chinese_chars and _is_cjk(ord(char)):
        return " " + char + " "
    return char


def lowercase(text):
    """Lowercased as HF's tokenizers do it, character by character: a capital sigma is always σ, never the
    final ς that str.lower() gives at the end of a word."""
    return text.replace("\u03a3", "\u03c3").lower()


def _normalized_char(char, lower, strip, chinese_chars):
    """What normalisation turns one character into (None: dropped), when its NFD reorders nothing."""
    chars = _clean_char(char, chinese_chars) or ""
    if strip:
        chars = "".join(c for c in unicodedata.normalize("NFD", chars) if category(c) != "Mn")
    return (lowercase(chars) if lower else chars) or None


class _LazyTable(dict):
    """A str.translate table over all of Unicode, filled in for the characters a text actually uses."""

    def __init__(self, rule):
        super().__init__()
        self.rule = rule

    def __missing__(self, codepoint):
        value = self[codepoint] = self.rule(chr(codepoint))
        return value


# (lower, strip accents, space CJK) -> its table; the usual two: (True, True, True) and (False, False, True)
_TABLES = {(lower, strip, chinese): _LazyTable(lambda c, mode=(lower, strip, chinese): _normalized_char(c, *mode))
           for lower in (False, True) for strip in (False, True) for chinese in (False, True)}


def normalize(text, lower, strip_accents=None, chinese_chars=True):
    """`text` as HF's BertNormalizer(lowercase=lower, strip_accents=strip_accents, handle_chinese_chars=
    chinese_chars) gives it: cleaned, CJK spaced, accent-stripped and lowercased (see the module's docstring)."""
    if text.isascii():
        if _ASCII_CONTROL.search(text):
            text = _ASCII_CONTROL.sub("", text)
        return text.lower() if lower else text
    strip = lower if strip_accents is None else bool(strip_accents)
    if strip and not _REORDERED.isdisjoint(text):
        return _normalize_reordered(text, lower, chinese_chars)[0]
    return text.translate(_TABLES[bool(lower), strip, bool(chinese_chars)])


def normalize_with_sources(text, lower, strip_accents=None, chinese_chars=True):
    """(normalize(text, ...), sources): normalised character i comes from text[sources[i]]; sources is None
    when character i comes from text[i]."""
    strip = lower if strip_accents is None else bool(strip_accents)
    if strip and not text.isascii() and not _REORDERED.isdisjoint(text):
        return _normalize_reordered(text, lower, chinese_chars)
    if not _NOT_ONE_TO_ONE.search(text):  # printable ASCII: one character for one
        return normalize(text, lower, strip_accents, chinese_chars), None
    table, sources, done = _TABLES[bool(lower), strip, bool(chinese_chars)], [], 0
    for match in _NOT_ONE_TO_ONE.finditer(text):
        k = match.start()
        sources.extend(range(done, k))
        sources.extend([k] * len(table[ord(text[k])] or ""))
        done = k + 1
    sources.extend(range(done, len(text)))
    return normalize(text, lower, strip_accents, chinese_chars), sources  # as normalize: ASCII keeps \t \n \r


def _normalize_reordered(text, lower, chinese_chars):
    """normalize_with_sources when stripping accents from text whose NFD reorders a kept mark, step by step as
    HF does it.

    HF decomposes the whole text, then canonical ordering sorts each run of marks by combining class; a
    character keeps the alignment of the position it lands on: the k-th character that replaces one (the
    first of each decomposition) comes from the k-th cleaned character, the others from the one before."""
    cleaned = [(c, k) for k, char in enumerate(text) for c in _clean_char(char, chinese_chars) or ""]
    decomposed = [(d, j > 0) for c, _ in cleaned for j, d in enumerate(unicodedata.normalize("NFD", c))]
    ordered, run = [], []
    for item in decomposed + [("", False)]:  # the empty sentinel is a starter: it ends the last run
        if item[0] and combining(item[0]):
            run.append(item)
        else:
            ordered += sorted(run, key=lambda marked: combining(marked[0])) + [item]
            run = []
    normalized, sources, replaced = [], [], -1
    for char, inserted in ordered[:-1]:
        replaced += not inserted
        if category(char) != "Mn":
            lowered = lowercase(char) if lower else char
            normalized.append(lowered)
            sources += [cleaned[replaced][1]] * len(lowered)
    return "".join(normalized), sources
