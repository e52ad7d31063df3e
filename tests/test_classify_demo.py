"""classify_demo.py end to end, as a subprocess: the real all-MiniLM-L6-v2 on real movie-review sentences."""
import csv
import json
import os
import re

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from classify_demo import embed_batch, parse_args
from conftest import GOLDEN_DIR
from pipelines import embed
from review_tasks import write_csv
from scripts import assert_one_line_error, copy_without_tensors, run_script
from utils import load_tokenizer_hparams_and_params

REPORT_ACCURACY = re.compile(r"^\s*accuracy\s+(\d\.\d+)\s+(\d+)$", re.M)


def classify(cache, *args):
    """Run the demo with its own datasets cache folder."""
    return run_script("classify_demo.py", *args, env={"HF_DATASETS_CACHE": str(cache)})


def accuracy_and_support(result):
    assert result.returncode == 0, result.stderr
    match = REPORT_ACCURACY.search(result.stdout)
    assert match, result.stdout
    return float(match[1]), int(match[2])


@pytest.fixture(scope="module")
def rt_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets-cache")


@pytest.fixture(scope="module")
def bare_pairs_run(rt_cache, minilm, rt_polarity):
    """All 2,000 sentences (1,000 per class), mean pooling, in the seed README's bare `key value` form, on an
    empty cache."""
    return classify(rt_cache, "dataset_name", rt_polarity, "N", 2000, "test_ratio", 0.2, "model_name", minilm,
                    "pooling", "mean")


@pytest.fixture(scope="module")
def rows(rt_polarity):
    """The first 20 real sentences of each class, for the quick runs."""
    with open(rt_polarity, encoding="utf-8", newline="") as f:
        all_rows = list(csv.DictReader(f))
    return [r for label in "01" for r in [r for r in all_rows if r["label"] == label][:20]]


def test_real_model_on_real_sentences_is_accurate(bare_pairs_run):
    accuracy, support = accuracy_and_support(bare_pairs_run)
    assert support == 400  # test_ratio 0.2 of 2,000
    assert accuracy >= 0.72
    assert "2000/2000" in bare_pairs_run.stderr  # embed's progress bar: the features were computed
    assert "Warning" not in bare_pairs_run.stderr  # e.g. no ConvergenceWarning


def flags_run(cache, minilm, rt_polarity):
    return classify(cache, "--dataset_name", rt_polarity, "--N", 2000, "--test_ratio", 0.2,
                    "--model_name", minilm, "--pooling", "mean")


def test_flags_form_computes_the_same_report(bare_pairs_run, tmp_path, minilm, rt_polarity):
    result = flags_run(tmp_path / "cache", minilm, rt_polarity)
    assert accuracy_and_support(result) == accuracy_and_support(bare_pairs_run)
    assert result.stdout == bare_pairs_run.stdout
    assert "2000/2000" in result.stderr


def test_rerun_reads_the_features_from_the_datasets_cache(bare_pairs_run, rt_cache, minilm, rt_polarity):
    result = flags_run(rt_cache, minilm, rt_polarity)  # the other form, same settings: same datasets fingerprint
    assert result.stdout == bare_pairs_run.stdout
    assert "embed" not in result.stderr  # no progress bar: nothing was recomputed


def test_jsonl_with_other_columns_too_large_n_and_two_processes(tmp_path, rows, minilm):
    path = tmp_path / "reviews.jsonl"
    records = [{"review": r["text"], "stars": int(r["label"])} for r in rows] + [{"review": None, "stars": 1}]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    result = classify(tmp_path / "cache", "--dataset_name", path, "--text_column", "review", "--label_column",
                      "stars", "--N", 100, "--test_ratio", 0.25, "--model_name", minilm, "--pooling", "cls",
                      "--num_proc", 2)
    assert accuracy_and_support(result)[1] == 10
    assert "note: left out 1 of 41 rows: no review or no stars" in result.stderr
    assert "note: N=100 is more than the 40 rows of the dataset: using all of them" in result.stderr
    assert result.stderr.count("20/20") >= 2  # one embed bar per process, 20 rows each


def test_features_default_to_the_models_own_settings(minilm):
    """Without --pooling, a sentence-transformers folder's own pooling, normalization and length limit."""
    assert parse_args(["--model_name", minilm]).pooling is None
    texts = ["a gripping film .", "word " * 300]
    out = embed_batch({"text": texts}, "text", minilm, "models", None, 2, ())
    tokenizer, hparams, params = load_tokenizer_hparams_and_params(minilm)
    np.testing.assert_array_equal(out["features"], embed(texts, tokenizer, params, hparams, pooling="mean",
                                                         normalize=True, max_length=256, progress=False))
    assert out["truncated"].tolist() == [False, True]  # 302 tokens: over all-MiniLM-L6-v2's 256


