"""finetune_mlm_demo.py as a user runs it (a subprocess, the tiny test checkpoint, real IMDB reviews): the blocks,
the test perplexity before training and after each epoch, the saved folder fill_mask loads; bad input."""
import json
import re

import model_folder
from conftest import GOLDEN_DIR
from pipelines import fill_mask
from scripts import assert_one_line_error, assert_usage_error, run_script

TINY = f"{GOLDEN_DIR}/tiny-gelu"


def demo(tmp_path, *args):
    return run_script("finetune_mlm_demo.py", *args, env={"HF_DATASETS_CACHE": str(tmp_path / "datasets-cache")})


def test_continues_pre_training_lowers_the_perplexity_and_saves_a_folder_fill_mask_loads(tmp_path, imdb):
    result = demo(tmp_path, "dataset_name", imdb, "N", 100, "model_name", TINY, "epochs", 2, "max_length", 64,
                  "lr", 3e-3, "batch_size", 16, "save_dir", tmp_path / "adapted")
    assert result.returncode == 0, result.stderr
    blocks = re.search(r"^(\d+) training blocks and (\d+) test blocks of 64 tokens \((\d+) masked test tokens\)$",
                       result.stdout, re.M)
    assert blocks and int(blocks[1]) > int(blocks[2]) > 0 and int(blocks[3]) > 0
    before = float(re.search(r"^before training: test perplexity (\d+\.\d{4})$", result.stdout, re.M)[1])
    epochs = [(int(e), float(p)) for e, p in re.findall(
        r"^epoch (\d): train loss \d+\.\d{4}, test perplexity (\d+\.\d{4}) \(\d+ s training\)$", result.stdout, re.M)]
    assert [e for e, _ in epochs] == [1, 2] and epochs[1][1] < epochs[0][1] < before
    assert "epoch 2/2" in result.stderr and "loss=" in result.stderr  # the tqdm bar
    assert json.loads((tmp_path / "adapted" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    tokenizer, hparams, params = model_folder.load_model_folder(tmp_path / "adapted")
    found = fill_mask(["this movie was [MASK] ."], tokenizer, params, hparams)
    assert len(found[0]) == 5 and found[0][0]["score"] > found[0][4]["score"]


def test_line_by_line_trains_on_each_text_as_a_sequence(tmp_path, rt_polarity):
    result = demo(tmp_path, "dataset_name", rt_polarity, "N", 200, "model_name", TINY, "line_by_line", "epochs", 2,
                  "max_length", 24, "lr", 3e-3, "batch_size", 16)  # a bare flag takes no value
    assert result.returncode == 0, result.stderr
    assert re.search(r"^160 training texts and 40 test texts of at most 24 tokens \(\d+ masked test tokens\)$",
                     result.stdout, re.M)
    before = float(re.search(r"^before training: test perplexity (\d+\.\d{4})$", result.stdout, re.M)[1])
    after = [float(p) for p in re.findall(r"^epoch \d: train loss \d+\.\d{4}, test perplexity (\d+\.\d{4})",
                                          result.stdout, re.M)]
    assert len(after) == 2 and after[1] < before


def test_whole_word_mask_on_texts_as_sequences(tmp_path, rt_polarity):
    result = demo(tmp_path, "dataset_name", rt_polarity, "N", 200, "model_name", TINY, "line_by_line",
                  "whole_word_mask", "epochs", 2, "max_length", 24, "lr", 3e-3, "batch_size", 16)
    assert result.returncode == 0, result.stderr
    before = float(re.search(r"^before training: test perplexity (\d+\.\d{4})$", result.stdout, re.M)[1])
    after = [float(p) for p in re.findall(r"^epoch \d: train loss \d+\.\d{4}, test perplexity (\d+\.\d{4})",
                                          result.stdout, re.M)]
    assert len(after) == 2 and after[1] < before
    plain = demo(tmp_path, "dataset_name", rt_polarity, "N", 200, "model_name", TINY, "line_by_line", "epochs", 1,
                 "max_length", 24, "lr", 3e-3, "batch_size", 16)
    masked = [re.search(r"\((\d+) masked test tokens\)", r.stdout)[1] for r in (result, plain)]
    assert masked[0] != masked[1]  # whole words: other test tokens masked


def test_bad_options_and_too_little_text_are_one_error_line(tmp_path, imdb, rt_polarity):
    result = demo(tmp_path, "dataset_name", imdb, "model_name", TINY, "mlm_probability", 1.5)
    assert_one_line_error(result, "error: mlm_probability must be strictly between 0 and 1, got 1.5")
    result = demo(tmp_path, "dataset_name", imdb, "model_name", TINY, "text_column", "review")
    assert_one_line_error(result, "error: ", "review")
    result = demo(tmp_path, "dataset_name", rt_polarity, "N", 4, "model_name", TINY, "max_length", 64)
    assert_one_line_error(result, "error: the texts hold", "fewer than one block of 64", "(max_length)",
                          "(N, test_ratio)")
    result = demo(tmp_path, "dataset_name", rt_polarity, "N", 10, "model_name", TINY, "line_by_line",
                  "mlm_probability", 1e-9)
    assert_one_line_error(result, "error: no test token was masked (mlm_probability 1e-09)")
    assert_usage_error(demo(tmp_path, "--block_size", 64), "--block_size")
    assert not (tmp_path / "adapted").exists()
