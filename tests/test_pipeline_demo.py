"""pipeline_demo.py: each task from flags or a JSON-lines file, one JSON result per line (the library's result
for that input), and one clear line for each kind of bad input. A few runs are whole processes, as a user
runs the script; the many refusals call its main() in this process."""
import json
import os

import numpy as np
import pytest

import pipeline_demo
import pipelines
import task_models as tm
from cross_encoder import rank
from model_folder import load_model_folder
from scripts import assert_usage_error, run_script
from zero_shot import zero_shot_classification
from task_models import model_folders  # noqa: F401  (the session fixture)

EMBEDDINGS = np.load(os.path.join(tm.GOLDEN, "embeddings.npz"))


def demo(*args):
    return run_script("pipeline_demo.py", *args)


def results(result):
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def model(folder):
    tokenizer, hparams, params = load_model_folder(folder)
    return tokenizer, params, hparams


def test_text_classification_of_pairs_from_flags(model_folders, capsys):
    folder = model_folders["emotion"]
    pipeline_demo.main(["text-classification", "--model_name", folder, "--text", "is it good?", "--text_pair",
                        "a gripping film", "--text", "is it long?", "--text_pair", "two hours", "--top_k", "all"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = pipelines.text_classification(["is it good?", "is it long?"], *model(folder),
                                             text_pairs=["a gripping film", "two hours"], top_k=None)
    assert len(printed) == 2 and [[r["label"] for r in row] for row in printed] == [
        [r["label"] for r in row] for row in expected]
    np.testing.assert_allclose([[r["score"] for r in row] for row in printed],
                               [[r["score"] for r in row] for row in expected], rtol=1e-6)


def test_question_answering_from_a_json_lines_file(model_folders, tmp_path):
    questions, contexts = tm.qa_inputs()
    lines = [json.dumps({"question": q, "context": c}) for q, c in zip(questions[:3], contexts[:3])]
    (tmp_path / "in.jsonl").write_text("\n".join(lines[:2] + [""] + lines[2:]) + "\n", encoding="utf-8")
    printed = results(demo("question-answering", "--model_name", model_folders["qa"], "--input",
                           tmp_path / "in.jsonl", "--top_k", 2, "--max_seq_len", 64, "--doc_stride", 16,
                           "--no-align_to_words"))
    expected = pipelines.question_answering(questions[:3], contexts[:3], *model(model_folders["qa"]), top_k=2,
                                            max_seq_len=64, doc_stride=16, align_to_words=False)
    assert [[(a["start"], a["end"], a["answer"]) for a in row] for row in printed] == [
        [(a["start"], a["end"], a["answer"]) for a in row] for row in expected]


def test_token_classification_and_fill_mask(model_folders, capsys):
    pipeline_demo.main(["token-classification", "--model_name", model_folders["ner"], "--text", tm.EDGE_TEXTS[0],
                        "--aggregation_strategy", "first"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = pipelines.token_classification(tm.EDGE_TEXTS[:1], *model(model_folders["ner"]),
                                              aggregation_strategy="first")
    assert [[(e["entity_group"], e["word"], e["start"]) for e in row] for row in printed] == [
        [(e["entity_group"], e["word"], e["start"]) for e in row] for row in expected]
    pipeline_demo.main(["fill-mask", "--model_name", model_folders["mlm"], "--text", "The [MASK] sat on the [MASK].",
                        "--top_k", "2"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 1 and [len(fills) for fills in printed[0]] == [2, 2]  # two masks, two predictions each
    assert printed[0][0][0]["sequence"].startswith("[CLS] the ")


def test_stride_targets_and_inputs_without_a_pair(model_folders, capsys, tmp_path):
    review = tm.reviews([3])[0]  # 948 tokens: three windows
    pipeline_demo.main(["token-classification", "--model_name", model_folders["ner"], "--text", review,
                        "--aggregation_strategy", "simple", "--stride", "100"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = pipelines.token_classification([review], *model(model_folders["ner"]), "simple", stride=100)
    assert [[(e["word"], e["start"]) for e in row] for row in printed] == [
        [(e["word"], e["start"]) for e in row] for row in expected] and printed[0][-1]["end"] > 4000
    pipeline_demo.main(["fill-mask", "--model_name", model_folders["mlm"], "--text", "a [MASK] day", "--target", "good",
                        "--target", "bad"])
    assert sorted(f["token_str"] for f in json.loads(capsys.readouterr().out)) == ["bad", "good"]
    lines = [{"text": "is it good?", "text_pair": "a gripping film"}, {"text": "is it long?"}]
    (tmp_path / "in.jsonl").write_text("\n".join(map(json.dumps, lines)), encoding="utf-8")
    printed = results(demo("text-classification", "--model_name", model_folders["reranker"], "--input",
                           tmp_path / "in.jsonl"))
    expected = pipelines.text_classification(["is it good?", "is it long?"], *model(model_folders["reranker"]),
                                             text_pairs=["a gripping film", ""])  # no text_pair: [CLS] text [SEP]
    np.testing.assert_allclose([row[0]["score"] for row in printed], [row[0]["score"] for row in expected], rtol=1e-6)


def test_token_classification_of_words_from_a_file_and_flags(model_folders, tmp_path, capsys):
    words = [["José", "Müller", "met", "Ana", "in", "Zürich", "."], ["Ann", "", "Bob"]]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(w) for w in words), encoding="utf-8")
    expected = pipelines.token_classification(words, *model(model_folders["ner"]), "first", is_split_into_words=True)
    printed = results(demo("token-classification", "--model_name", model_folders["ner"], "--input",
                           tmp_path / "in.jsonl", "--aggregation_strategy", "first", "--is_split_into_words"))
    assert [[(e["word"], e["start"], e["end"]) for e in row] for row in printed] == [
        [(e["word"], e["start"], e["end"]) for e in row] for row in expected]
    pipeline_demo.main(["token-classification", "--model_name", model_folders["ner"], "--text", " ".join(words[0]),
                        "--aggregation_strategy", "first", "--is_split_into_words"])
    assert [e["start"] for e in json.loads(capsys.readouterr().out)] == [e["start"] for e in expected[0]]
    (tmp_path / "bad.jsonl").write_text('"Ann met Bob"\n', encoding="utf-8")
    code, out, err = main("token-classification", "--model_name", model_folders["ner"], "--input",
                          tmp_path / "bad.jsonl", "--is_split_into_words", capsys=capsys)
    assert code == 1 and err == f"error: {tmp_path / 'bad.jsonl'} line 1: expected a JSON array of words\n"


def test_zero_shot_classification_from_flags(model_folders, capsys):
    folder = model_folders["zero-shot-nli"]
    pipeline_demo.main(["zero-shot-classification", "--model_name", folder, "--text", "I need my phone fixed today!",
                        "--candidate_labels", "urgent, phone,tablet", "--multi_label"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = zero_shot_classification(["I need my phone fixed today!"], ["urgent", "phone", "tablet"],
                                        *model(folder), multi_label=True)
    assert [r["labels"] for r in printed] == [r["labels"] for r in expected]
    np.testing.assert_allclose(printed[0]["scores"], expected[0]["scores"], rtol=1e-6)


def test_feature_extraction_uses_the_models_own_settings(model_folders, capsys):
    texts = tm.embedding_texts()[:2]
    printed = results(demo("feature-extraction", "--model_name", model_folders["bge-classic"], "--text", texts[0],
                           "--text", texts[1]))
    np.testing.assert_allclose(printed, EMBEDDINGS["bge-classic"][:2], rtol=0, atol=1e-5)
    pipeline_demo.main(["feature-extraction", "--model_name", model_folders["bge-classic"], "--text", texts[0],
                        "--no-normalize", "--pooling", "mean"])
    raw = json.loads(capsys.readouterr().out)
    assert abs(np.linalg.norm(raw) - 1) > 0.01


def test_feature_extraction_takes_prompts(model_folders):
    texts = tm.embedding_texts()[:2]
    for args, case in ((["--prompt_name", "passage"], "prompted/passage"),
                       (["--prompt", "Summary: "], "prompted/given"), ([], "prompted")):  # []: the default prompt
        printed = results(demo("feature-extraction", "--model_name", model_folders["prompted"], "--text", texts[0],
                               "--text", texts[1], *args))
        np.testing.assert_allclose(printed, EMBEDDINGS[case][:2], rtol=0, atol=1e-5)


def test_feature_extraction_truncated_and_quantized(model_folders, capsys):
    texts = tm.embedding_texts()[:3]
    folder = model_folders["bge-classic"]
    for args, kwargs in ((["--truncate_dim", "8"], {"truncate_dim": 8}),
                         (["--precision", "int8"], {"precision": "int8"}),
                         (["--precision", "ubinary", "--truncate_dim", "16"],
                          {"precision": "ubinary", "truncate_dim": 16})):
        pipeline_demo.main(["feature-extraction", "--model_name", folder, *sum((["--text", t] for t in texts), []),
                            *args])
        printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        expected = pipelines.embed(texts, *model(folder), progress=False, **kwargs)
        if expected.dtype == np.float32:
            np.testing.assert_allclose(printed, expected, rtol=0, atol=1e-6)
        else:
            assert printed == expected.tolist()


def test_rerank_from_flags_and_from_a_json_lines_file(model_folders, tmp_path, capsys):
    folder = model_folders["reranker"]
    documents = ["Directed by Fritz Lang, it opens in 1936.", "The music is loud.", "A slow start, then a great hour."]
    pipeline_demo.main(["rerank", "--model_name", folder, "--query", "who directed it?",
                        *sum((["--document", d] for d in documents), []), "--top_k", "2", "--return_documents"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = rank("who directed it?", documents, *model(folder), top_k=2, return_documents=True)
    assert len(printed) == 1 and [h["corpus_id"] for h in printed[0]] == [h["corpus_id"] for h in expected]
    assert [h["text"] for h in printed[0]] == [h["text"] for h in expected]
    np.testing.assert_allclose([h["score"] for h in printed[0]], [h["score"] for h in expected], rtol=0, atol=1e-6)
    lines = [{"query": "who directed it?", "documents": documents},
             {"query": "is it long?", "documents": ["two hours", ""]}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    printed = results(demo("rerank", "--model_name", folder, "--input", tmp_path / "in.jsonl"))
    for line, hits in zip(lines, printed, strict=True):
        expected = rank(line["query"], line["documents"], *model(folder))
        assert [h["corpus_id"] for h in hits] == [h["corpus_id"] for h in expected] and "text" not in hits[0]
        np.testing.assert_allclose([h["score"] for h in hits], [h["score"] for h in expected], rtol=0, atol=1e-6)
    (tmp_path / "bad.jsonl").write_text('{"query": "who?", "documents": "not a list"}\n', encoding="utf-8")
    code, out, err = main("rerank", "--model_name", folder, "--input", tmp_path / "bad.jsonl", capsys=capsys)
    assert code == 1 and out == "" and err == ('error: ' + str(tmp_path / "bad.jsonl") + ' line 1: expected an object '
                                               '{"query": ..., "documents": [...]}\n')


def main(*argv, capsys):
    """(exit status, stdout, stderr) of pipeline_demo.main(argv), run in this process until it exits."""
    with pytest.raises(SystemExit) as exit_:
        pipeline_demo.main([str(a) for a in argv])
    code, (out, err) = exit_.value.code, capsys.readouterr()
    return (1, out, err + code + "\n") if isinstance(code, str) else (code, out, err)


@pytest.mark.parametrize("args, fragment", [
    (["fill-mask", "--text", "a [MASK]", "--aggregation_strategy", "max"],
     "--aggregation_strategy applies to token-classification, not to fill-mask"),
    (["question-answering", "--text", "who?"], "question-answering takes --question and --context, not --text"),
    (["fill-mask", "--text", "a [MASK]", "--stride", "8"], "--stride applies to token-classification, not to fill"),
    (["zero-shot-classification", "--text", "a"], "zero-shot-classification needs --candidate_labels"),
    (["fill-mask", "--text", "a [MASK]", "--multi_label"], "--multi_label applies to zero-shot-classification"),
    (["fill-mask"], "no input: give --text"),
    (["fill-mask", "--text", "a [MASK]", "--input", "x.jsonl"], "give the inputs with --input or with --text"),
    (["fill-mask", "--text", "a [MASK]", "--top", "3"], "unknown option --top: did you mean --top_k?"),  # no abbreviations
    (["fill-mask", "--text", "a [MASK]", "--top_k", "many"], "invalid value 'many': give an integer, or all"),
    (["rerank", "--text", "a"], "rerank takes --query and --document, not --text"),
    (["rerank", "--query", "a"], "rerank needs --query and at least one --document"),
    (["fill-mask", "--text", "a [MASK]", "--document", "b"], "--query and --document are for rerank, not fill-mask"),
    (["rerank", "--query", "a", "--document", "b", "--truncate_dim", "8"],
     "--truncate_dim applies to feature-extraction, not to rerank"),
    (["feature-extraction", "--text", "a", "--precision", "int4"], "argument --precision: invalid choice: 'int4'"),
])
def test_bad_options_are_one_usage_error_line(args, fragment, model_folders, capsys):
    code, out, err = main(*args, "--model_name", model_folders["mlm"], capsys=capsys)
    assert code == 2 and out == "" and err.startswith("error: ") and fragment in err and err.count("\n") == 1, err


@pytest.mark.parametrize("task, model_name, args, fragment", [
    ("fill-mask", "qa", ["--text", "a [MASK]"], "this checkpoint has no MLM head"),
    ("fill-mask", "mlm", ["--text", "a [MASK]", "--top_k", "0"], "top_k must be an integer >= 1, got 0"),
    ("question-answering", "qa", ["--question", "a?", "--question", "b?", "--context", "x", "--context", "y",
                                  "--context", "z"], "2 --question but 3 --context"),
    ("question-answering", "qa", ["--question", "who?", "--context", " "], "context 0 is empty"),
    ("text-classification", "emotion", ["--text", "a", "--text_pair", "b", "--text", "c"],
     "2 --text but 1 --text_pair"),
    ("feature-extraction", "bge-classic", ["--input", "missing.jsonl"], "cannot read --input missing.jsonl"),
    ("feature-extraction", "prompted", ["--text", "a", "--prompt_name", "doc"], "prompt_name 'doc' is not one of"),
    ("token-classification", "ner", ["--text", "a", "--stride", "8"], 'it needs an aggregation_strategy other than'),
    ("rerank", "zero-shot-nli", ["--query", "a", "--document", "b"], "rank needs a model with one label"),
    ("feature-extraction", "bge-classic", ["--text", "a", "--precision", "int8"],
     "quantization ranges need two or more embeddings"),
])
def test_bad_input_is_one_error_line(task, model_name, args, fragment, model_folders, capsys):
    code, out, err = main(task, "--model_name", model_folders[model_name], *args, capsys=capsys)
    assert code == 1 and out == "" and err.startswith("error: ") and fragment in err and err.count("\n") == 1, err


@pytest.mark.parametrize("lines, fragment", [
    (['"just a text"'], 'line 1: expected an object {"question": ..., "context": ...}'),
    (['{"question": "who?", "context": "Ann."}', "{not json"], "line 2 is not JSON"),
    (['{"question": "who?"}'], "line 1: expected an object"),
    (['{"question": "who?", "context": 3}'], "line 1: expected an object"),
    (["", "  "], "holds no input"),
])
def test_a_malformed_json_lines_file_is_one_error_line(lines, fragment, model_folders, tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = main("question-answering", "--model_name", model_folders["qa"], "--input",
                          tmp_path / "in.jsonl", capsys=capsys)
    assert code == 1 and out == "" and err.startswith("error: ") and fragment in err and err.count("\n") == 1, err


def test_a_user_mistake_in_a_whole_process_is_one_line_without_traceback(model_folders):
    result = demo("fill-mask", "--model_name", model_folders["qa"], "--text", "a [MASK]")
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["error: this checkpoint has no MLM head (it was saved without "
                                                  "cls.predictions weights)"]
    assert_usage_error(demo("fill-mask", "--model_name", model_folders["mlm"], "--tex", "a"), "--tex")


def test_help_names_every_task(capsys):
    code, out, _ = main("--help", capsys=capsys)
    assert code == 0
    for task in ("text-classification", "token-classification", "question-answering", "fill-mask",
                 "feature-extraction", "zero-shot-classification", "rerank"):
        assert task in out
