"""Entity-level scores for named-entity recognition, the numbers seqeval gives in its default mode.

The token-classification examples of HF transformers (run_ner.py and the evaluate "seqeval" metric) report
seqeval's ``classification_report``, ``precision_score``, ``recall_score``, ``f1_score`` and ``accuracy_score``
with no ``mode`` or ``scheme``: the conlleval-compatible reading of the tags. This module computes the same
numbers with the standard library alone, so it can be copied into a project that has no NumPy:

    >>> truth = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    >>> guess = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    >>> entities(truth[0])
    [('PER', 0, 2), ('LOC', 3, 4)]
    >>> print(format_report(entity_scores(truth, guess), digits=2))  # doctest: +NORMALIZE_WHITESPACE
                  precision    recall  f1-score   support
    <BLANKLINE>
             LOC       0.00      0.00      0.00         1
             ORG       0.50      1.00      0.67         1
             PER       1.00      1.00      1.00         1
    <BLANKLINE>
       micro avg       0.67      0.67      0.67         3
       macro avg       0.50      0.67      0.56         3
    weighted avg       0.50      0.67      0.56         3
    <BLANKLINE>

How a tag is read (seqeval's default mode). Its first character is the prefix and what follows the first "-"
after it is the type (with no "-", all the rest: "PER" is prefix P, type ER); an empty type reads as "_", so
bare "B" and "I" tags make entities of type "_". An entity ends before a tag
when the previous prefix is E or S, when a B or I is followed by B, S or O, or when the type changes after
any prefix but O and "."; one starts at a B or S, at an I or E after E, S or O (so IOB1's I- after O and an
E- after O each start an entity), and at a type change on any prefix but O and ".". An entity carries the type
of its last tag and runs from the last start, so a tag with an unknown prefix (not B, I, E, S, O) or "." can
produce odd spans; they are reproduced, not repaired. ``entity_scores`` joins the rows with an "O" between
them, as seqeval does, so those odd spans can even cross rows; with B/I/E/S/O tags entities never do.
"""
import warnings

AVERAGES = ("micro avg", "macro avg", "weighted avg")
FIELDS = ("precision", "recall", "f1-score", "support")


class UndefinedMetricWarning(UserWarning):
    """A precision or recall had nothing to divide by and was set to 0.0 (seqeval's zero_division="warn")."""


def _prefix_and_type(tag):
    """("B", "PER") from "B-PER"; ("I", "_") from "I"; the type is what follows the first "-" after the prefix."""
    head, dash, tail = tag[1:].partition("-")
    return tag[0], (tail if dash else head) or "_"


def _ends(prev, prev_type, prefix, type_):
    """Whether an entity ends between a tag read as (prev, prev_type) and the next one, (prefix, type_)."""
    return (prev in "ES" or (prev in "BI" and prefix in "BSO")
            or (prev not in "O." and prev_type != type_))


def _starts(prev, prev_type, prefix, type_):
    """Whether an entity starts at the tag (prefix, type_) that follows (prev, prev_type)."""
    return (prefix in "BS" or (prefix in "IE" and prev in "ESO")
            or (prefix not in "O." and prev_type != type_))


def _spans(tags):
    """Yield (type, start, end), end exclusive, scanning tags and then one closing "O"."""
    prev, prev_type, start = "O", "", 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, type_ = _prefix_and_type(tag)
        if _ends(prev, prev_type, prefix, type_):
            yield prev_type, start, i
        if _starts(prev, prev_type, prefix, type_):
            start = i
        prev, prev_type = prefix, type_


def _check_tags(tags, where):
    if isinstance(tags, str):
        raise ValueError(f"{where} is a string; pass a list of tags such as ['B-PER', 'I-PER', 'O']")
    for position, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"{where}, position {position}: tag {tag!r} is not a non-empty string")


def entities(tags):
    """The entities of one sentence's tags, as [(type, start, end)] in order of their ends, end exclusive.

    seqeval's get_entities gives the same list with an inclusive end (end - 1 here).
    """
    _check_tags(tags, "tags")
    return list(_spans(tags))


def _check_rows(true_rows, pred_rows):
    """ValueError unless both are the same non-zero number of tag lists, row for row of the same length."""
    if isinstance(true_rows, str) or isinstance(pred_rows, str):
        raise ValueError("pass lists of sentences, each a list of tags, not a string")
    true_rows, pred_rows = list(true_rows), list(pred_rows)
    if len(true_rows) != len(pred_rows):
        raise ValueError(f"{len(true_rows)} true rows but {len(pred_rows)} predicted rows: "
                         "pass one predicted tag list per sentence")
    if not true_rows:
        raise ValueError("no rows to score: pass at least one sentence's tags")
    for i, (truth, pred) in enumerate(zip(true_rows, pred_rows)):
        _check_tags(truth, f"true row {i}")
        _check_tags(pred, f"predicted row {i}")
        if len(truth) != len(pred):
            raise ValueError(f"row {i} has {len(truth)} true tags but {len(pred)} predicted tags: "
                             "pass one predicted tag per token")
    return true_rows, pred_rows


