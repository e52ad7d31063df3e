"""BERT's WordPiece tokenizer in pure Python, token for token the same as Hugging Face's BertTokenizer.

    tok = FullTokenizer("vocab.txt", do_lower_case=True)
    tokens, input_ids, segment_ids = tok.encode("How are you?", "Fine, thanks.")
    tokens, offsets = tok.tokenize_with_offsets("Héllo!")  # ['hello', '!'], [(0, 5), (5, 6)]

A text goes through four steps (the same as HF's Rust-backed BertTokenizer):

1. Literal special tokens ([CLS], [SEP], [MASK], [PAD], [UNK]) are cut out of the raw text and kept whole.
   Matching is exact and case-sensitive, so "[mask]" is ordinary text even when lowercasing.
2. Normalisation (bert_normalizer.py): NUL, U+FFFD and control/format/unassigned characters are dropped,
   every whitespace character becomes a space, CJK ideographs get spaces around them (tokenize_chinese_chars);
   with do_lower_case, accents are stripped (NFD, then combining marks dropped; strip_accents True or False
   says otherwise, as in HF) and the text is lowercased one character at a time. Each normalised character
   remembers the original one it comes from: that gives the offsets.
3. Pre-tokenisation: split on whitespace, and every punctuation character becomes a word of its own.
4. WordPiece: each word is split greedily, longest vocabulary match first; pieces after the first
   carry the "##" prefix. A word with an unmatchable rest, or over 100 characters, becomes [UNK].

Speed comes from doing per-character work with str methods (translate, split, lower) and caching
word -> pieces, since real text repeats its words; offsets are mapped back to the text with NumPy.
"""
import operator
import os
import re
from itertools import chain

import numpy as np

from bert_normalizer import ASCII_PUNCT, is_punctuation, normalize, normalize_with_sources

UNK, CLS, SEP, PAD, MASK = "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"
REQUIRED_TOKENS = (UNK, CLS, SEP, PAD)
MAX_CHARS_PER_WORD = 100
_CACHE_LIMIT = 200_000
# the clean-up of HF's WordPiece decoder, applied in this order to each token (with its leading space)
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))

