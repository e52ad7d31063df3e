"""finetune_demo.py as a user runs it (a subprocess, the tiny test checkpoint, real sentences): per-epoch test
accuracy, the report, the saved folder; both argument forms; bad input; Ctrl-C."""
import os
import re
import signal
import subprocess
import sys

import datasets
import numpy as np
import pytest

import classify_demo
import finetune_demo
import model_folder
from conftest import GOLDEN_DIR, ROOT, review_sample
from distilbert_models import distilbert_folders  # noqa: F401  (the session fixture)
from pipelines import text_classification
from review_tasks import matched_pairs
from scripts import interruptible, run_script

TINY = os.path.join(GOLDEN_DIR, "tiny-gelu")


@pytest.fixture
def quick(rt_polarity):
    """A few seconds' fine-tuning of the tiny model on 60 real sentences (48 to train)."""
    return ["dataset_name", rt_polarity, "N", 60, "model_name", TINY, "epochs", 2, "batch_size", 8, "lr", 1e-3]


def demo(tmp_path, *args):
    return run_script("finetune_demo.py", *args, env={"HF_DATASETS_CACHE": str(tmp_path / "datasets-cache")})


def test_fine_tunes_reports_and_saves_a_folder_that_loads(tmp_path, quick):
    result = demo(tmp_path, *quick, "save_dir", tmp_path / "model")
    assert result.returncode == 0, result.stderr
    epochs = re.findall(r"^epoch (\d): train loss (\d\.\d{4}), test accuracy (\d\.\d{4}) \(\d+ s training\)$",
                        result.stdout, re.M)
    assert [e[0] for e in epochs] == ["1", "2"]
    report = re.search(r"^\s*accuracy\s+(\d\.\d+)\s+12$", result.stdout, re.M)  # 20% of 60 rows
    assert report and float(report[1]) == pytest.approx(float(epochs[-1][2]), abs=5e-5)
    assert "epoch 2/2" in result.stderr and "loss=" in result.stderr  # the tqdm bar with the running loss
    assert "saved the fine-tuned model to" in result.stdout
    tokenizer, hparams, params = model_folder.load_model_folder(tmp_path / "model")
    assert hparams["id2label"] == {"0": "0", "1": "1"} and params["classifier"]["w"].shape == (64, 2)


def test_both_argument_forms_and_classify_demo_pick_the_same_rows(quick, rt_polarity):
    bare = finetune_demo.parse_args([str(a) for a in quick] + ["seed", "3"])
    flags = finetune_demo.parse_args([f"--{a}" if i % 2 == 0 else str(a) for i, a in enumerate(quick)]
                                     + ["--seed", "3"])
    assert vars(bare) == vars(flags)
    classify = classify_demo.parse_args(["dataset_name", rt_polarity, "N", "60", "model_name", TINY, "seed", "3"])
    shared = ("dataset_name", "text_column", "label_column", "N", "test_ratio", "seed")
    assert {k: getattr(bare, k) for k in shared} == {k: getattr(classify, k) for k in shared}
    # the rows and the split come from the same functions in both demos
    assert finetune_demo.load_rows is classify_demo.load_rows
    assert finetune_demo.split_indices is classify_demo.split_indices
    labels = np.array([0, 1] * 30)
    train, test = finetune_demo.split_indices(labels, bare)
    assert len(test) == 12 and len(set(train) | set(test)) == 60


def test_fine_tunes_on_pairs_of_texts(tmp_path, imdb):
    """--text_pair_column: [CLS] first sentence [SEP] rest [SEP], a review's own rest or the next one's."""
    path = tmp_path / "matched.csv"
    matched_pairs(imdb, path)
    result = demo(tmp_path, "dataset_name", path, "text_column", "first_sentence", "text_pair_column", "rest",
                  "N", 60, "model_name", TINY, "epochs", 1, "batch_size", 8, "max_length", 64, "save_dir",
                  tmp_path / "model")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^epoch 1: train loss \d\.\d{4}, test accuracy \d\.\d{4}", result.stdout, re.M)
    assert re.search(r"^\s+other\s.*\n\s+same\s", result.stdout, re.M)
    tokenizer, hparams, params = model_folder.load_model_folder(tmp_path / "model")
    assert hparams["id2label"] == {"0": "other", "1": "same"}
    found = text_classification(["A fine film."], tokenizer, params, hparams, text_pairs=["I liked it."])
    assert found[0][0]["label"] in ("other", "same")
    bad = demo(tmp_path, "dataset_name", path, "text_column", "first_sentence", "text_pair_column", "rest2",
               "model_name", TINY)
    assert bad.returncode != 0 and "rest2" in bad.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("args, message", [
    (["text_pair_column", "text"], "text_pair_column is 'text', as another column"),
    (["epochs", "0"], "epochs must be at least 1"),
    (["lr", "-1"], "lr must be a positive number"),
    (["lr", "nan"], "lr must be a positive number"),
    (["warmup_ratio", "1.5"], "warmup_ratio must be between 0 and 1"),
    (["weight_decay", "-0.1"], "weight_decay must be 0 or more"),
    (["max_length", "2"], "max_length must be at least 3"),
    (["batch_size", "0"], "batch_size must be at least 1"),
    (["batches_per_group", "0"], "batches_per_group must be at least 1"),
    (["test_ratio", "1"], "test_ratio must be strictly between 0 and 1"),
    (["save_dir", ROOT], "already exists and is not an empty folder"),
])
def test_bad_options_are_one_error_line(args, message):
    with pytest.raises(SystemExit) as exit_info:
        finetune_demo.parse_args(args)
    assert str(exit_info.value.code).startswith("error: ") and message in str(exit_info.value.code)
    assert "\n" not in str(exit_info.value.code)


@pytest.mark.parametrize("model, fragment", [("nowhere", "nowhere"),
                                             ("distil", "fine-tuning trains BERT checkpoints, not distilbert ones")])
def test_a_bad_model_is_one_error_line_and_saves_nothing(model, fragment, tmp_path, monkeypatch, rt_polarity,
                                                         distilbert_folders):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    folder = distilbert_folders["distil-sentiment"] if model == "distil" else str(tmp_path / model)
    with pytest.raises(SystemExit) as exit_info:
        finetune_demo.main(["dataset_name", rt_polarity, "N", "20", "model_name", folder,
                            "save_dir", str(tmp_path / "model")])
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and fragment in message and "\n" not in message
    assert not (tmp_path / "model").exists()


def test_ctrl_c_stops_cleanly_and_leaves_no_folder(tmp_path, quick):
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "datasets-cache")}
    args = [str(a) for a in quick] + ["epochs", "50", "save_dir", str(tmp_path / "model")]
    process = interruptible([sys.executable, os.path.join(ROOT, "finetune_demo.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    while "epoch 1/50" not in seen:  # training has started
        character = process.stderr.read(1)
        assert character, seen
        seen += character
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("error: interrupted")
    assert os.listdir(tmp_path) == ["datasets-cache"]  # no model folder, no temporary folder
