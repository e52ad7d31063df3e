"""zero_shot_classification against transformers' zero-shot-classification pipeline
(tests/golden/pipelines/zero_shot_classification.json.gz, make_golden_pipelines.py) on random NLI models with
the entailment label last and first: labels in the same order, scores within 1e-4; and its refusals."""
import pytest

import task_models as tm
from task_models import model_folders  # noqa: F401  (the session fixture)
from test_pipelines import assert_same, case_id, load
from zero_shot import zero_shot_classification

GOLDEN = tm.read_golden("zero_shot_classification")


@pytest.mark.parametrize("case", GOLDEN, ids=case_id)
def test_zero_shot_classification_matches_transformers(case, model_folders):
    texts, _ = tm.zero_shot_inputs()
    kwargs = dict(case["kwargs"])
    ours = zero_shot_classification(texts, kwargs.pop("candidate_labels"), *load(model_folders[case["model"]]),
                                    batch_size=3, **kwargs)
    assert_same(ours, case["outputs"])


def test_the_golden_cases_cover_what_they_should(model_folders):
    tokenizer = load(model_folders["zero-shot-nli"])[0]
    texts, _ = tm.zero_shot_inputs()
    assert max(len(tokenizer.tokenize(text)) for text in texts) > 512  # a premise is cut
    multi = [c for c in GOLDEN if c["kwargs"].get("multi_label")]
    assert multi and abs(sum(multi[0]["outputs"][0]["scores"]) - 1) > 0.1  # independent labels
    assert {c["model"] for c in GOLDEN} == {"zero-shot-nli", "zero-shot-nli-first"}


@pytest.mark.parametrize("labels, kwargs, message", [
    ([], {}, "candidate_labels is an empty list"),
    (" , ,", {}, "candidate_labels has no label: give at least one"),
    (["a"], {"hypothesis_template": "This example is about it."}, "hypothesis_template 'This example is about it.' "
                                                                 "has no {} where the label should go"),
    (["a"], {"hypothesis_template": "It is about {label}."}, r"'It is about \{label\}.' has no \{\} where"),
    (["a"], {"hypothesis_template": None}, "hypothesis_template None has no"),
    (["word " * 600], {}, "a hypothesis has more than the model's 509 tokens"),
])
def test_bad_labels_and_templates_are_named(labels, kwargs, message, model_folders):
    with pytest.raises(ValueError, match=message):
        zero_shot_classification(["a text"], labels, *load(model_folders["zero-shot-nli"]), **kwargs)


def test_a_model_without_an_entailment_label_is_refused(model_folders):
    with pytest.raises(ValueError, match="no label of this model starts with 'entail'"):
        zero_shot_classification(["a text"], ["a"], *load(model_folders["emotion"]))
    with pytest.raises(ValueError, match="is a BertForTokenClassification"):
        zero_shot_classification(["a text"], ["a"], *load(model_folders["ner"]))
