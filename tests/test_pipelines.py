"""The task pipelines against transformers' own (tests/golden/pipelines, from make_golden_pipelines.py and, for
question answering, make_golden_qa.py with transformers 4.57) on the random-weight models of task_models.py:
labels, words, tokens and spans identical, scores within 1e-4; and their refusals of bad input."""
import functools

import numpy as np
import pytest

import pipelines
import task_models as tm
from model_folder import load_model_folder
from task_models import model_folders  # noqa: F401  (the session fixture)

GOLDEN = {task: tm.read_golden(task) for task in
          ("text_classification", "token_classification", "question_answering", "fill_mask")}
TOLERANCE = 1e-4


@functools.lru_cache(maxsize=None)
def load(folder):
    """(tokenizer, params, hparams): the order the pipelines take them in."""
    tokenizer, hparams, params = load_model_folder(folder)
    return tokenizer, params, hparams


def assert_same(ours, theirs, where=""):
    """Equal nested lists / dicts: floats within TOLERANCE, everything else identical."""
    if isinstance(theirs, float):
        assert ours == pytest.approx(theirs, abs=TOLERANCE, rel=0), where
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), f"{where}: {ours} != {theirs}"
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), f"{where}: {ours} != {theirs}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs and type(ours) is type(theirs), f"{where}: {ours!r} != {theirs!r}"


def case_id(case):
    return f"{case['model']}-{'-'.join(f'{k}={v}' for k, v in case['kwargs'].items()) or 'defaults'}"


@pytest.mark.parametrize("case", GOLDEN["text_classification"], ids=case_id)
def test_text_classification_matches_transformers(case, model_folders):
    texts, (queries, passages) = tm.classification_inputs()
    args = dict(text_pairs=passages) if case["pairs"] else {}
    ours = pipelines.text_classification(queries if case["pairs"] else texts, *load(model_folders[case["model"]]),
                                         **args, **case["kwargs"])
    theirs = [o if isinstance(o, list) else [o] for o in case["outputs"]]  # without top_k, one dict per text
    assert_same(ours, theirs)


@pytest.mark.parametrize("case", GOLDEN["token_classification"], ids=case_id)
def test_token_classification_matches_transformers(case, model_folders):
    texts = tm.token_classification_words() if case["kwargs"].get("is_split_into_words") else (
        tm.token_classification_texts())
    ours = pipelines.token_classification(texts, *load(model_folders["ner"]), **case["kwargs"])
    assert_same(ours, case["outputs"])


@pytest.mark.parametrize("case", GOLDEN["question_answering"], ids=case_id)
def test_question_answering_matches_transformers_4(case, model_folders):
    questions, contexts = case.get("inputs") or tm.qa_inputs()  # a case's own inputs, else the shared ones
    ours = pipelines.question_answering(questions, contexts, *load(model_folders["qa"]), **case["kwargs"])
    assert_same(ours, case["outputs"])


@pytest.mark.parametrize("case", GOLDEN["fill_mask"], ids=case_id)
@pytest.mark.filterwarnings("ignore:fill_mask target")  # the targets not in the vocabulary, as transformers warns
def test_fill_mask_matches_transformers(case, model_folders):
    ours = pipelines.fill_mask(tm.fill_mask_texts(), *load(model_folders["mlm"]), **case["kwargs"])
    assert_same(ours, case["outputs"])


def test_the_golden_cases_cover_what_they_should(model_folders):
    """Several windows per long context, every aggregation strategy, one and several masks, pairs."""
    questions, contexts = tm.qa_inputs()
    tokenizer = load(model_folders["qa"])[0]
    assert max(len(tokenizer.tokenize(c)) for c in contexts) > 2 * 384  # 4 windows of 384 tokens
    assert {c["kwargs"]["aggregation_strategy"] for c in GOLDEN["token_classification"]} == set(
        pipelines.entities.STRATEGIES)
    fills = GOLDEN["fill_mask"][0]["outputs"]
    assert any(isinstance(f[0], list) for f in fills) and any(isinstance(f[0], dict) for f in fills)
    assert any(c["pairs"] for c in GOLDEN["text_classification"]) and "" in tm.classification_inputs()[1][1]
    tokenizer = load(model_folders["ner"])[0]
    longest = max(len(tokenizer.tokenize(t)) for t in tm.token_classification_texts())
    assert {c["kwargs"].get("stride") for c in GOLDEN["token_classification"]} == {None, 0, 64, 100, 256}
    assert longest > 510 + 510 - 256  # with every stride, one text is read in several windows
    assert any(t not in tokenizer.vocab for t in tm.FILL_MASK_TARGETS) and {"targets"} <= {
        k for c in GOLDEN["fill_mask"] for k in c["kwargs"]}


