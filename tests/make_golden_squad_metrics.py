"""Generate tests/golden/squad_metrics.json: what transformers 4.57's SQuAD v2.0 evaluation
(transformers.data.metrics.squad_metrics) gives for hand-made edge cases (articles, punctuation, case, whitespace,
Unicode, empty and unanswerable references, several references, repeated tokens) and for seeded random ones built
from real review sentences (rt_polarity_sample.csv): spans as references, perturbed spans as predictions. For each
question: normalize_answer of every string, and the exact and F1 scores of get_raw_scores over SquadExample
objects; for all questions, for the hand-made ones and for the random ones: squad_evaluate's "exact" and "f1".

Needs requirements-golden-qa.txt (transformers==4.57.6); never needed to run the tests. Run from tests/:
    cd tests && python make_golden_squad_metrics.py
"""
import csv
import json
import os
import random

import transformers
from transformers.data.metrics.squad_metrics import (compute_exact, compute_f1, get_raw_scores, make_eval_dict,
                                                     normalize_answer, squad_evaluate)
from transformers.data.processors.squad import SquadExample

from conftest import GOLDEN_DIR
from review_data import sample_path

assert transformers.__version__.startswith("4.57."), transformers.__version__
PATH = os.path.join(GOLDEN_DIR, "squad_metrics.json")
RANDOM_CASES = 120

HAND = {  # name: (prediction, answers)
    "exact": ("Denver Broncos", ["Denver Broncos", "Broncos"]),
    "case": ("DENVER broncos", ["Denver Broncos"]),
    "articles": ("the Denver Broncos", ["Denver Broncos"]),
    "capital-article": ("A Tale of Two Cities", ["tale of two cities"]),
    "articles-in-a-row": ("a an the answer", ["answer"]),
    "article-inside-words": ("another theater", ["other theater"]),
    "article-in-parentheses": ("(the) answer", ["answer"]),
    "article-with-hyphen": ("the-end", ["end"]),  # punctuation goes first: "theend" keeps its "the"
    "article-with-underscore": ("the_end", ["the end"]),
    "article-with-digit": ("the1 answer", ["1 answer"]),
    "article-before-accent": ("thé café", ["café"]),  # é is a word character: no word boundary after "th"
    "punctuation": ("Broncos!!!", ["broncos."]),
    "apostrophe": ("Denver's", ["Denvers"]),
    "number-punctuation": ("1,000.5", ["10005"]),
    "extra-whitespace": ("  Denver\t\nBroncos  ", ["Denver Broncos"]),
    "unicode-whitespace": ("Denver\u00a0Broncos\u2003", ["Denver  Broncos"]),
    "separator-control-characters": ("Denver\x1fBroncos", ["Denver Broncos"]),  # str.split splits at \x1c-\x1f
    "zero-width-space": ("Denver\u200bBroncos", ["Denver Broncos"]),  # not whitespace to str.split
    "umlaut": ("ZÜRICH", ["zürich"]),
    "accent-missing": ("Cafe", ["Café"]),
    "combining-accent": ("Cafe\u0301", ["Café"]),  # no Unicode normalization: e + U+0301 is not é
    "final-sigma": ("ΟΔΟΣ", ["οδοσ", "οδος"]),  # str.lower gives ς at a word's end
    "dotted-capital-i": ("İstanbul", ["istanbul"]),  # lower() gives i + U+0307
    "sharp-s": ("STRASSE", ["straße"]),  # lower, not casefold
    "fullwidth-letters": ("ＢＲＯＮＣＯＳ", ["broncos", "ｂｒｏｎｃｏｓ"]),
    "curly-quotes-kept": ("“Broncos”", ["Broncos"]),  # only ASCII punctuation goes
    "em-dash-kept": ("Denver—Broncos", ["Denver Broncos"]),
    "empty-prediction": ("", ["Denver Broncos"]),
    "empty-prediction-unanswerable": ("", []),
    "prediction-for-unanswerable": ("Denver", []),
    "empty-reference-strings": ("", ["", "   "]),
    "references-normalize-to-empty": ("", ["the", "?!", " a "]),
    "references-normalize-to-empty-answered": ("the answer", ["a", "..."]),
    "some-references-empty": ("Broncos", ["", "the", "Broncos"]),
    "article-only-prediction": ("the", ["Denver"]),
    "article-only-prediction-unanswerable": ("An", []),
    "punctuation-only-prediction": ("?!.", ["Broncos"]),
    "punctuation-only-prediction-unanswerable": ("?!.", ["..."]),
    "later-reference-exact": ("Denver Broncos", ["Carolina Panthers", "the Broncos", "Denver Broncos"]),
    "later-reference-f1": ("Denver Broncos won", ["Panthers", "Broncos won the game", "Denver"]),
    "squad-style": ("Santa Clara, California", ["Levi's Stadium", "Levi's Stadium in the San Francisco Bay Area at "
                                                "Santa Clara, California.", "Santa Clara, California"]),
    "longer-prediction": ("the Denver Broncos football team", ["Denver Broncos"]),
    "shorter-prediction": ("Broncos", ["Denver Broncos, 24"]),
    "word-order": ("Broncos Denver", ["Denver Broncos"]),
    "no-overlap": ("Panthers", ["Broncos"]),
    "repeated-in-prediction": ("the the Broncos Broncos Broncos", ["Broncos Broncos"]),
    "repeated-in-reference": ("Broncos", ["Broncos Broncos Denver"]),
    "repeats-on-both-sides": ("x y y z z z", ["y z z z z w"]),
}


