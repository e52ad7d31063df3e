"""Generate tests/golden/ner_metrics.json: what seqeval (default mode, as HF's token-classification examples use
it) gives for seeded random tag rows in IOB2, IOB1, IOBES, mixed schemes, malformed and odd tags, and for a
few hand-made edge cases: get_entities of each row, classification_report (output_dict=True, and the text at 2
and 4 digits) and accuracy_score.

Needs seqeval (requirements-golden.txt); never needed to run the tests. Run from tests/:
    cd tests && python make_golden_ner_metrics.py
"""
import json
import os
import random
import warnings
from importlib.metadata import version

from seqeval.metrics import accuracy_score, classification_report
from seqeval.metrics.sequence_labeling import get_entities

from conftest import GOLDEN_DIR

PATH = os.path.join(GOLDEN_DIR, "ner_metrics.json")
TYPES = ["PER", "LOC", "ORG", "MISC"]
MANY_TYPES = ["T%02d" % i for i in range(13)]  # more types than numpy's 8-way unrolled sum


def random_spans(rng, length, types):
    """Non-overlapping [(type, start, end)], end exclusive, some of them adjacent."""
    spans, i = [], 0
    while i < length:
        if rng.random() < 0.4:
            n = rng.randint(1, min(4, length - i))
            spans.append((rng.choice(types), i, i + n))
            i += n
        else:
            i += rng.randint(1, 2)
    return spans


def perturbed(rng, spans, length, types):
    """A tagger's guess: most spans kept, some retyped, moved by one, dropped; a few spurious ones added."""
    out = []
    for type_, start, end in spans:
        draw = rng.random()
        if draw < 0.1:
            type_ = rng.choice(types)
        elif draw < 0.2:
            start = min(end - 1, max(0, start + rng.choice((-1, 1))))
        elif draw < 0.3:
            end = min(length, max(start + 1, end + rng.choice((-1, 1))))
        elif draw < 0.4:
            continue
        out.append((type_, start, end))
    for type_, start, end in random_spans(rng, length, types):
        if rng.random() < 0.1:
            out.append((type_, start, end))
    return sorted(out, key=lambda span: span[1])  # overlaps: the later span overwrites the earlier one's tags


def tag_row(spans, length, scheme):
    """Tags of the spans in IOB2, IOB1 (I- opens an entity; B- only right after one of the same type) or IOBES."""
    tags, last = ["O"] * length, {}
    for type_, start, end in spans:
        for i in range(start, end):
            tags[i] = "I-" + type_
        if scheme == "IOBES" and end - start == 1:
            tags[start] = "S-" + type_
        elif scheme == "IOBES":
            tags[start], tags[end - 1] = "B-" + type_, "E-" + type_
        elif scheme == "IOB2" or last.get(start) == type_:
            tags[start] = "B-" + type_
        last[end] = type_
    return tags


def scheme_case(seed, true_scheme, pred_scheme, types=TYPES, rows=24):
    rng = random.Random(seed)
    true, pred = [], []
    for _ in range(rows):
        length = rng.choice([0, 1, 2, 3, 5, 8, 12, 15])
        spans = random_spans(rng, length, types)
        true.append(tag_row(spans, length, true_scheme))
        pred.append(tag_row(perturbed(rng, spans, length, types), length, pred_scheme))
    return f"{true_scheme}-vs-{pred_scheme}-seed{seed}", true, pred


def random_tag_case(seed, vocabulary, rows=16):
    """Rows of tags drawn at random: entities of any shape, broken ones included."""
    rng = random.Random(seed)
    def row(length):
        return [rng.choice(vocabulary) for _ in range(length)]
    lengths = [rng.randint(0, 12) for _ in range(rows)]
    return [row(n) for n in lengths], [row(n) for n in lengths]


MALFORMED = ["O"] * 6 + [p + "-" + t for p in "BIES" for t in TYPES[:3]] + ["B", "I", "E", "S"]
ODD = ["O"] * 4 + ["B-PER", "I-PER", "I-LOC", "E-LOC", "S-ORG", ".-PER", "X-LOC", "O-PER", "B-", "X", "b-per",
                   "PER", "B-I-PER", "BX-", ".", "I", "B"]

