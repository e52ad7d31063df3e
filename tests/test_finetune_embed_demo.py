"""finetune_embed_demo.py as a user runs it (a subprocess, the tiny test checkpoint, pairs of real sentences):
the retrieval scores before and after each epoch, the saved sentence-transformers folder that embed loads; a
negative column; bad input."""
import csv
import re

import numpy as np
import pytest

import finetune_embed_demo
import model_folder
from conftest import GOLDEN_DIR
from pipelines import embed
from scripts import assert_one_line_error, run_script

TINY = f"{GOLDEN_DIR}/tiny-gelu"


@pytest.fixture(scope="module")
def pairs(rt_polarity, tmp_path_factory):
    """A CSV of 200 real sentences (question), each with itself missing every fourth word (answer), and
    another row's sentence (negative)."""
    with open(rt_polarity, encoding="utf-8", newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)][:200]
    path = tmp_path_factory.mktemp("data") / "pairs.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "answer", "other"])
        for i, text in enumerate(texts):
            writer.writerow([text, " ".join(w for k, w in enumerate(text.split()) if k % 4 != 3), texts[i - 1]])
    return path


def quick(path, *more):
    return ["dataset_name", path, "anchor_column", "question", "positive_column", "answer", "N", 200,
            "model_name", TINY, "epochs", 3, "batch_size", 16, "lr", 3e-3, *more]


def demo(tmp_path, *args):
    return run_script("finetune_embed_demo.py", *args, env={"HF_DATASETS_CACHE": str(tmp_path / "datasets-cache")})


def test_fine_tunes_on_pairs_scores_retrieval_and_saves_a_folder_embed_loads(tmp_path, pairs):
    result = demo(tmp_path, *quick(pairs, "save_dir", tmp_path / "model"))
    assert result.returncode == 0, result.stderr
    before = float(re.search(r"^before training: test MRR@10 (\d\.\d{4}), accuracy@1 \d\.\d{4}$", result.stdout,
                             re.M)[1])
    epochs = re.findall(r"^epoch (\d): train loss \d\.\d{4}, test MRR@10 (\d\.\d{4}) \(\d+ s training\)$",
                        result.stdout, re.M)
    assert [e for e, _ in epochs] == ["1", "2", "3"] and float(epochs[-1][1]) > before + 0.1
    final = re.search(r"^test retrieval: accuracy@1 (\S+), accuracy@3 \S+, accuracy@5 \S+, accuracy@10 \S+, "
                      r"MRR@10 (\d\.\d{4})$", result.stdout, re.M)
    assert final and final[2] == epochs[-1][1]
    assert "epoch 3/3" in result.stderr and "loss=" in result.stderr  # the tqdm bar
    tokenizer, hparams, params = model_folder.load_model_folder(tmp_path / "model")
    assert hparams["sentence_transformers"]["pooling"] == "mean"  # a plain BERT: mean pooling, as ST gives it
    vectors = embed(["a fine film .", "a fine film"], tokenizer, params, hparams, progress=False)
    assert vectors.shape == (2, 64) and float(vectors[0] @ vectors[1]) > 0


def test_a_negative_column_and_its_checks(tmp_path, pairs):
    result = demo(tmp_path, *quick(pairs, "negative_column", "other", "epochs", 1))
    assert result.returncode == 0, result.stderr
    assert_one_line_error(demo(tmp_path, *quick(pairs, "negative_column", "nowhere")), "error: ", "'nowhere'")
    with pytest.raises(SystemExit, match="also the anchor or positive column"):
        finetune_embed_demo.parse_args(quick(pairs, "negative_column", "answer"))


@pytest.mark.parametrize("args, message", [
    (["scale", "0"], "scale must be a positive number"),
    (["N", "1"], "N must be at least 2"),
    (["anchor_column", "x", "positive_column", "x"], "anchor_column and positive_column are both 'x'"),
])
def test_bad_options_are_one_error_line(args, message):
    with pytest.raises(SystemExit) as exit_info:
        finetune_embed_demo.parse_args(args)
    assert str(exit_info.value.code).startswith("error: ") and message in str(exit_info.value.code)


def test_retrieval_scores_rank_each_anchor_s_own_positive():
    positives = np.eye(12, dtype=np.float32)
    anchors = positives[[0, 2, 1] + list(range(3, 12))]  # anchors 1 and 2 find the other's positive first
    anchors[1, 1] = anchors[2, 2] = 0.5
    scores = finetune_embed_demo.retrieval_scores(anchors, positives)
    assert scores["accuracy@1"] == pytest.approx(10 / 12) and scores["accuracy@3"] == 1.0
    assert scores["MRR@10"] == pytest.approx((10 + 0.5 + 0.5) / 12)