def read_sentences():
    with open(sample_path("rt_polarity_sample.csv"), encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


def span(rng, words, most=8):
    """A run of 1 to `most` words of `words`, as (start, end)."""
    start = rng.randrange(len(words))
    return start, min(len(words), start + rng.randint(1, most))


def perturbed(rng, words, start, end):
    """A model's guess at words[start:end]: words dropped, neighbours or articles added, case changed, punctuation
    added, a word repeated, the spacing changed; each with some chance."""
    guess = words[max(0, start - rng.randint(0, 2)):end + rng.randint(0, 2)] if rng.random() < 0.3 else words[start:end]
    guess = list(guess)
    for _ in range(rng.randint(0, 3)):
        i = rng.randrange(len(guess)) if guess else 0
        action = rng.choice(["drop", "article", "upper", "title", "punctuate", "repeat"])
        if action == "drop" and guess:
            del guess[i]
        elif action == "article":
            guess.insert(i, rng.choice(["the", "The", "a", "an", "An"]))
        elif action in ("upper", "title") and guess:
            guess[i] = guess[i].upper() if action == "upper" else guess[i].title()
        elif action == "punctuate" and guess:
            guess[i] += rng.choice([".", ",", "!", "'s", "?\"", "--"])
        elif action == "repeat" and guess:
            guess.insert(i, guess[i])
    return rng.choice([" ", " ", "  ", "\t"]).join(guess)


def random_case(rng, sentences):
    """(prediction, answers) from a real sentence: one to three spans of it (sometimes one of them only punctuation
    or an article, sometimes none: unanswerable), the prediction a perturbed span, an answer as it is, or ""."""
    words = rng.choice(sentences).split()
    spans = [span(rng, words) for _ in range(rng.choice([0, 1, 1, 1, 2, 2, 3]))]
    answers = [" ".join(words[start:end]) for start, end in spans]
    if answers and rng.random() < 0.15:
        answers.insert(rng.randrange(len(answers) + 1), rng.choice([",", ".", "the", "a", "--", "'s"]))
    draw = rng.random()
    if draw < 0.1:
        return "", answers
    if draw < 0.2 and answers:
        return rng.choice(answers), answers
    return perturbed(rng, words, *(rng.choice(spans) if spans else span(rng, words))), answers


def cases():
    rng = random.Random(0)
    sentences = read_sentences()
    out = [(name, prediction, answers) for name, (prediction, answers) in HAND.items()]
    return out + [(f"review-{i:03d}", *random_case(rng, sentences)) for i in range(RANDOM_CASES)]


def example(name, answers):
    """A SquadExample as squad_evaluate reads one: its id and its answers (question and context play no part)."""
    return SquadExample(qas_id=name, question_text="", context_text=" ".join(answers), answer_text=None,
                        start_position_character=None, title="", is_impossible=not answers,
                        answers=[{"text": answer, "answer_start": 0} for answer in answers])


def mirrored(prediction, answers):
    """get_raw_scores' two scores written out from compute_exact and compute_f1, to check it against."""
    gold = [answer for answer in answers if normalize_answer(answer)] or [""]
    return max(compute_exact(a, prediction) for a in gold), max(compute_f1(a, prediction) for a in gold)


def aggregate(chosen):
    """squad_evaluate's "exact", "f1" and "total" over the cases `chosen`; make_eval_dict over get_raw_scores agrees."""
    examples, preds = [example(name, answers) for name, _, answers in chosen], {name: p for name, p, _ in chosen}
    evaluation = {key: squad_evaluate(examples, preds)[key] for key in ("exact", "f1", "total")}
    assert dict(make_eval_dict(*get_raw_scores(examples, preds))) == evaluation
    return evaluation


def golden(all_cases):
    examples = [example(name, answers) for name, _, answers in all_cases]
    exact, f1 = get_raw_scores(examples, {name: prediction for name, prediction, _ in all_cases})
    out = []
    for name, prediction, answers in all_cases:
        assert (exact[name], f1[name]) == mirrored(prediction, answers), name
        out.append({"name": name, "prediction": prediction, "answers": answers,
                    "normalized": [normalize_answer(s) for s in [prediction, *answers]],
                    "exact": float(exact[name]), "f1": float(f1[name])})
    return out


def main():
    all_cases = cases()
    assert len({name for name, _, _ in all_cases}) == len(all_cases)
    hand = [case for case in all_cases if case[0] in HAND]
    data = {"transformers": transformers.__version__, "cases": golden(all_cases),
            "aggregates": {"all": aggregate(all_cases), "hand": aggregate(hand),
                           "reviews": aggregate([case for case in all_cases if case[0] not in HAND])}}
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    with open(PATH + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))  # \u escapes: the invisible characters stay visible
    os.replace(PATH + ".tmp", PATH)
    print(f"wrote {PATH}: {len(data['cases'])} cases, {os.path.getsize(PATH)} bytes")


if __name__ == "__main__":
    main()