HAND = {
    "conll": ([["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "O"]],
              [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "O", "O"]]),
    "seqeval-docstring": ([["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]],
                          [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]),
    "all-o": ([["O", "O", "O"], ["O"]], [["O", "O", "O"], ["O"]]),
    "all-o-truth": ([["O", "O", "O"], ["O"]], [["B-PER", "O", "O"], ["S-LOC"]]),
    "all-o-prediction": ([["B-PER", "I-PER", "O"], ["B-LOC"]], [["O", "O", "O"], ["O"]]),
    "empty-row": ([[]], [[]]),
    "empty-rows-among-others": ([[], ["B-PER"], [], ["O", "B-LOC", "I-LOC"], []],
                                [[], ["B-PER"], [], ["O", "B-LOC", "O"], []]),
    "type-only-predicted": ([["B-PER", "O", "O"], ["B-LOC"]], [["B-PER", "O", "B-MISC"], ["B-LOC"]]),
    "type-only-true": ([["B-PER", "O", "B-MISC"], ["B-LOC"]], [["B-PER", "O", "O"], ["B-LOC"]]),
    "type-change": ([["B-PER", "I-LOC", "I-LOC", "O", "I-PER", "I-ORG", "B-ORG"]],
                    [["B-PER", "I-PER", "I-LOC", "O", "I-PER", "I-PER", "B-ORG"]]),
    "e-without-b": ([["O", "E-PER", "I-PER", "E-PER", "E-PER", "S-LOC", "E-LOC", "I-LOC"]],
                    [["O", "B-PER", "I-PER", "E-PER", "S-PER", "S-LOC", "B-LOC", "E-LOC"]]),
    "bare-tags": ([["B", "I", "O", "I", "I", "B", "B", "E", "S", "I-PER"]],
                  [["B", "I", "O", "B", "I", "B", "S", "O", "S", "B-PER"]]),
    "row-ends-inside-entity": ([["B-PER", "I-PER"], ["I-PER", "O"]], [["B-PER", "I-PER"], ["B-PER", "O"]]),
    "unknown-prefix-first": ([["X", "B-PER"], ["X", "B-PER"]], [["X", "B-PER"], ["B-PER", "O"]]),
    "odd-tags-across-rows": ([["B-LOC"], ["X", "B-PER"], [".-PER", "I-PER"]],
                             [["B-LOC"], ["X", "B-PER"], ["B-PER", "I-PER"]]),
}


def cases():
    out = [(name, true, pred) for name, (true, pred) in HAND.items()]
    for seed, (true_scheme, pred_scheme) in enumerate([("IOB2", "IOB2"), ("IOB2", "IOB2"), ("IOB1", "IOB1"),
                                                       ("IOB1", "IOB1"), ("IOBES", "IOBES"), ("IOBES", "IOBES"),
                                                       ("IOB2", "IOB1"), ("IOB1", "IOBES"), ("IOBES", "IOB2")]):
        out.append(scheme_case(seed, true_scheme, pred_scheme))
    out.append(scheme_case(100, "IOB2", "IOB2", MANY_TYPES, rows=40))
    out.append(scheme_case(101, "IOBES", "IOB1", MANY_TYPES, rows=40))
    out += [(f"malformed-seed{seed}", *random_tag_case(seed, MALFORMED)) for seed in (200, 201, 202)]
    out += [(f"odd-tags-seed{seed}", *random_tag_case(seed, ODD)) for seed in (300, 301, 302)]
    return out


def plain(report):
    """classification_report's dict with NumPy numbers as Python ints and floats."""
    return {name: {field: int(v) if field == "support" else float(v) for field, v in row.items()}
            for name, row in report.items()}


def golden(name, true, pred):
    report = plain(classification_report(true, pred, output_dict=True))
    has_types = any(key not in ("micro avg", "macro avg", "weighted avg") for key in report)
    try:
        accuracy = accuracy_score(true, pred)
    except ZeroDivisionError:  # no token at all
        accuracy = None
    return {"name": name, "true": true, "pred": pred,
            "true_entities": [get_entities(row) for row in true], "pred_entities": [get_entities(row) for row in pred],
            "report": report, "accuracy": accuracy,  # the text report fails in seqeval when no type exists
            "text": {str(d): classification_report(true, pred, digits=d) for d in (2, 4)} if has_types else None}


def main():
    warnings.simplefilter("ignore")  # seqeval warns on odd tags, zero divisions and the mean of no types
    data = {"seqeval": version("seqeval"),
            "cases": [golden(*case) for case in cases()]}
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    with open(PATH + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))  # NaN: the macro average when no entity exists
    os.replace(PATH + ".tmp", PATH)
    print(f"wrote {PATH}: {len(data['cases'])} cases, {os.path.getsize(PATH)} bytes")


if __name__ == "__main__":
    main()
