"""BERT's WordPiece tokenizer in pure Python, token for token the same as Hugging Face's BertTokenizer.

    tok = FullTokenizer("vocab.txt", do_lower_case=True)
    tokens, input_ids, segment_ids = tok.encode("How are you?", "Fine, thanks.")

A text goes through four steps (the same as HF's Rust-backed BertTokenizer):

1. Literal special tokens ([CLS], [SEP], [MASK], [PAD], [UNK]) are cut out of the raw text and kept whole.
   Matching is exact and case-sensitive, so "[mask]" is ordinary text even when lowercasing.
2. Normalisation: NUL, U+FFFD and control/format/unassigned characters are dropped, every whitespace
   character becomes a space, CJK ideographs get spaces around them; with do_lower_case, accents are
   stripped (NFD, then combining marks dropped) and the text is lowercased one character at a time.
3. Pre-tokenisation: split on whitespace, and every punctuation character becomes a word of its own.
4. WordPiece: each word is split greedily, longest vocabulary match first; pieces after the first
   carry the "##" prefix. A word with an unmatchable rest, or over 100 characters, becomes [UNK].

Speed comes from doing per-character work with str methods (translate, split, lower) and caching
word -> pieces, since real text repeats its words.
"""
import operator
import os
import re
import unicodedata

import numpy as np

UNK, CLS, SEP, PAD, MASK = "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"
REQUIRED_TOKENS = (UNK, CLS, SEP, PAD)
MAX_CHARS_PER_WORD = 100
_CACHE_LIMIT = 200_000
_GLUED_TO_PREVIOUS = (".", "?", "!", ",", "n't", "'s", "'m", "'ve", "'re")

# ASCII characters BERT treats as punctuation: every non-alphanumeric printable one.
_ASCII_PUNCT = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())
_ASCII_PUNCT_SPLIT = re.compile("([" + re.escape(_ASCII_PUNCT) + "])")
# ASCII control characters; \t \n \r count as whitespace, the rest (incl. \x0b \x0c) are dropped.
_ASCII_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
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


def _parse_overrides(table):
    overrides, category = {}, None
    for item in table.split():
        if item in ("Lo", "Po", "Mn"):
            category = item
            continue
        lo, _, hi = item.partition("-")
        for cp in range(int(lo, 16), int(hi or lo, 16) + 1):
            overrides[chr(cp)] = category
    return overrides


_OVERRIDES = _parse_overrides(_HF_CATEGORY_OVERRIDES)


def _category(char):
    """Unicode general category of `char` as HF's tokenizer sees it."""
    return _OVERRIDES.get(char) or unicodedata.category(char)


def _is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _clean_char(char):
    """What text cleaning turns one non-ASCII character into: None (dropped), a space, itself."""
    if char in "\t\n\r":
        return " "
    if char == "\ufffd" or _category(char) in ("Cc", "Cf", "Co", "Cs"):
        return None
    if char.isspace():
        return " "
    if _is_cjk(ord(char)):
        return " " + char + " "
    return char


def _is_punctuation(char):
    return char in _ASCII_PUNCT or _category(char)[0] == "P"


class _LazyTable(dict):
    """A str.translate table over all of Unicode, filled in for the characters a text actually uses."""

    def __init__(self, rule):
        super().__init__()
        self.rule = rule

    def __missing__(self, codepoint):
        value = self[codepoint] = self.rule(chr(codepoint))
        return value


_CLEAN_TABLE = _LazyTable(_clean_char)
_DROP_MARKS_TABLE = _LazyTable(lambda c: None if _category(c) == "Mn" else c)


def load_vocab(vocab_file):
    """Read a vocab.txt (one token per line) into a dict token -> id, in file order."""
    if not isinstance(vocab_file, (str, os.PathLike)):
        raise TypeError(f"vocab_file must be a path, got {type(vocab_file).__name__}")
    if not os.path.isfile(vocab_file):
        raise FileNotFoundError(f"vocab file not found: {vocab_file} (expected a vocab.txt, one token per line)")
    with open(vocab_file, encoding="utf-8") as f:
        return check_vocab({line.rstrip("\n"): i for i, line in enumerate(f)}, f"vocab file {vocab_file}")


def check_vocab(vocab, source):
    """vocab (token -> id), or a ValueError naming its source when it lacks a special token BERT needs."""
    missing = [t for t in REQUIRED_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"{source} lacks the special token(s) {', '.join(missing)}; "
                         "a BERT vocab needs [UNK], [CLS], [SEP] and [PAD]")
    return vocab


def lowercase(text):
    """Lowercase as HF's tokenizers do: character by character, so no context-dependent final sigma."""
    return text.replace("\u03a3", "\u03c3").lower()


def _check_str(text, name="text"):
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")