_ASCII_PUNCT_SPLIT = re.compile("([" + re.escape(ASCII_PUNCT) + "])")


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

    def __init__(self, vocab_file, do_lower_case=True, strip_accents=None, tokenize_chinese_chars=True):
        """vocab_file: a vocab.txt, or the vocabulary itself as a dict token -> id (as tokenizer.json holds it).
        do_lower_case, strip_accents (None: as do_lower_case) and tokenize_chinese_chars as HF's BertTokenizer."""
        if isinstance(vocab_file, dict):
            self.vocab = check_vocab(vocab_file, "the vocabulary")
        else:
            self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {i: t for t, i in self.vocab.items()}
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = None if strip_accents is None else bool(strip_accents)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self._normalizing = (self.do_lower_case, self.strip_accents, self.tokenize_chinese_chars)
        self.specials = [t for t in (CLS, SEP, PAD, UNK, MASK) if t in self.vocab]
        self._special_split = re.compile("(" + "|".join(map(re.escape, self.specials)) + ")")
        self._longest_piece = max(len(t[2:] if t.startswith("##") else t) for t in self.vocab)
        self._pieces = _WordCache(self._word_to_pieces)
        self._pieces_and_spans = _WordCache(self._word_to_pieces_and_spans)

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
        return list(chain.from_iterable(map(self._pieces.__getitem__, normalize(text, *self._normalizing).split())))

    def tokenize_with_offsets(self, text):
        """(tokenize(text), offsets): each token's (start, end) span in `text` (str indices), as HF's
        return_offsets_mapping gives it: a piece spans the characters it comes from (the whole of an accented
        letter or a Hangul syllable, dropped characters left out), [UNK] spans its whole word, a literal special
        token its own text."""
        _check_str(text)
        tokens, starts, ends, shift = [], [], [], 0
        chunks = self._special_split.split(text) if "[" in text else [text]
        for i, chunk in enumerate(chunks):
            if i % 2:
                tokens.append(chunk)
                starts.append([shift])
                ends.append([shift + len(chunk)])
            elif chunk:
                chunk_tokens, chunk_starts, chunk_ends = self._plain_with_offsets(chunk)
                tokens += chunk_tokens
                starts.append(chunk_starts + shift)
                ends.append(chunk_ends + shift)
            shift += len(chunk)
        if not tokens:
            return [], []
        return tokens, list(zip(np.concatenate(starts).tolist(), np.concatenate(ends).tolist()))

    def _plain_with_offsets(self, text):
        """Tokens of a text without literal special tokens, and the arrays of their starts and ends in it."""
        normalized, sources = normalize_with_sources(text, *self._normalizing)
        codes = np.frombuffer(normalized.encode("utf-32-le"), dtype=np.uint32)
        space = codes <= 32  # normalize() leaves no whitespace but \t \n \r and space, nothing else <= 32
        word_starts = np.flatnonzero(~space & np.concatenate(([True], space[:-1])))
        entries = list(map(self._pieces_and_spans.__getitem__, normalized.split()))  # (pieces, spans) per word
        pieces = list(map(operator.itemgetter(0), entries))
        spans = np.fromiter(chain.from_iterable(map(operator.itemgetter(1), entries)), dtype=np.int64).reshape(-1, 2)
        spans += np.repeat(word_starts, list(map(len, pieces)))[:, None]  # in the word -> in `normalized`
        starts, ends = spans[:, 0], spans[:, 1]
        if sources is not None:  # normalised character i comes from text[sources[i]]
            sources = np.asarray(sources, dtype=np.int64)
            starts, ends = sources[starts], sources[ends - 1] + 1
        return list(chain.from_iterable(pieces)), starts, ends

    def _word_to_pieces_and_spans(self, word):
        """The pieces of `word` and their spans in it, flat (start, end, start, end, ...); an [UNK] spans its
        whole punctuation-split part."""
        pieces = self._word_to_pieces(word)
        spans, remaining, start = [], iter(pieces), 0
        for part in _split_on_punctuation(word):
            part_end = start + len(part)
            while start < part_end:
                piece = next(remaining)
                end = part_end if piece == UNK else start + len(piece) - 2 * piece.startswith("##")
                spans += (start, end)
                start = end
        return pieces, tuple(spans)

    def _word_to_pieces(self, word):
        """Punctuation split then WordPiece, for one whitespace-free word."""
        pieces = []
        for part in _split_on_punctuation(word):
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
        are joined, other tokens space-separated, then HF's WordPiece decoder clean-up (_CLEANUP: " ." -> ".",
        " n't" -> "n't", ...) within each token and its leading space."""
        tokens = [t for t in self.convert_ids_to_tokens(ids) if t not in (CLS, SEP, PAD)]
        return self.convert_tokens_to_string(tokens)

    @staticmethod
    def convert_tokens_to_string(tokens):
        """Text of `tokens` as HF's WordPiece decoder joins them: see decode (no token is dropped here). A
        token may hold several words (token classification joins a group's words into one)."""
        out = []
        for i, token in enumerate(tokens):
            if i:
                token = token[2:] if token.startswith("##") else " " + token
            for dirty, clean in _CLEANUP:
                token = token.replace(dirty, clean)
            out.append(token)
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

    def batch_encode(self, texts_a, texts_b=None, max_length=512, return_offsets=False):
        """Encode a batch into int64 arrays input_ids, segment_ids, attention_mask, each (B, L),
        padded with [PAD] (segment 0, mask 0) to the longest row, and untruncated_length (B,): each row's
        token count before truncation, [CLS] and [SEP] included (> max_length means the row was cut).
        With return_offsets=True also offsets (B, L, 2): each token's (start, end) in its own text (as
        tokenize_with_offsets; a second text's tokens index into that text), (0, 0) at [CLS], [SEP] and [PAD].
        Matches HF's tok(texts_a, texts_b, truncation=True, max_length=max_length, padding=True,
        return_offsets_mapping=return_offsets); in a batch an empty second text is a real (empty) second
        segment, as in HF."""
        texts_a = _check_text_list(texts_a, "texts_a")
        if texts_b is not None:
            texts_b = _check_text_list(texts_b, "texts_b")
        tokens_a, offsets_a = self._tokenize_all(texts_a, return_offsets)
        tokens_b, offsets_b = self._tokenize_all(texts_b, return_offsets)
        return self.batch_encode_tokens(tokens_a, tokens_b, max_length, offsets_a, offsets_b)

    def _tokenize_all(self, texts, with_offsets):
        """(tokens of each text, their offsets or None); (None, None) for no texts."""
        if texts is None or not with_offsets:
            return (None if texts is None else [self.tokenize(text) for text in texts]), None
        split = [self.tokenize_with_offsets(text) for text in texts]
        return [tokens for tokens, _ in split], [offsets for _, offsets in split]

    def batch_encode_tokens(self, tokens_a, tokens_b=None, max_length=512, offsets_a=None, offsets_b=None):
        """batch_encode for texts already split by tokenize: lists of tokens in, the same arrays out. Lets a
        caller tokenize once, sort or count by length, then batch. With offsets_a (and offsets_b for pairs),
        each text's spans as tokenize_with_offsets gives them, the dict also has offsets (B, L, 2). A row of
        tokens_b may be None: that row has no second text ([CLS] a [SEP], as HF's single call for text_pair "")."""
        if tokens_b is not None and len(tokens_b) != len(tokens_a):
            raise ValueError(f"texts_b has {len(tokens_b)} texts but texts_a has {len(tokens_a)}; "
                             "pass one second text per first text")
        if (offsets_b is not None) != (offsets_a is not None and tokens_b is not None):
            raise ValueError("offsets_b goes with offsets_a and tokens_b: pass offsets for every text or for none")
        _check_offsets(tokens_a, offsets_a, "offsets_a")
        _check_offsets(tokens_b, offsets_b, "offsets_b")
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
        batch["untruncated_length"] = untruncated_lengths(tokens_a, tokens_b)
        if offsets_a is not None:
            batch["offsets"] = _offsets_array([segments for _, _, segments in rows], width, offsets_a, offsets_b)
        return batch


def untruncated_lengths(tokens_a, tokens_b=None):
    """(N,) int64: each row's token count before truncation, [CLS] a [SEP] (b [SEP]); a None row of tokens_b
    is no second text."""
    return np.array([len(a) + 2 + (0 if tokens_b is None or tokens_b[i] is None else len(tokens_b[i]) + 1)
                     for i, a in enumerate(tokens_a)], dtype=np.int64)


def _offsets_array(segments, width, offsets_a, offsets_b):
    """(B, width, 2) spans of the kept tokens of each row [CLS] a [SEP] (b [SEP]); (0, 0) elsewhere."""
    out = np.zeros((len(segments), width, 2), dtype=np.int64)
    for r, row in enumerate(segments):
        n_a = row.count(0) - 2
        out[r, 1:1 + n_a] = np.reshape(offsets_a[r][:n_a], (n_a, 2))
        if offsets_b is not None and offsets_b[r] is not None:
            n_b = len(row) - n_a - 3
            out[r, n_a + 2:n_a + 2 + n_b] = np.reshape(offsets_b[r][:n_b], (n_b, 2))
    return out


def _split_on_punctuation(word):
    """Split a whitespace-free word so that every punctuation character stands alone (empty parts kept)."""
    if word.isascii():
        return _ASCII_PUNCT_SPLIT.split(word)
    parts, current = [], []
    for char in word:
        if is_punctuation(char):
            parts.append("".join(current))
            parts.append(char)
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


class _WordCache(dict):
    """word -> compute(word), computed on first use; emptied when it holds _CACHE_LIMIT words."""

    def __init__(self, compute):
        super().__init__()
        self.compute = compute

    def __missing__(self, word):
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        value = self[word] = self.compute(word)
        return value


def _check_max_length(max_length, n_special):
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
        raise TypeError(f"max_length must be an int, got {type(max_length).__name__}")
    if max_length < n_special:
        raise ValueError(f"max_length={max_length} leaves no room: the special tokens alone need "
                         f"{n_special}; use max_length >= {n_special}")


def _check_offsets(tokens, offsets, name):
    if offsets is None:
        return
    if len(offsets) != len(tokens):
        raise ValueError(f"{name} has {len(offsets)} rows for {len(tokens)} texts; pass one per text")
    for i, (text_tokens, spans) in enumerate(zip(tokens, offsets)):
        if (spans is None) != (text_tokens is None) or spans is not None and len(spans) != len(text_tokens):
            raise ValueError(f"{name}[{i}] has {len(spans)} spans for {len(text_tokens)} tokens; pass the offsets "
                             "tokenize_with_offsets gave with these tokens")


def _check_text_list(texts, name):
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a list of str, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        _check_str(text, f"{name}[{i}]")
    return texts
