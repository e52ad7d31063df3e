"""finetune_ner_demo.py as a user runs it (a subprocess, the tiny test checkpoint, real sentences tagged by a
rule): per-epoch entity F1, the report, the saved folder that the token-classification pipeline loads; a CoNLL
file and a parquet file of ClassLabel tags; bad input."""
import csv
import json
import re

import datasets
import pytest

import finetune_ner_demo
import model_folder
from conftest import GOLDEN_DIR, ROOT
from pipelines import token_classification
from review_tasks import tagged, write_tagged_conll
from scripts import assert_one_line_error, run_script

TINY = f"{GOLDEN_DIR}/tiny-gelu"
CLASS_NAMES = ["O", "B-DET", "I-DET", "B-PUNCT"]  # a ClassLabel's order, not sorted


@pytest.fixture(scope="module")
def sentences(rt_polarity):
    with open(rt_polarity, encoding="utf-8", newline="") as f:
        rows = [row["text"].split() for row in csv.DictReader(f)][:400]
    return [(words, tagged(words)) for words in rows]


@pytest.fixture(scope="module")
def conll(rt_polarity, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.conll"
    write_tagged_conll(rt_polarity, path, 400)
    return path


def quick(dataset, *more):
    return ["dataset_name", dataset, "N", 400, "model_name", TINY, "epochs", 2, "batch_size", 8, "lr", 5e-3, *more]


def demo(tmp_path, *args):
    return run_script("finetune_ner_demo.py", *args, env={"HF_DATASETS_CACHE": str(tmp_path / "datasets-cache")})


def test_fine_tunes_a_tagger_on_a_conll_file_reports_and_saves_a_folder_the_pipeline_loads(tmp_path, conll):
    result = demo(tmp_path, *quick(conll, "save_dir", tmp_path / "tagger"))
    assert result.returncode == 0, result.stderr
    epochs = [(int(e), float(f)) for e, f in re.findall(
        r"^epoch (\d): train loss \d\.\d{4}, test entity F1 (\d\.\d{4}) \(\d+ s training\)$", result.stdout, re.M)]
    assert [e for e, _ in epochs] == [1, 2] and epochs[-1][1] > 0.1
    micro = [line.split() for line in result.stdout.splitlines() if line.strip().startswith("micro avg")]
    assert len(micro) == 1 and float(micro[0][4]) == pytest.approx(epochs[-1][1], abs=6e-5)
    assert {line.split()[0] for line in result.stdout.splitlines() if line.strip()} >= {"DET", "PUNCT"}
    assert "token accuracy" in result.stdout and "saved the fine-tuned model to" in result.stdout
    assert "epoch 2/2" in result.stderr and "loss=" in result.stderr  # the tqdm bar
    config = json.loads((tmp_path / "tagger" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert list(config["id2label"].values()) == ["B-DET", "B-PUNCT", "I-DET", "O"]  # sorted, as run_ner sorts
    tokenizer, hparams, params = model_folder.load_model_folder(tmp_path / "tagger")
    found = token_classification(["the film is a mess ."], tokenizer, params, hparams, aggregation_strategy="simple")
    assert {e["entity_group"] for e in found[0]} <= {"DET", "PUNCT"} and found[0]


def test_reads_a_parquet_file_of_class_label_tags_in_their_order(tmp_path, sentences):
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=CLASS_NAMES))})
    path = tmp_path / "ner.parquet"
    datasets.Dataset.from_dict({"tokens": [w for w, _ in sentences],
                                "ner_tags": [[CLASS_NAMES.index(t) for t in tags] for _, tags in sentences]},
                               features=features).to_parquet(path)
    result = demo(tmp_path, *quick(path, "epochs", 1, "save_dir", tmp_path / "tagger"))
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "tagger" / "config.json").read_text())
    assert list(config["id2label"].values()) == CLASS_NAMES


def test_the_same_seed_picks_the_same_sentences_and_split(conll):
    args = finetune_ner_demo.parse_args(["dataset_name", str(conll), "N", "30", "seed", "4"])
    first, again = finetune_ner_demo.load_data(args), finetune_ner_demo.load_data(args)
    words, tag_ids, names, train, test = first
    assert words == again[0] and list(test) == list(again[4]) and len(words) == 30 and len(test) == 6
    assert sorted(set(train) | set(test)) == list(range(30))
    assert all(len(w) == len(t) for w, t in zip(words, tag_ids)) and names == ["B-DET", "B-PUNCT", "I-DET", "O"]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_data_is_one_error_line(tmp_path):
    cases = [(write(tmp_path / "no_tag.conll", "the B-DET\nfilm\n"), "line 2: 'film' has no tag"),
             (write(tmp_path / "empty.txt", "\n-DOCSTART- O\n\n"), "has no sentence"),
             (write(tmp_path / "strings.jsonl", '{"tokens": "the film", "ner_tags": [0, 1]}\n'),
              "'tokens' must hold a list of strings per sentence"),
             (write(tmp_path / "floats.jsonl", '{"tokens": ["the"], "ner_tags": [0.5]}\n'),
              "'ner_tags' must hold a list of strings or integers"),
             (write(tmp_path / "short.jsonl", '{"tokens": ["the", "film"], "ner_tags": ["O"]}\n'),
              "sentence 0 has 2 words and 1 tags"),
             (write(tmp_path / "other.jsonl", '{"words": ["the"], "ner_tags": ["O"]}\n'), "--words_column"),
             (tmp_path / "missing.conll", "missing.conll")]
    for path, fragment in cases:
        assert_one_line_error(demo(tmp_path, *quick(path)), "error: ", fragment)


@pytest.mark.parametrize("args, message", [
    (["N", "1"], "N must be at least 2"),
    (["test_ratio", "0"], "test_ratio must be strictly between 0 and 1"),
    (["epochs", "0"], "epochs must be at least 1"),
    (["save_dir", ROOT], "already exists and is not an empty folder"),
])
def test_bad_options_are_one_error_line(args, message):
    with pytest.raises(SystemExit) as exit_info:
        finetune_ner_demo.parse_args(args)
    assert str(exit_info.value.code).startswith("error: ") and message in str(exit_info.value.code)
