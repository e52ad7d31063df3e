"""A model folder whose files disagree (vocab.txt, config.json, the weights) is refused when it is loaded, with
one ValueError naming the file and the mismatch, never an error deep in the forward pass; `~` is expanded."""
import json
import os
import shutil

import numpy as np
import pytest

import checkpoint
import model_folder
import utils
from conftest import GOLDEN_DIR, minilm_dir
from scripts import assert_one_line_error, run_script

TINY = os.path.join(GOLDEN_DIR, "tiny-gelu")  # 2 layers, hidden 64, 4 heads, intermediate 128, 64 positions
KEY = "bert.encoder.layer.0.attention.self.key.weight"


def tiny_copy(tmp_path, vocab=None, **config_changes):
    """tiny-gelu's files in tmp_path/model, with config.json changed and another vocab.txt if asked."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.safetensors", "tokenizer_config.json"):
        os.symlink(os.path.join(TINY, name), folder / name)
    shutil.copy(vocab or os.path.join(TINY, "vocab.txt"), folder / "vocab.txt")
    with open(os.path.join(TINY, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    (folder / "config.json").write_text(json.dumps({**config, **config_changes}), encoding="utf-8")
    return folder


def refusal(folder):
    with pytest.raises(ValueError) as info:
        model_folder.load_model_folder(folder)
    return str(info.value)


def test_a_vocab_txt_from_another_model(tmp_path):
    folder = tiny_copy(tmp_path, vocab=os.path.join(minilm_dir(), "vocab.txt"))  # bert-base-uncased's, 30,522
    assert refusal(folder) == (f"{folder / 'vocab.txt'} has 30522 entries but {folder / 'config.json'} says "
                               "vocab_size 2506: is the vocab.txt from another model?")


def test_a_vocab_txt_shorter_than_vocab_size_is_fine(tmp_path):
    """Spare embedding rows beyond vocab.txt exist in real checkpoints (dbmdz's Italian BERTs, NVIDIA's)."""
    short = tmp_path / "short-vocab.txt"
    with open(os.path.join(TINY, "vocab.txt"), encoding="utf-8") as f:
        short.write_text("".join(f.readlines()[:2000]), encoding="utf-8")
    tokenizer, hparams, params = model_folder.load_model_folder(tiny_copy(tmp_path, vocab=short))
    assert len(tokenizer.vocab) == 2000 and params["embeddings"]["word"].shape == (2506, 64)


@pytest.mark.parametrize("changes, mismatch", [
    ({"vocab_size": 3000}, "embeddings/word has shape (2506, 64), but config.json's vocab_size 3000, hidden_size "
                           "64 give (3000, 64)"),
    ({"hidden_size": 32, "num_attention_heads": 2}, "embeddings/word has shape (2506, 64), but config.json's "
                                                    "vocab_size 2506, hidden_size 32 give (2506, 32)"),
    ({"intermediate_size": 100}, "blocks/0/ffn/fc/w has shape (64, 128), but config.json's hidden_size 64, "
                                 "intermediate_size 100 give (64, 100)"),
    ({"max_position_embeddings": 512}, "embeddings/position has shape (64, 64), but config.json's "
                                       "max_position_embeddings 512, hidden_size 64 give (512, 64)"),
    ({"type_vocab_size": 3}, "embeddings/token_type has shape (2, 64), but config.json's type_vocab_size 3, "
                             "hidden_size 64 give (3, 64)"),
])
def test_config_sizes_that_the_weights_do_not_have(tmp_path, changes, mismatch):
    folder = tiny_copy(tmp_path, **changes)
    assert refusal(folder) == (f"{folder / 'model.safetensors'} does not match {folder / 'config.json'}: "
                               f"{mismatch}: are they from the same model?")


@pytest.mark.parametrize("layers", [1, 3])
def test_a_layer_count_that_the_weights_do_not_have(tmp_path, layers):
    folder = tiny_copy(tmp_path, num_hidden_layers=layers)
    assert refusal(folder) == (f"{folder / 'model.safetensors'} has 2 encoder layers but {folder / 'config.json'} "
                               f"says num_hidden_layers {layers}: are they from the same model?")


@pytest.mark.parametrize("change, message", [
    (lambda state: {k.replace("bert.", "roberta."): v for k, v in state.items()},
     "the checkpoint has no embeddings.word_embeddings.weight: is it a BERT checkpoint?"),
    (lambda state: {**state, KEY: state[KEY][:, :32]},
     "encoder.layer.0.attention.self: the query, key and value weights differ in shape ((64, 64), (64, 32), (64, 64))"),
], ids=["not-bert", "key-cut"])
def test_weights_that_are_not_a_bert_layout(tmp_path, change, message):
    folder = tiny_copy(tmp_path)
    os.remove(folder / "model.safetensors")
    checkpoint.write_safetensors(folder / "model.safetensors",
                                 change(checkpoint.read_safetensors(os.path.join(TINY, "model.safetensors"))))
    assert refusal(folder) == f"{folder / 'model.safetensors'}: {message}"


def test_heads_that_do_not_divide_the_hidden_size(tmp_path):
    folder = tiny_copy(tmp_path, num_attention_heads=5)
    assert refusal(folder) == f"{folder / 'config.json'}: hidden_size 64 is not a multiple of num_attention_heads 5"


def test_a_model_path_with_a_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(TINY, tmp_path / "my-bert")
    assert model_folder.load_model_folder("~/my-bert")[1]["hidden_size"] == 64
    hparams = utils.load_tokenizer_hparams_and_params("~/my-bert", models_dir=str(tmp_path / "none"))[1]
    assert hparams["vocab_size"] == 2506
    assert not os.path.exists(tmp_path / "none")


def test_the_demos_say_it_in_one_line(tmp_path):
    folder = tiny_copy(tmp_path, vocab=os.path.join(minilm_dir(), "vocab.txt"))
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"review {i},{i % 2}\n" for i in range(20)), encoding="utf-8")
    expected = f"error: {folder / 'vocab.txt'} has 30522 entries but"
    assert_one_line_error(run_script("pretrain_demo.py", "--model_name", folder, "--text_a", "The cat sat."), expected)
    assert_one_line_error(run_script("classify_demo.py", "--model_name", folder, "--dataset_name", data, "--N", 20,
                                     env={"HF_DATASETS_CACHE": str(tmp_path / "cache")}), expected)


def with_tokenizer_files(tmp_path, **files):
    """tiny-gelu's folder with these files (name: its JSON, a dot in a name written as "__") instead."""
    folder = tiny_copy(tmp_path)
    for name, value in files.items():
        path = folder / name.replace("__", ".")
        path.unlink(missing_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")
    return folder


def test_tokenizer_settings_reach_the_tokenizer_and_are_saved(tmp_path):
    folder = with_tokenizer_files(tmp_path, tokenizer_config__json={
        "do_lower_case": True, "strip_accents": False, "tokenize_chinese_chars": False})
    tokenizer, hparams, params = model_folder.load_model_folder(folder)
    assert (tokenizer.do_lower_case, tokenizer.strip_accents, tokenizer.tokenize_chinese_chars) == (True, False, False)
    assert tokenizer.tokenize("Café 北京") == ["[UNK]", "[UNK]"]  # "café" keeps its accent; 北京 is one word
    assert model_folder.load_model_folder(TINY)[0].tokenize("Café 北京") == ["c", "##a", "##f", "##e", "北", "京"]
    params = {**params, "classifier": {"w": np.zeros((64, 2), np.float32), "b": np.zeros(2, np.float32)}}
    model_folder.save_pretrained(tmp_path / "saved", tokenizer, params, hparams)
    saved = model_folder.load_model_folder(tmp_path / "saved")[0]
    assert (saved.do_lower_case, saved.strip_accents, saved.tokenize_chinese_chars) == (True, False, False)


SPECIALS = {str(i): {"content": t, "special": True} for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])}


