"""SQuAD scores of extractive question answering: exact match and token F1, the numbers of the official SQuAD v2.0
evaluation as transformers 4.57 computes them (``transformers.data.metrics.squad_metrics``: ``normalize_answer``,
``compute_exact``, ``compute_f1``, ``get_raw_scores``, ``squad_evaluate``). This module computes the same numbers
with the standard library alone, so it can be copied into a project that has no NumPy:

    >>> normalize_answer("The  Denver Broncos!")
    'denver broncos'
    >>> exact_match("Denver Broncos", ["Carolina Panthers", "the Denver Broncos."])
    1.0
    >>> round(f1("Broncos", ["Denver Broncos"]), 4)
    0.6667
    >>> predictions = ["Denver Broncos", "", "Broncos", "Panthers"]
    >>> squad_scores(predictions, [["Denver Broncos"], [], ["Denver Broncos, 24"], ["Broncos"]])
    {'exact_match': 50.0, 'f1': 62.5}

A question's references are its answers whose normalized text is not empty; when none is left (no answer, or only
answers such as "the" or "?") the question is unanswerable and its one reference is "", which only an empty
prediction (after normalization) matches. Normalization lower-cases (``str.lower``: no accent stripping, no Unicode
normalization), removes the ASCII punctuation of ``string.punctuation``, then the whole words a, an and the, and
splits on whitespace (``str.split``); F1 is over those tokens, counted with their repeats.
"""
import collections
import re
import string

ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s):
    """`s` lower-cased, without punctuation (string.punctuation), without the words a/an/the, its words joined by
    single spaces: transformers' normalize_answer, the four steps in its order."""
    without_punctuation = "".join(ch for ch in s.lower() if ch not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", without_punctuation).split())


def _check_answers(answers, where):
    """ValueError unless `answers` is a list (or tuple) of strings."""
    if not isinstance(answers, (list, tuple)):
        raise ValueError(f"{where} is a {type(answers).__name__}: pass a list of answer strings such as "
                         "['Denver Broncos'] ([] for an unanswerable question; of a SQuAD answers dict, its 'text')")
    for j, answer in enumerate(answers):
        if not isinstance(answer, str):
            raise ValueError(f"{where}[{j}] is {answer!r}, not a string")


def _check_prediction(prediction, where):
    if not isinstance(prediction, str):
        raise ValueError(f"{where} is {prediction!r}, not a string (\"\" predicts no answer)")


def _references(prediction, answers):
    """The answers whose normalized text is not empty, or [""] when none is: get_raw_scores' gold answers."""
    _check_prediction(prediction, "prediction")
    _check_answers(answers, "answers")
    return [answer for answer in answers if normalize_answer(answer)] or [""]


def _f1(reference, prediction):
    """transformers' compute_f1: the F1 of the normalized tokens, counted with their repeats (1.0 when both sides
    have no token, 0.0 when only one has none)."""
    gold, guess = normalize_answer(reference).split(), normalize_answer(prediction).split()
    if not gold or not guess:
        return float(gold == guess)
    same = sum((collections.Counter(gold) & collections.Counter(guess)).values())
    if not same:
        return 0.0
    precision, recall = same / len(guess), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction, answers):
    """1.0 if the normalized prediction equals a normalized reference, else 0.0: the best of transformers'
    compute_exact over the references, as get_raw_scores takes it."""
    references = _references(prediction, answers)
    normalized = normalize_answer(prediction)
    return max(float(normalize_answer(reference) == normalized) for reference in references)


def f1(prediction, answers):
    """The best token F1 (0.0 to 1.0) of the prediction against the references: the best of transformers'
    compute_f1, as get_raw_scores takes it."""
    return max(_f1(reference, prediction) for reference in _references(prediction, answers))


def _check_lists(predictions, references):
    """Both as lists: ValueError unless they are the same non-zero number of predictions and answer lists."""
    if isinstance(predictions, str) or isinstance(references, str):
        raise ValueError("pass a list of predictions (strings) and a list of references (lists of answer strings), "
                         "not a string")
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: pass one list of answer "
                         "strings per prediction")
    if not predictions:
        raise ValueError("no predictions to score: pass at least one question's prediction and answers")
    for i, (prediction, answers) in enumerate(zip(predictions, references)):
        _check_prediction(prediction, f"predictions[{i}]")
        _check_answers(answers, f"references[{i}]")
    return predictions, references


def squad_scores(predictions, references):
    """{"exact_match": ..., "f1": ...}: the means of exact_match and f1 over the questions as percentages (0 to 100,
    floats), as transformers' squad_evaluate gives its "exact" and "f1" (no no-answer probabilities) and HF
    evaluate's "squad" metric reports them; `references` holds one list of answer strings per prediction."""
    predictions, references = _check_lists(predictions, references)
    pairs = list(zip(predictions, references))
    return {"exact_match": 100.0 * sum(exact_match(*pair) for pair in pairs) / len(pairs),
            "f1": 100.0 * sum(f1(*pair) for pair in pairs) / len(pairs)}
