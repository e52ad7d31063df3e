"""finetune_qa_demo.py as a user runs it (a subprocess, the tiny test checkpoint, questions a rule finds answered
in real IMDB reviews): per-epoch test F1, the final exact match, the saved folder the question-answering
pipeline loads; unanswerable questions and answers that do not fit their context; bad input."""
import json
import re

import pytest

import finetune_qa_demo
import model_folder
from conftest import GOLDEN_DIR, ROOT
from pipelines import question_answering
from review_tasks import review_questions
from scripts import assert_one_line_error, run_script

TINY = f"{GOLDEN_DIR}/tiny-gelu"


@pytest.fixture(scope="module")
def questions(imdb, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "questions.jsonl"
    review_questions(imdb, path)
    return path


def quick(dataset, *more):
    return ["dataset_name", dataset, "N", 406, "model_name", TINY, "epochs", 2, "max_length", 64, "doc_stride", 16,
            "lr", 3e-3, "batch_size", 16, *more]


def demo(tmp_path, *args):
    return run_script("finetune_qa_demo.py", *args, env={"HF_DATASETS_CACHE": str(tmp_path / "datasets-cache")})


def test_fine_tunes_a_reader_reports_squad_scores_and_saves_a_folder_the_pipeline_loads(tmp_path, questions):
    result = demo(tmp_path, *quick(questions, "save_dir", tmp_path / "reader"))
    assert result.returncode == 0, result.stderr
    assert re.search(r"^324 training questions \(\d+ windows, \d+ without the answer\), 82 test questions$",
                     result.stdout, re.M)
    epochs = [(int(e), float(f)) for e, f in re.findall(
        r"^epoch (\d): train loss \d\.\d{4}, test F1 (\d+\.\d{4}) \(\d+ s training\)$", result.stdout, re.M)]
    assert [e for e, _ in epochs] == [1, 2] and epochs[1][1] > max(15.0, epochs[0][1])
    final = re.search(r"^test exact match (\d+\.\d\d), F1 (\d+\.\d\d)$", result.stdout, re.M)
    assert final and float(final[2]) == pytest.approx(epochs[1][1], abs=0.006) and float(final[1]) > 0
    assert "epoch 2/2" in result.stderr and "loss=" in result.stderr  # the tqdm bar
    config = json.loads((tmp_path / "reader" / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"]
    tokenizer, hparams, params = model_folder.load_model_folder(tmp_path / "reader")
    found = question_answering(["What score out of 10 does the reviewer give?"],
                               ["A fine cast, a thin story. 7/10 from me."], tokenizer, params, hparams,
                               doc_stride=16)
    assert found[0][0]["answer"]


def test_unanswerable_questions_and_answers_that_do_not_fit_their_context(tmp_path, questions):
    rows = [json.loads(line) for line in questions.read_text(encoding="utf-8").splitlines()][:60]
    for row in rows[:20]:  # SQuAD v2: the context does not answer
        row["answers"] = {"text": [], "answer_start": []}
    rows[20]["answers"]["answer_start"] = [rows[20]["answers"]["answer_start"][0] + 1]  # off by one
    path = tmp_path / "v2.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = demo(tmp_path, *quick(path, "N", 60, "epochs", 1))
    assert result.returncode == 0, result.stderr
    assert re.search(r"^note: left out 1 of 60 questions, e\.g\. question \d+: answers\[\"text\"\]\[0\] .* is not "
                     r"what the context holds at answer_start \d+ .*: the text begins at \d+, fix answer_start$",
                     result.stderr, re.M)
    assert re.search(r"^47 training questions", result.stdout, re.M)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_data_is_one_error_line(tmp_path):
    good = {"question": "Who?", "context": "Ann did.", "answers": {"text": ["Ann"], "answer_start": [0]}}
    cases = [(write(tmp_path / "flat.jsonl", "".join(json.dumps({**good, "answers": "Ann"}) + "\n" for _ in "ab")),
              "'answers' must hold SQuAD's answers"),
             (write(tmp_path / "other.jsonl", json.dumps({"q": "Who?", "context": "Ann did."}) + "\n"),
              "--question_column"),
             (tmp_path / "missing.jsonl", "missing.jsonl")]
    for path, fragment in cases:
        assert_one_line_error(demo(tmp_path, *quick(path, "N", 2)), "error: ", fragment)
    bad = {**good, "answers": {"text": ["Bob"], "answer_start": [0]}}
    result = demo(tmp_path, *quick(write(tmp_path / "one.jsonl", json.dumps(good) + "\n" + json.dumps(bad) + "\n"),
                                   "N", 2))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-2:] == [  # the note on what was left out, then the error
        "note: left out 1 of 2 questions, e.g. question 1: answers[\"text\"][0] 'Bob' is not what the context holds "
        "at answer_start 0 ('Ann'): the text is nowhere in the context",
        f"error: 1 usable question(s) in {tmp_path / 'one.jsonl'}: need at least two"]
    long = write(tmp_path / "two.jsonl", "".join(json.dumps(good) + "\n" for _ in "ab"))
    assert_one_line_error(demo(tmp_path, *quick(long, "N", 2, "doc_stride", 62)), "error: ", "doc_stride (62) must be "
                          "smaller than max_length - 2 (62)")


@pytest.mark.parametrize("args, message", [
    (["N", "1"], "N must be at least 2"),
    (["doc_stride", "-1"], "doc_stride must be 0 or more"),
    (["max_answer_len", "0"], "max_answer_len at least 1"),
    (["question_column", "context"], "question_column and context_column are both 'context'"),
    (["save_dir", ROOT], "already exists and is not an empty folder"),
])
def test_bad_options_are_one_error_line(args, message):
    with pytest.raises(SystemExit) as exit_info:
        finetune_qa_demo.parse_args(args)
    assert str(exit_info.value.code).startswith("error: ") and message in str(exit_info.value.code)