@pytest.mark.parametrize("files, message", [
    ({"tokenizer_config__json": {"mask_token": "[unused0]"}}, r"json: mask_token '\[unused0\]' is not supported"),
    ({"special_tokens_map__json": {"cls_token": {"content": "<s>"}}}, "cls_token '<s>' is not supported"),
    ({"tokenizer_config__json": {"additional_special_tokens": ["[E1]"]}}, "additional_special_tokens are not"),
    ({"tokenizer_config__json": {"do_basic_tokenize": False}}, "do_basic_tokenize false and never_split are not"),
    ({"tokenizer_config__json": {"never_split": ["[E1]"]}}, "do_basic_tokenize false and never_split are not"),
    ({"added_tokens__json": {"covidvax": 2506}}, r"added tokens \('covidvax'\) are not supported"),
    ({"tokenizer_config__json": {"added_tokens_decoder": {**SPECIALS, "2506": {"content": "[E1]"}}}},
     r"added tokens \('\[E1\]'\) are not supported"),
])
def test_tokenizer_settings_numpy_bert_cannot_follow_are_named(files, message, tmp_path):
    """HF's tokenizer would follow them, so loading without them would tokenize differently without a word."""
    with pytest.raises(ValueError, match=message):
        model_folder.load_model_folder(with_tokenizer_files(tmp_path, **files))


def test_bert_special_tokens_as_added_tokens_are_fine(tmp_path):
    folder = with_tokenizer_files(tmp_path, tokenizer_config__json={
        "do_lower_case": True, "added_tokens_decoder": SPECIALS, "mask_token": {"content": "[MASK]"}})
    assert model_folder.load_model_folder(folder)[0].tokenize("The [SEP]") == ["the", "[SEP]"]
