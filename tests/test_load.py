"""load_tokenizer_hparams_and_params on local folders: the real MiniLM, the params layout, casing, errors."""
import json
import os
import pathlib
import re
import shutil
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

import checkpoint
import convert
import utils
from conftest import GOLDEN_DIR


def test_real_minilm_loads_into_the_params_layout(minilm):
    tokenizer, hparams, params = utils.load_tokenizer_hparams_and_params(minilm)
    with open(os.path.join(minilm, "config.json"), encoding="utf-8") as f:
        assert {k: v for k, v in hparams.items() if k != "sentence_transformers"} == json.load(f)
    assert hparams["sentence_transformers"]["pooling"] == "mean"  # from modules.json and 1_Pooling/config.json
    assert tokenizer.do_lower_case and set(params) == {"embeddings", "blocks", "pooler"}  # no MLM / NSP heads
    reference = load_file(os.path.join(minilm, "model.safetensors"))
    assert len(params["blocks"]) == 6
    for i, block in enumerate(params["blocks"]):
        p = f"encoder.layer.{i}."
        qkv = [reference[p + f"attention.self.{n}.weight"].T for n in ("query", "key", "value")]
        assert np.array_equal(block["attn"]["qkv"]["w"], np.concatenate(qkv, axis=1))
        assert np.array_equal(block["ffn"]["fc"]["w"], reference[p + "intermediate.dense.weight"].T)
        assert np.array_equal(block["ln_2"]["g"], reference[p + "output.LayerNorm.weight"])
    assert np.array_equal(params["pooler"]["w"], reference["pooler.dense.weight"].T)
    assert np.array_equal(params["embeddings"]["token_type"], reference["embeddings.token_type_embeddings.weight"])
    assert "torch" not in sys.modules


def test_params_shapes_and_dtypes_follow_the_readme_layout():
    _, h, params = utils.load_tokenizer_hparams_and_params(os.path.join(GOLDEN_DIR, "tiny-gelu"))
    H, I, V = h["hidden_size"], h["intermediate_size"], h["vocab_size"]
    P, T = h["max_position_embeddings"], h["type_vocab_size"]
    shapes = {"embeddings/word": (V, H), "embeddings/position": (P, H), "embeddings/token_type": (T, H),
              "embeddings/ln/g": (H,), "attn/qkv/w": (H, 3 * H), "attn/qkv/b": (3 * H,), "attn/proj/w": (H, H),
              "ln_1/b": (H,), "ffn/fc/w": (H, I), "ffn/fc/b": (I,), "ffn/proj/w": (I, H), "ln_2/g": (H,),
              "pooler/w": (H, H), "mlm/transform/w": (H, H), "mlm/ln/g": (H,), "mlm/bias": (V,), "nsp/w": (H, 2),
              "nsp/b": (2,)}
    block = params["blocks"][h["num_hidden_layers"] - 1]
    for name, shape in shapes.items():
        first, *rest = name.split("/")
        array = block[first] if first in block else params[first]
        for key in rest:
            array = array[key]
        assert array.shape == shape and array.dtype == np.float32, name


def test_a_local_folder_without_tokenizer_config_takes_casing_from_its_name(tmp_path):
    cased, uncased = tmp_path / "my-bert-cased", tmp_path / "my-bert-uncased"
    for folder in (cased, uncased):
        shutil.copytree(os.path.join(GOLDEN_DIR, "tiny-gelu-legacy"), folder)
    assert not utils.load_tokenizer_hparams_and_params(str(cased))[0].do_lower_case
    assert utils.load_tokenizer_hparams_and_params(str(uncased))[0].do_lower_case


def test_a_local_folder_missing_files_says_which(tmp_path):
    shutil.copytree(os.path.join(GOLDEN_DIR, "tiny-gelu"), tmp_path / "model")
    os.remove(tmp_path / "model" / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="needs config.json, vocab.txt or tokenizer.json and model.safetensors "
                                                "or pytorch"):
        utils.load_tokenizer_hparams_and_params(str(tmp_path / "model"))


