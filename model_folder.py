"""A model folder on disk -> (tokenizer, hparams, params), with NumPy and the standard library alone.

A folder holds config.json, vocab.txt, model.safetensors or pytorch_model.bin, and optionally
tokenizer_config.json: what the hub serves for a BERT model, and what transformers' save_pretrained writes.
"""
import json
import os
import pathlib

import tokenization
from bert import config_with_defaults
from checkpoint import read_safetensors, read_torch_checkpoint
from convert import to_params

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in order of preference


def is_complete(folder):
    """Whether folder holds every file load_model_folder needs."""
    return all(os.path.isfile(os.path.join(folder, name)) for name in ("config.json", "vocab.txt")) and any(
        os.path.isfile(os.path.join(folder, name)) for name in WEIGHT_FILES)


def load_model_folder(folder, name=None):
    """(tokenizer, hparams, params) from a model folder. hparams is config.json with bert.CONFIG_DEFAULTS filled
    in. Lowercasing follows tokenizer_config.json; without one, a name (default: the folder's) containing
    "cased" but not "uncased" keeps case."""
    folder = os.fspath(folder)
    if not is_complete(folder):
        raise FileNotFoundError(f"{folder} needs config.json, vocab.txt and {' or '.join(WEIGHT_FILES)}")
    hparams = read_config(os.path.join(folder, "config.json"))
    tokenizer_config = pathlib.Path(folder, "tokenizer_config.json")
    tokenizer_config = json.loads(tokenizer_config.read_text(encoding="utf-8")) if tokenizer_config.is_file() else {}
    name = os.path.basename(os.path.normpath(name or folder)).lower()
    lower = tokenizer_config.get("do_lower_case", "uncased" in name or "cased" not in name)
    tokenizer = tokenization.FullTokenizer(os.path.join(folder, "vocab.txt"), do_lower_case=bool(lower))
    weights = next(os.path.join(folder, w) for w in WEIGHT_FILES if os.path.isfile(os.path.join(folder, w)))
    state = read_safetensors(weights) if weights.endswith(".safetensors") else read_torch_checkpoint(weights)
    return tokenizer, hparams, to_params(state, hparams["num_hidden_layers"])


def read_config(path):
    """config.json as a dict with bert.CONFIG_DEFAULTS filled in, or a ValueError naming the file and what is
    wrong with it."""
    try:
        hparams = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    try:
        return config_with_defaults(hparams if isinstance(hparams, dict) else {})
    except ValueError as e:
        raise ValueError(f"{path} is not a BERT config: {e}") from None