def _entity_sets(rows):
    """{type: {(start, end)}} over all rows, joined with an "O" after each row as seqeval joins them."""
    found = {}
    for type_, start, end in _spans([tag for row in rows for tag in (*row, "O")]):
        found.setdefault(type_, set()).add((start, end))
    return found


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else 0.0


def _scores(correct, predicted, true):
    precision, recall = _ratio(correct, predicted), _ratio(correct, true)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1-score": f1, "support": true}


def _mean(values, weights=None):
    """NaN for no values (seqeval's macro average when no entity exists at all). NumPy, which seqeval averages
    with, adds in another order (pairwise), so an average can differ from seqeval's in its last bit."""
    if weights is None:
        return sum(values) / len(values) if values else float("nan")
    return sum(v * w for v, w in zip(values, weights)) / sum(weights)


def _averages(per_type, counts):
    correct, predicted, true = map(sum, zip(*counts.values())) if counts else (0, 0, 0)
    rows = list(per_type.values())
    supports = [row["support"] for row in rows]
    macro = {field: _mean([row[field] for row in rows]) for field in FIELDS[:3]}
    weighted = {field: _mean([row[field] for row in rows], supports) if true else 0.0 for field in FIELDS[:3]}
    return {"micro avg": _scores(correct, predicted, true), "macro avg": {**macro, "support": true},
            "weighted avg": {**weighted, "support": true}}


def entity_scores(true_rows, pred_rows):
    """Per-type and averaged entity scores, as seqeval.metrics.classification_report(output_dict=True).

    true_rows, pred_rows: one list of tags per sentence, the same lengths row for row. Returns {name: {"precision",
    "recall", "f1-score", "support"}} for each entity type found in either (sorted), then "micro avg", "macro avg"
    and "weighted avg". An entity is right when its type, start and end all match. Support counts true
    entities; a precision or recall with nothing to divide by is 0.0 (with an UndefinedMetricWarning), and
    when no row has any entity the macro average is NaN, as seqeval's is.
    """
    true_rows, pred_rows = _check_rows(true_rows, pred_rows)
    truth, pred = _entity_sets(true_rows), _entity_sets(pred_rows)
    counts = {}
    for type_ in sorted(truth.keys() | pred.keys()):
        true_spans, pred_spans = truth.get(type_, set()), pred.get(type_, set())
        counts[type_] = (len(true_spans & pred_spans), len(pred_spans), len(true_spans))
    undefined = [type_ for type_, (_, predicted, true) in counts.items() if not predicted or not true]
    if undefined:
        warnings.warn(f"precision or recall of {', '.join(undefined)} is ill-defined (no predicted or no true "
                      "entity) and set to 0.0, as seqeval does", UndefinedMetricWarning, stacklevel=2)
    per_type = {type_: _scores(*count) for type_, count in counts.items()}
    return {**per_type, **_averages(per_type, counts)}


def precision_score(true_rows, pred_rows):
    """Micro-averaged entity precision, as seqeval.metrics.precision_score."""
    return entity_scores(true_rows, pred_rows)["micro avg"]["precision"]


def recall_score(true_rows, pred_rows):
    """Micro-averaged entity recall, as seqeval.metrics.recall_score."""
    return entity_scores(true_rows, pred_rows)["micro avg"]["recall"]


def f1_score(true_rows, pred_rows):
    """Micro-averaged entity F1, as seqeval.metrics.f1_score."""
    return entity_scores(true_rows, pred_rows)["micro avg"]["f1-score"]


def token_accuracy(true_rows, pred_rows):
    """Share of tokens whose predicted tag equals the true tag, as seqeval.metrics.accuracy_score."""
    true_rows, pred_rows = _check_rows(true_rows, pred_rows)
    total = sum(map(len, true_rows))
    if not total:
        raise ValueError("no tokens to score: every row is empty")
    return sum(t == p for truth, pred in zip(true_rows, pred_rows) for t, p in zip(truth, pred)) / total


def format_report(scores, digits=4):
    """The text table of seqeval's classification_report for entity_scores' result, with `digits` decimals."""
    names = [name for name in scores if name not in AVERAGES]
    width = max([len(name) for name in names] + [len("weighted avg"), digits])
    header = f"{'':>{width}s} " + "".join(f" {field:>9}" for field in FIELDS)

    def line(name):
        row = scores[name]
        numbers = "".join(f" {row[field]:>9.{digits}f}" for field in FIELDS[:3])
        return f"{name:>{width}s} {numbers} {row['support']:>9}"
    return "\n".join([header, "", *map(line, names), "", *map(line, AVERAGES), ""])