def test_a_checkpoint_lacking_a_layer_is_refused(tmp_path):
    shutil.copytree(os.path.join(GOLDEN_DIR, "tiny-gelu"), tmp_path / "model")
    with open(tmp_path / "model" / "config.json", encoding="utf-8") as f:
        config = json.load(f)
    config["num_hidden_layers"] = 3  # the checkpoint has 2
    with open(tmp_path / "model" / "config.json", "w", encoding="utf-8") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match="has 2 encoder layers but .*num_hidden_layers 3"):
        utils.load_tokenizer_hparams_and_params(str(tmp_path / "model"))


@pytest.mark.parametrize("name", ["not a name", "no-such-bert", "owner/"])
def test_names_that_are_neither_known_nor_hub_ids_nor_folders(name, tmp_path):
    with pytest.raises(ValueError, match="unknown model .*use a hub id owner/name, a local directory, or one of"):
        utils.load_tokenizer_hparams_and_params(name, models_dir=str(tmp_path))


@pytest.mark.parametrize("name", ["../escape", "owner/name/extra", "./relative/missing", "/data/bert-base-uncased",
                                  "~/bert", os.path.join(GOLDEN_DIR, "tiny-gelv")])
def test_a_path_to_no_folder_is_file_not_found(name, tmp_path):
    with pytest.raises(FileNotFoundError, match="no model directory " + re.escape(name)):
        utils.load_tokenizer_hparams_and_params(name, models_dir=str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_a_path_object_is_a_folder_name():
    tokenizer, hparams, _ = utils.load_tokenizer_hparams_and_params(pathlib.Path(GOLDEN_DIR, "tiny-gelu"))
    assert hparams["hidden_size"] == 64 and tokenizer.do_lower_case


@pytest.mark.parametrize("config, message", [
    ("{bad", "is not valid JSON"),
    ("[1, 2]", "is not a BERT config: no integer vocab_size, hidden_size"),
    ('{"vocab_size": 2506}', "is not a BERT config: no integer hidden_size, num_hidden_layers"),
])
def test_a_bad_config_json_is_named(config, message, tmp_path):
    shutil.copytree(os.path.join(GOLDEN_DIR, "tiny-gelu"), tmp_path / "model")
    (tmp_path / "model" / "config.json").write_text(config, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "model" / "config.json")) + " " + message):
        utils.load_tokenizer_hparams_and_params(str(tmp_path / "model"))


@pytest.mark.parametrize("name", ["tiny-gelu", "tiny-gelu-legacy"])
def test_to_state_dict_inverts_to_params(name):
    """The HF names written back are exactly the checkpoint's, without the MLM decoder's copy of the word
    embeddings (tied) and with bert. prefixes."""
    folder = os.path.join(GOLDEN_DIR, name)
    weights = [f for f in ("model.safetensors", "pytorch_model.bin") if os.path.isfile(os.path.join(folder, f))][0]
    path = os.path.join(folder, weights)
    state = (checkpoint.read_safetensors if weights.endswith("safetensors") else checkpoint.read_torch_checkpoint)(path)
    params = convert.to_params(state, 2)
    back = convert.to_state_dict(params)
    legacy = {"gamma": "weight", "beta": "bias", "decoder.bias": "bias"}  # the MLM bias under its older name too
    expected = {re.sub(r"(gamma|beta|decoder\.bias)$", lambda m: legacy[m[0]],
                       k if k.startswith(("bert.", "cls.")) else "bert." + k): v
                for k, v in state.items() if k != "cls.predictions.decoder.weight"}
    assert back.keys() == expected.keys()
    for key, value in expected.items():
        assert back[key].dtype == np.float32 and back[key].flags.c_contiguous
        assert np.array_equal(back[key], value), key
    assert convert.to_params(back, 2).keys() == params.keys()
