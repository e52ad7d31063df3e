"""ner_metrics against seqeval's default mode (tests/golden/ner_metrics.json, made by make_golden_ner_metrics.py),
plus hand-worked examples and the input errors."""
import doctest
import json
import math
import os
import warnings

import pytest

import ner_metrics
from conftest import GOLDEN_DIR
from ner_metrics import (UndefinedMetricWarning, entities, entity_scores, f1_score, format_report, precision_score,
                         recall_score, token_accuracy)

with open(os.path.join(GOLDEN_DIR, "ner_metrics.json"), encoding="utf-8") as f:
    GOLDEN = json.load(f)
CASES = {case["name"]: case for case in GOLDEN["cases"]}


def quiet_scores(true, pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return entity_scores(true, pred)


def assert_same_scores(ours, expected):
    """Same rows in the same order; supports exact ints, the rest floats within 1e-12 (NaN only where NaN)."""
    assert list(ours) == list(expected)
    for name, row in expected.items():
        assert list(ours[name]) == ["precision", "recall", "f1-score", "support"], name
        assert type(ours[name]["support"]) is int and ours[name]["support"] == row["support"], name
        for field in ("precision", "recall", "f1-score"):
            value = ours[name][field]
            assert type(value) is float, (name, field)
            assert (math.isnan(value) and math.isnan(row[field])) or abs(value - row[field]) <= 1e-12, (name, field)


def test_golden_covers_the_cases():
    assert GOLDEN["seqeval"] == "1.2.2" and len(CASES) == len(GOLDEN["cases"]) == 32
    odd = CASES["odd-tags-across-rows"]["report"]
    assert odd["_"]["support"] == 1 and odd["LOC"]["support"] == 1  # the golden pins seqeval's odd spans


@pytest.mark.parametrize("name", CASES)
def test_entities_match_seqeval_get_entities(name):
    case = CASES[name]
    for rows, expected in ((case["true"], case["true_entities"]), (case["pred"], case["pred_entities"])):
        for row, spans in zip(rows, expected):
            assert entities(row) == [(type_, start, last + 1) for type_, start, last in spans], row


@pytest.mark.parametrize("name", CASES)
def test_scores_match_seqeval_classification_report(name):
    case = CASES[name]
    scores = quiet_scores(case["true"], case["pred"])
    assert_same_scores(scores, case["report"])
    micro = scores["micro avg"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        assert precision_score(case["true"], case["pred"]) == micro["precision"]
        assert recall_score(case["true"], case["pred"]) == micro["recall"]
        assert f1_score(case["true"], case["pred"]) == micro["f1-score"]


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case["text"]])
def test_text_report_matches_seqeval(name):
    case = CASES[name]
    scores = quiet_scores(case["true"], case["pred"])
    for digits, text in case["text"].items():
        assert format_report(scores, digits=int(digits)) == text


@pytest.mark.parametrize("name", CASES)
def test_token_accuracy_matches_seqeval(name):
    case = CASES[name]
    if case["accuracy"] is None:  # seqeval divides by zero: no token at all
        with pytest.raises(ValueError, match="no tokens"):
            token_accuracy(case["true"], case["pred"])
    else:
        assert token_accuracy(case["true"], case["pred"]) == case["accuracy"]


@pytest.mark.parametrize("tags, expected", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5)]),  # IOB1
    (["S-PER", "B-LOC", "E-LOC", "E-LOC"], [("PER", 0, 1), ("LOC", 1, 3), ("LOC", 3, 4)]),  # IOBES
    (["O", "E-PER", "O"], [("PER", 1, 2)]),  # an E- after O is an entity of its own
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),  # a type change ends and starts one
    (["B", "I", "O", "I"], [("_", 0, 2), ("_", 3, 4)]),  # bare tags: type "_"
    (["X", "B-PER"], [("_", 0, 1), ("PER", 1, 2)]),  # an unknown prefix opens a "_" entity at a row's start
    (["O", "O"], []), ([], []),
])
def test_entities_by_hand(tags, expected):
    assert entities(tags) == expected


def test_conll_example_by_hand():
    truth = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "O"]]
    guess = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "O", "O"]]  # ORG: wrong type, then cut short
    with pytest.warns(UndefinedMetricWarning, match="LOC"):  # no LOC predicted: its precision is 0.0
        scores = entity_scores(truth, guess)
    zero, third = {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1}, 1 / 3
    average = {"precision": third, "recall": third, "f1-score": third, "support": 3}
    assert scores == {"LOC": zero, "ORG": zero, "PER": {"precision": 1.0, "recall": 1.0, "f1-score": 1.0,
                                                        "support": 1},
                      "micro avg": average, "macro avg": average, "weighted avg": average}
    assert token_accuracy(truth, guess) == 6 / 8


def test_averages_by_hand():
    truth = [["B-PER", "O", "B-LOC", "B-LOC", "B-LOC"]]
    guess = [["B-PER", "O", "B-LOC", "O", "O"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every precision and recall is defined: no warning
        scores = entity_scores(truth, guess)
    assert scores["LOC"] == {"precision": 1.0, "recall": 1 / 3, "f1-score": 0.5, "support": 3}
    assert scores["micro avg"] == {"precision": 1.0, "recall": 0.5, "f1-score": 2 / 3, "support": 4}
    assert scores["macro avg"] == {"precision": 1.0, "recall": 2 / 3, "f1-score": 0.75, "support": 4}
    assert scores["weighted avg"] == {"precision": 1.0, "recall": 0.5, "f1-score": 0.625, "support": 4}


def test_no_entity_anywhere():
    scores = entity_scores([["O", "O"], []], [["O", "O"], []])
    assert list(scores) == ["micro avg", "macro avg", "weighted avg"]
    assert scores["micro avg"] == scores["weighted avg"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0,
                                                             "support": 0}
    assert all(math.isnan(scores["macro avg"][field]) for field in ("precision", "recall", "f1-score"))
    assert format_report(scores).splitlines()[3] == f"{'micro avg':>12s}     0.0000    0.0000    0.0000         0"


@pytest.mark.parametrize("true, pred, message", [
    ([["O"], ["O"]], [["O"]], "2 true rows but 1 predicted rows"),
    ([["O", "B-PER"]], [["O"]], "row 0 has 2 true tags but 1 predicted tags"),
    ([], [], "no rows to score"),
    (["B-PER O"], ["B-PER O"], "true row 0 is a string"),
    ("B-PER", "B-PER", "not a string"),
    ([["B-PER", ""]], [["B-PER", "O"]], "true row 0, position 1: tag '' is not a non-empty string"),
    ([["O"]], [[None]], "predicted row 0, position 0: tag None"),
])
def test_input_errors(true, pred, message):
    for score in (entity_scores, token_accuracy):
        with pytest.raises(ValueError, match=message):
            score(true, pred)


def test_entities_rejects_a_string():
    with pytest.raises(ValueError, match="tags is a string"):
        entities("B-PER")


def test_module_examples():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        result = doctest.testmod(ner_metrics)
    assert result.attempted >= 3 and result.failed == 0