def test_parquet_with_class_names(tmp_path, rows, minilm):
    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    data = Dataset.from_dict({"text": [r["text"] for r in rows], "label": [int(r["label"]) for r in rows]},
                             features=features)
    data.to_parquet(tmp_path / "reviews.parquet")
    result = classify(tmp_path / "cache", "dataset_name", tmp_path / "reviews.parquet", "N", 40,
                      "model_name", minilm, "pooling", "mean")
    assert accuracy_and_support(result)[1] == 8
    assert re.search(r"^ +negative( +[01]\.\d{4}){3} +4$", result.stdout, re.M)  # ClassLabel names
    assert re.search(r"^ +positive( +[01]\.\d{4}){3} +4$", result.stdout, re.M)


def test_bare_pairs_become_flags():
    args = parse_args(["N", "10", "--seed", "3", "pooling", "mean", "--test_ratio=0.5", "model-name", "m",
                       "--text-column", "review"])
    assert (args.N, args.seed, args.pooling, args.test_ratio) == (10, 3, "mean", 0.5)
    assert (args.model_name, args.text_column) == ("m", "review")


@pytest.mark.parametrize("args, message", [
    (["--model_name", "no-such-bert"], "unknown model 'no-such-bert'"),
    (["--dataset_name", "missing.csv"], "dataset file not found: missing.csv"),
    (["--test_ratio", 0], "test_ratio must be strictly between 0 and 1, got 0.0"),
    (["--test_ratio", 1], "test_ratio must be strictly between 0 and 1, got 1.0"),
    (["--dataset_name", "some/hub-dataset"], "could not load dataset 'some/hub-dataset'"),
    (["seed", -1], "seed must be between 0 and 4294967295, got -1"),
    (["text_column", "label"], "text_column and label_column are both 'label'"),
])
def test_bad_arguments_are_one_clear_line(tmp_path, rows, minilm, args, message):
    data = write_csv(tmp_path / "ok.csv", ["text", "label"], [(r["text"], r["label"]) for r in rows])
    result = classify(tmp_path / "cache", "--dataset_name", data, "--N", 40, "--model_name", minilm, *args)
    assert_one_line_error(result, message)


def test_dataset_without_text_or_label_columns(tmp_path, rows, minilm):
    data = write_csv(tmp_path / "renamed.csv", ["sentence", "y"], [(r["text"], r["label"]) for r in rows])
    result = classify(tmp_path / "cache", "dataset_name", data, "N", 40, "model_name", minilm)
    assert_one_line_error(result, "has no column 'text', 'label' (it has sentence, y)", "--text_column")


@pytest.mark.parametrize("make_row, args, fragments", [
    (lambda i, r: (i, i % 2), [], ["the text column 'text' must hold strings", "int64", "--text_column"]),
    (lambda i, r: (r["text"], [0.5, 1.25][i % 2]), [],
     ["the label column 'label' must hold class labels (ints or strings)", "continuous", "--label_column"]),
    (lambda i, r: (r["text"], ["neg", "pos"][int(r["label"])]), ["text_column", "label", "label_column", "text"],
     ["40 of the 40 classes in the label column 'text' have a single row", " and 37 more)"]),
], ids=["numbers-as-texts", "continuous-labels", "swapped-columns"])
def test_columns_that_hold_no_texts_or_no_classes(tmp_path, rows, minilm, make_row, args, fragments):
    data = write_csv(tmp_path / "data.csv", ["text", "label"], [make_row(i, r) for i, r in enumerate(rows)])
    result = classify(tmp_path / "cache", "dataset_name", data, "N", 40, "model_name", minilm, *args)
    assert_one_line_error(result, *fragments)
    assert len(result.stderr) < 300  # a few of the classes, not all 40 texts


def test_a_single_class(tmp_path, rows, minilm):
    data = write_csv(tmp_path / "positive.csv", ["text", "label"], [(r["text"], 1) for r in rows])
    result = classify(tmp_path / "cache", "dataset_name", data, "N", 40, "model_name", minilm)
    assert_one_line_error(result, "the labels have 1 class(es) among 40 rows; need at least two")


def test_default_pooler_on_a_checkpoint_without_one(tmp_path, rows):
    folder = copy_without_tensors(os.path.join(GOLDEN_DIR, "tiny-gelu"), tmp_path / "no-pooler", "bert.pooler.")
    data = write_csv(tmp_path / "ok.csv", ["text", "label"], [(r["text"], r["label"]) for r in rows])
    result = classify(tmp_path / "cache", "dataset_name", data, "N", 40, "model_name", folder)
    assert_one_line_error(result, "this checkpoint has no pooler: use pooling 'cls' or 'mean'")
    result = classify(tmp_path / "cache", "dataset_name", data, "N", 40, "model_name", folder, "pooling", "cls")
    assert accuracy_and_support(result)[1] == 8