def _truncate_pair(n_a, n_b, budget):
    """Lengths kept by HF's longest-first truncation of a pair to `budget` tokens (the Rust rule:
    the shorter side keeps what it can, and when both must give, the second gets the odd token)."""
    if n_a + n_b <= budget:
        return n_a, n_b
    short, long_ = sorted((n_a, n_b))
    long_ = short if short > budget else max(short, budget - short)
    if short + long_ > budget:
        short, long_ = budget // 2, budget - budget // 2
    return (long_, short) if n_a > n_b else (short, long_)


class FullTokenizer:
    """WordPiece tokenizer reading a BERT vocab.txt; see the module docstring for what it does."""

    def __init__(self, vocab_file, do_lower_case=True):
        """vocab_file: a vocab.txt, or the vocabulary itself as a dict token -> id (as tokenizer.json holds it)."""
        if isinstance(vocab_file, dict):
            self.vocab = check_vocab(vocab_file, "the vocabulary")
        else:
            self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {i: t for t, i in self.vocab.items()}
        self.do_lower_case = bool(do_lower_case)
        self.specials = [t for t in (CLS, SEP, PAD, UNK, MASK) if t in self.vocab]
        self._special_split = re.compile("(" + "|".join(map(re.escape, self.specials)) + ")")
        self._longest_piece = max(len(t[2:] if t.startswith("##") else t) for t in self.vocab)
        self._cache = {}

    # --- text -> tokens -------------------------------------------------------------------------
    def tokenize(self, text):
        """Split `text` into WordPiece tokens (no [CLS]/[SEP] added); literal specials stay whole."""
        _check_str(text)
        tokens = []
        chunks = self._special_split.split(text) if "[" in text else [text]
        for i, chunk in enumerate(chunks):
            if i % 2:  # re.split puts the matched special tokens at the odd positions
                tokens.append(chunk)
            elif chunk:
                tokens.extend(self._tokenize_plain(chunk))
        return tokens

    def _tokenize_plain(self, text):
        cache, tokens = self._cache, []
        for word in self._normalize(text).split():
            pieces = cache.get(word)
            if pieces is None:
                if len(cache) > _CACHE_LIMIT:
                    cache.clear()
                pieces = cache[word] = self._word_to_pieces(word)
            tokens.extend(pieces)
        return tokens

    def _normalize(self, text):
        """Clean, space out CJK, and (when lowercasing) strip accents and lowercase."""
        if text.isascii():
            if _ASCII_CONTROL.search(text):
                text = _ASCII_CONTROL.sub("", text)
            return text.lower() if self.do_lower_case else text
        text = text.translate(_CLEAN_TABLE)
        if self.do_lower_case:
            text = unicodedata.normalize("NFD", text).translate(_DROP_MARKS_TABLE)
            text = lowercase(text)
        return text

    def _word_to_pieces(self, word):
        """Punctuation split then WordPiece, for one whitespace-free word."""
        if word.isascii():
            parts = _ASCII_PUNCT_SPLIT.split(word)
        else:
            parts = _split_on_punctuation(word)
        pieces = []
        for part in parts:
            if part:
                pieces.extend(self._wordpiece(part))
        return tuple(pieces)

    def _wordpiece(self, word):
        """Greedy longest-match-first split of one word into vocabulary pieces."""
        if len(word) > MAX_CHARS_PER_WORD:
            return [UNK]
        vocab, pieces, start = self.vocab, [], 0
        while start < len(word):
            for end in range(min(len(word), start + self._longest_piece), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
            else:
                return [UNK]
            pieces.append(piece)
            start = end
        return pieces

    # --- tokens <-> ids -------------------------------------------------------------------------
    def convert_tokens_to_ids(self, tokens):
        """Ids of `tokens`; a token outside the vocabulary maps to the id of [UNK] (as in HF)."""
        unk = self.vocab[UNK]
        return [self.vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        """Tokens of `ids`; raises ValueError for an id that is not an integer of the vocabulary."""
        tokens = []
        for i in ids:
            try:
                tokens.append(self.inv_vocab[operator.index(i)])  # index(): ints and NumPy ints, never 1.9
            except (KeyError, TypeError):
                raise ValueError(f"token id {i!r} is not an integer in the vocabulary (0..{len(self.vocab) - 1})"
                                 ) from None
        return tokens

    def decode(self, ids):
        """Text of `ids` as HF's decode gives it, after dropping [CLS], [SEP] and [PAD]: '##' pieces
        are joined, other tokens space-separated, except that a token starting with . ? ! , n't 's 'm
        've or 're is glued to the one before (HF's WordPiece decoder clean-up)."""
        tokens = [t for t in self.convert_ids_to_tokens(ids) if t not in (CLS, SEP, PAD)]
        return self.convert_tokens_to_string(tokens)

    @staticmethod
    def convert_tokens_to_string(tokens):
        """Text of `tokens` as HF's WordPiece decoder joins them: see decode (no token is dropped here)."""
        out = tokens[:1]
        for token in tokens[1:]:
            if token.startswith("##"):
                out.append(token[2:])
            else:
                out.append(token if token.startswith(_GLUED_TO_PREVIOUS) else " " + token)
        return "".join(out)

    # --- model inputs ---------------------------------------------------------------------------
    def encode(self, text_a, text_b=None, max_length=512):
        """[CLS] a [SEP] (b [SEP]) truncated longest-first to max_length, as HF's truncation=True.

        Returns (tokens, input_ids, segment_ids); segment 0 covers [CLS] a [SEP], 1 covers b [SEP].
        As in HF's single call, an empty text_b counts as no second text.
        """
        _check_str(text_a, "text_a")
        if text_b is not None:
            _check_str(text_b, "text_b")
        return self._build(self.tokenize(text_a), self.tokenize(text_b) if text_b else None, max_length)

    def _build(self, tokens_a, tokens_b, max_length):
        n_special = 2 if tokens_b is None else 3
        _check_max_length(max_length, n_special)
        if tokens_b is None:
            tokens_a = tokens_a[:max_length - 2]
            tokens, segments = [CLS, *tokens_a, SEP], [0] * (len(tokens_a) + 2)
        else:
            n_a, n_b = _truncate_pair(len(tokens_a), len(tokens_b), max_length - 3)
            tokens = [CLS, *tokens_a[:n_a], SEP, *tokens_b[:n_b], SEP]
            segments = [0] * (n_a + 2) + [1] * (n_b + 1)
        return tokens, self.convert_tokens_to_ids(tokens), segments

    def batch_encode(self, texts_a, texts_b=None, max_length=512):
        """Encode a batch into int64 arrays input_ids, segment_ids, attention_mask, each (B, L),
        padded with [PAD] (segment 0, mask 0) to the longest row, and untruncated_length (B,): each row's
        token count before truncation, [CLS] and [SEP] included (> max_length means the row was cut).
        Matches HF's tok(texts_a, texts_b, truncation=True, max_length=max_length, padding=True); in a
        batch an empty second text is a real (empty) second segment, as in HF."""
        texts_a = _check_text_list(texts_a, "texts_a")
        if texts_b is not None:
            texts_b = _check_text_list(texts_b, "texts_b")
        return self.batch_encode_tokens([self.tokenize(text) for text in texts_a],
                                        None if texts_b is None else [self.tokenize(text) for text in texts_b],
                                        max_length)

    def batch_encode_tokens(self, tokens_a, tokens_b=None, max_length=512):
        """batch_encode for texts already split by tokenize: lists of tokens in, the same arrays out. Lets a
        caller tokenize once, sort or count by length, then batch."""
        if tokens_b is not None and len(tokens_b) != len(tokens_a):
            raise ValueError(f"texts_b has {len(tokens_b)} texts but texts_a has {len(tokens_a)}; "
                             "pass one second text per first text")
        _check_max_length(max_length, 2 if tokens_b is None else 3)
        rows = [self._build(a, None if tokens_b is None else tokens_b[i], max_length) for i, a in enumerate(tokens_a)]
        width = max((len(ids) for _, ids, _ in rows), default=0)
        batch = {name: np.zeros((len(rows), width), dtype=np.int64)
                 for name in ("input_ids", "segment_ids", "attention_mask")}
        batch["input_ids"].fill(self.vocab[PAD])
        for r, (_, ids, segments) in enumerate(rows):
            batch["input_ids"][r, :len(ids)] = ids
            batch["segment_ids"][r, :len(ids)] = segments
            batch["attention_mask"][r, :len(ids)] = 1
        batch["untruncated_length"] = np.array(
            [len(a) + 2 + (0 if tokens_b is None else len(tokens_b[i]) + 1) for i, a in enumerate(tokens_a)],
            dtype=np.int64)
        return batch


def _split_on_punctuation(word):
    """Split a word so that every punctuation character stands alone."""
    parts, current = [], []
    for char in word:
        if _is_punctuation(char):
            parts.append("".join(current))
            parts.append(char)
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _check_max_length(max_length, n_special):
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
        raise TypeError(f"max_length must be an int, got {type(max_length).__name__}")
    if max_length < n_special:
        raise ValueError(f"max_length={max_length} leaves no room: the special tokens alone need "
                         f"{n_special}; use max_length >= {n_special}")


def _check_text_list(texts, name):
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a list of str, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        _check_str(text, f"{name}[{i}]")
    return texts
