"""squad_metrics against transformers 4.57's SQuAD v2.0 evaluation (tests/golden/squad_metrics.json, made by
make_golden_squad_metrics.py), plus hand-worked examples and the input errors."""
import doctest
import json
import os
import sys

import pytest

import squad_metrics
from conftest import GOLDEN_DIR
from squad_metrics import exact_match, f1, normalize_answer, squad_scores
from test_layout import imports

with open(os.path.join(GOLDEN_DIR, "squad_metrics.json"), encoding="utf-8") as f:
    GOLDEN = json.load(f)
CASES = {case["name"]: case for case in GOLDEN["cases"]}
PARTS = {"all": list(CASES.values()),
         "hand": [case for name, case in CASES.items() if not name.startswith("review-")],
         "reviews": [case for name, case in CASES.items() if name.startswith("review-")]}


def test_golden_covers_the_cases():
    assert GOLDEN["transformers"] == "4.57.6" and len(CASES) == len(GOLDEN["cases"]) == 168
    assert [len(PARTS["hand"]), len(PARTS["reviews"])] == [48, 120]
    for cases in PARTS.values():  # right, wrong and partly right answers; unanswerable questions, right and wrong
        assert {case["exact"] for case in cases} == {0.0, 1.0}
        assert any(0.0 < case["f1"] < 1.0 for case in cases)
        assert {case["exact"] for case in cases if not any(case["normalized"][1:])} == {0.0, 1.0}


@pytest.mark.parametrize("name", CASES)
def test_normalize_answer_matches_transformers(name):
    case = CASES[name]
    assert [normalize_answer(s) for s in [case["prediction"], *case["answers"]]] == case["normalized"]


@pytest.mark.parametrize("name", CASES)
def test_scores_match_get_raw_scores(name):
    case = CASES[name]
    scores = exact_match(case["prediction"], case["answers"]), f1(case["prediction"], case["answers"])
    assert [type(score) for score in scores] == [float, float]
    assert scores == (case["exact"], case["f1"])


@pytest.mark.parametrize("part", PARTS)
def test_squad_scores_match_squad_evaluate(part):
    cases, expected = PARTS[part], GOLDEN["aggregates"][part]
    assert len(cases) == expected["total"]
    scores = squad_scores([case["prediction"] for case in cases], [case["answers"] for case in cases])
    assert list(scores) == ["exact_match", "f1"] and all(type(value) is float for value in scores.values())
    # sum() adds floats with compensation from Python 3.12 on; the golden comes from 3.11's plain sum
    assert scores["exact_match"] == pytest.approx(expected["exact"], rel=1e-13, abs=0)
    assert scores["f1"] == pytest.approx(expected["f1"], rel=1e-13, abs=0)


@pytest.mark.parametrize("text, expected", [
    ("The  Denver Broncos!", "denver broncos"),
    ("the-end (a) An", "theend"),  # punctuation first: "the-end" is one word then
    ("Thé ANother\u00a0an\tthe", "thé another"),
    ("“Zürich”—İ", "“zürich”—i\u0307"),  # no Unicode punctuation removed, no normalization
    (" ?!. ", ""),
])
def test_normalize_answer_by_hand(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize("prediction, answers, exact, score", [
    ("the the Broncos Broncos Broncos", ["Broncos Broncos"], 0.0, 0.8),  # repeats count: 2 of 3 tokens, 2 of 2
    ("x y y z z z", ["y z z z z w"], 0.0, 2 / 3),
    ("Denver Broncos", ["Panthers", "the Broncos", "denver broncos."], 1.0, 1.0),
    ("Broncos won", ["Panthers", "Broncos won the game", "Denver"], 0.0, 0.8),
    ("", ["the", "?"], 1.0, 1.0),  # answers that normalize to nothing: unanswerable
    ("Denver", ["", "a"], 0.0, 0.0),
    ("an", [], 1.0, 1.0),  # a prediction of an article only is no answer
    ("the", ["Denver"], 0.0, 0.0),
])
def test_scores_by_hand(prediction, answers, exact, score):
    assert (exact_match(prediction, answers), f1(prediction, answers)) == (exact, score)
    assert (exact_match(prediction, tuple(answers)), f1(prediction, tuple(answers))) == (exact, score)


def test_squad_scores_by_hand():
    predictions, references = ["Denver Broncos", "", "Broncos", "Panthers"], [["Broncos"], [], ["Denver Broncos"], []]
    expected = {"exact_match": 25.0, "f1": 100 * (2 / 3 + 1 + 2 / 3 + 0) / 4}
    assert squad_scores(predictions, references) == expected
    assert squad_scores(iter(predictions), (tuple(answers) for answers in references)) == expected


@pytest.mark.parametrize("predictions, references, message", [
    (["Denver"], [["Denver"], ["Broncos"]], "1 predictions but 2 references"),
    ([], [], "no predictions to score"),
    ("Denver", [["Denver"]], "not a string"),
    (["Denver"], "Denver", "not a string"),
    (["Denver"], ["Denver"], r"references\[0\] is a str: pass a list of answer strings"),
    (["Denver"], [{"text": ["Denver"], "answer_start": [0]}], r"references\[0\] is a dict: .* its 'text'"),
    (["Denver", None], [["Denver"], ["Broncos"]], r"predictions\[1\] is None, not a string"),
    (["Denver"], [["Denver", 3]], r"references\[0\]\[1\] is 3, not a string"),
])
def test_squad_scores_input_errors(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        squad_scores(predictions, references)


@pytest.mark.parametrize("prediction, answers, message", [
    ("Denver", "Denver", "answers is a str"),
    ("Denver", [None], r"answers\[0\] is None"),
    (None, ["Denver"], "prediction is None"),
])
def test_question_input_errors(prediction, answers, message):
    for score in (exact_match, f1):
        with pytest.raises(ValueError, match=message):
            score(prediction, answers)


def test_needs_the_standard_library_alone():
    assert set(imports("squad_metrics")) <= sys.stdlib_module_names


def test_module_examples():
    result = doctest.testmod(squad_metrics)
    assert result.attempted >= 4 and result.failed == 0