def test_batches_give_what_single_inputs_give(model_folders):
    texts = tm.token_classification_texts()
    model = load(model_folders["ner"])
    batched = pipelines.token_classification(texts, *model, aggregation_strategy="simple", batch_size=4)
    single = [pipelines.token_classification([t], *model, aggregation_strategy="simple")[0] for t in texts]
    assert_same(batched, single)
    questions, contexts = (inputs[:4] for inputs in tm.qa_inputs())
    model = load(model_folders["qa"])
    batched = pipelines.question_answering(questions, contexts, *model, top_k=2, max_seq_len=64, doc_stride=16)
    single = [pipelines.question_answering([q], [c], *model, top_k=2, max_seq_len=64, doc_stride=16, batch_size=1)[0]
              for q, c in zip(questions, contexts)]
    assert_same(batched, single)


# --- Bad input ------------------------------------------------------------------------------------------

CALLS = {
    "text_classification": lambda model, texts, **kw: pipelines.text_classification(texts, *model, **kw),
    "token_classification": lambda model, texts, **kw: pipelines.token_classification(texts, *model, **kw),
    "question_answering": lambda model, texts, **kw: pipelines.question_answering(texts, texts, *model, **kw),
    "fill_mask": lambda model, texts, **kw: pipelines.fill_mask(texts, *model, **kw),
}
MODEL_OF = {"text_classification": "emotion", "token_classification": "ner", "question_answering": "qa",
            "fill_mask": "mlm"}


@pytest.mark.parametrize("task", CALLS)
def test_an_empty_list_or_a_bare_string_is_refused(task, model_folders):
    model = load(model_folders[MODEL_OF[task]])
    with pytest.raises(ValueError, match="is an empty list: give at least one text"):
        CALLS[task](model, [])
    with pytest.raises(TypeError, match="must be a list of str"):
        CALLS[task](model, "one text")


@pytest.mark.parametrize("task", ["text_classification", "question_answering", "fill_mask"])
@pytest.mark.parametrize("top_k", [0, -1, 1.5, True])
def test_top_k_below_one_is_refused(task, top_k, model_folders):
    with pytest.raises(ValueError, match=f"top_k must be an integer >= 1.*got {top_k}"):
        CALLS[task](load(model_folders[MODEL_OF[task]]), ["a [MASK] text"], top_k=top_k)


@pytest.mark.parametrize("task, model, message", [
    ("text_classification", "qa", "this checkpoint has no classifier head"),
    ("text_classification", "ner", "is a BertForTokenClassification: its classifier head is for token_classification"),
    ("token_classification", "emotion", "BertForSequenceClassification: its classifier head is for text_classif"),
    ("token_classification", "mlm", "this checkpoint has no classifier head"),
    ("question_answering", "ner", "this checkpoint has no question-answering head"),
    ("fill_mask", "qa", "this checkpoint has no MLM head"),
])
def test_a_model_without_the_head_is_refused(task, model, message, model_folders):
    with pytest.raises(ValueError, match=message):
        CALLS[task](load(model_folders[model]), ["a [MASK] text"])


def test_question_answering_needs_a_context_for_each_question(model_folders):
    model = load(model_folders["qa"])
    with pytest.raises(ValueError, match="2 questions but 1 contexts: pass one context per question"):
        pipelines.question_answering(["who?", "what?"], ["Ann."], *model)
    with pytest.raises(ValueError, match="context 1 is empty: every question needs a context"):
        pipelines.question_answering(["who?", "what?"], ["Ann.", " "], *model)
    with pytest.raises(ValueError, match="question 0 is empty"):
        pipelines.question_answering([""], ["Ann."], *model)


def test_question_answering_windows_that_cannot_be_made(model_folders):
    model, long_context = load(model_folders["qa"]), "word " * 200
    with pytest.raises(ValueError, match=r"doc_stride \(20\) must be smaller than the 19 context tokens"):
        pipelines.question_answering(["who is it?"], [long_context], *model, max_seq_len=26, doc_stride=20)
    assert pipelines.question_answering(["who is it?"], ["short"], *model, max_seq_len=26, doc_stride=20)  # fits
    with pytest.raises(ValueError, match=r"a question of 10 tokens leaves no room for the context in max_seq_len 12"):
        pipelines.question_answering(["who is it , and why , and when ?"], [long_context], *model, max_seq_len=12,
                                     doc_stride=1)
    with pytest.raises(ValueError, match=r"doc_stride \(62\) must be smaller than max_seq_len - 2 \(62\)"):
        pipelines.question_answering(["who?"], ["short"], *model, max_seq_len=64, doc_stride=62)
    with pytest.raises(ValueError, match="doc_stride must be an integer >= 0"):
        pipelines.question_answering(["who?"], ["short"], *model, doc_stride=-1)
    for name in ("max_answer_len", "max_seq_len", "max_question_len"):
        with pytest.raises(ValueError, match=f"{name} must be a positive integer, got 0"):
            pipelines.question_answering(["who?"], ["short"], *model, **{name: 0})


def test_question_answering_never_truncates_the_question(model_folders):
    """max_question_len has no effect (transformers 4's pipeline with a fast tokenizer ignores it too)."""
    model, question = load(model_folders["qa"]), "which of the many actors in this film gave the best performance ?"
    context = tm.reviews([0])[0]
    assert_same(pipelines.question_answering([question], [context], *model, max_question_len=3),
                pipelines.question_answering([question], [context], *model))


def test_other_bad_options_are_named(model_folders):
    with pytest.raises(ValueError, match="unknown aggregation_strategy 'longest': use one of none, simple, first"):
        pipelines.token_classification(["text"], *load(model_folders["ner"]), aggregation_strategy="longest")
    with pytest.raises(ValueError, match="unknown function_to_apply 'tanh': use softmax, sigmoid, none or None"):
        pipelines.text_classification(["text"], *load(model_folders["emotion"]), function_to_apply="tanh")
    with pytest.raises(ValueError, match="text_pairs has 1 texts but texts has 2"):
        pipelines.text_classification(["a", "b"], *load(model_folders["reranker"]), text_pairs=["c"])
    with pytest.raises(ValueError, match="text 1 has no \\[MASK\\] within the model's first 512 tokens"):
        pipelines.fill_mask(["a [MASK] b", "no mask here"], *load(model_folders["mlm"]))
    with pytest.raises(ValueError, match="text 0 has no \\[MASK\\] within the model's first 512 tokens"):
        pipelines.fill_mask(["word " * 600 + "[MASK]"], *load(model_folders["mlm"]))
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        pipelines.fill_mask(["a [MASK]"], *load(model_folders["mlm"]), batch_size=0)
    with pytest.raises(ValueError, match="none of the targets has a token"), pytest.warns(UserWarning):
        pipelines.fill_mask(["a [MASK]"], *load(model_folders["mlm"]), targets=["", " \t"])
    with pytest.raises(TypeError, match="targets\\[1\\] must be a str"):
        pipelines.fill_mask(["a [MASK]"], *load(model_folders["mlm"]), targets=["good", 3])
    with pytest.raises(ValueError, match='stride merges .* needs an aggregation_strategy other than "none"'):
        pipelines.token_classification(["text"], *load(model_folders["ner"]), stride=10)
    with pytest.raises(TypeError, match="with is_split_into_words, texts must be a list of word lists"):
        pipelines.token_classification(["Ann", "met"], *load(model_folders["ner"]), is_split_into_words=True)
    with pytest.raises(TypeError, match="texts\\[0\\]\\[1\\] must be a str, got int"):
        pipelines.token_classification([["Ann", 1]], *load(model_folders["ner"]), is_split_into_words=True)
    for stride in (-1, 510, True, 1.5):
        with pytest.raises(ValueError, match=f"stride must be an integer from 0 to 509 .*, got {stride!r}"):
            pipelines.token_classification(["text"], *load(model_folders["ner"]), "simple", stride=stride)


def test_fill_mask_targets_warn_as_transformers_does_and_cap_top_k(model_folders):
    model = load(model_folders["mlm"])
    with pytest.warns(UserWarning, match="target 'Paris' is not a token of the vocabulary: using its first token "
                                         "'paris'"):
        found = pipelines.fill_mask(["the [MASK] of france"], *model, targets=["Paris", "city", "paris"], top_k=5)[0]
    assert sorted(f["token_str"] for f in found) == ["city", "paris"]  # one result per token, top_k capped
    everything = {f["token"]: f["score"] for f in pipelines.fill_mask(["the [MASK] of france"], *model, top_k=30522)[0]}
    assert all(f["score"] == pytest.approx(everything[f["token"]], rel=1e-6) for f in found)  # whole-vocabulary probs


def test_labels_fall_back_to_label_i_and_top_k_none_gives_all(model_folders):
    tokenizer, params, hparams = load(model_folders["sentiment"])
    assert "id2label" not in hparams
    result = pipelines.text_classification(["a fine film", "a dull one"], tokenizer, params, hparams, top_k=None)
    assert [sorted(r["label"] for r in row) for row in result] == [["LABEL_0", "LABEL_1"]] * 2
    assert all(sum(r["score"] for r in row) == pytest.approx(1) for row in result)
    assert all(isinstance(r["score"], float) for row in result for r in row)


def test_scores_are_plain_python_numbers(model_folders):
    answer = pipelines.question_answering(["who?"], ["Ann met Bob."], *load(model_folders["qa"]))[0][0]
    assert {type(v) for v in answer.values()} == {float, int, str}
    fill = pipelines.fill_mask(["a [MASK] day"], *load(model_folders["mlm"]))[0][0]
    assert [type(v) for v in fill.values()] == [float, int, str, str]
    entity = pipelines.token_classification(["Ann met Bob in Paris"], *load(model_folders["ner"]))[0][0]
    assert [type(v) for v in entity.values()] == [str, float, int, str, int, int]
    assert np.isfinite(answer["score"])
