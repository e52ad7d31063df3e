"""A model folder on disk <-> (tokenizer, hparams, params), with NumPy and the standard library alone.

A folder holds config.json, vocab.txt, model.safetensors or pytorch_model.bin, and optionally
tokenizer_config.json: what the hub serves for a BERT model, and what transformers' save_pretrained writes.
load_model_folder reads one; save_pretrained writes a sequence classifier's.
"""
import json
import os
import pathlib
import shutil
import tempfile

import tokenization
from bert import config_with_defaults, model_config
from checkpoint import ordinary_mode, read_safetensors, read_torch_checkpoint, write_safetensors
from convert import to_params, to_state_dict

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


def save_pretrained(folder, tokenizer, params, hparams):
    """Write a sequence classifier (params with "pooler" and "classifier", as training.init_classifier makes
    them) as a model folder that transformers' BertForSequenceClassification.from_pretrained and
    load_model_folder both load: model.safetensors (HF names, no MLM/NSP/other heads), config.json (hparams
    with architectures BertForSequenceClassification, num_labels, and id2label / label2id from
    hparams["id2label"] or LABEL_0, LABEL_1, ...), vocab.txt and tokenizer_config.json. The folder is written
    under a temporary name beside it and renamed when complete, so an interrupted save leaves nothing; an
    existing folder must be empty (it is never overwritten)."""
    model_config(params, hparams)
    folder = os.path.abspath(os.fspath(folder))
    missing = [head for head in ("pooler", "classifier") if head not in params]
    if missing:
        raise ValueError(f"params has no {' and no '.join(missing)}: save_pretrained writes a sequence classifier "
                         "(start from training.init_classifier)")
    if os.path.exists(folder) and not (os.path.isdir(folder) and not os.listdir(folder)):
        raise FileExistsError(f"{folder} already exists and is not an empty folder: choose a new folder name")
    config = classifier_config(hparams, params["classifier"]["w"].shape[1])
    parent, name = os.path.split(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=".tmp")
    try:
        ordinary_mode(tmp)
        trained = {key: params[key] for key in ("embeddings", "blocks", "pooler", "classifier")}
        write_safetensors(os.path.join(tmp, "model.safetensors"), to_state_dict(trained), {"format": "pt"})
        write_json(os.path.join(tmp, "config.json"), config)
        write_json(os.path.join(tmp, "tokenizer_config.json"),
                   {"tokenizer_class": "BertTokenizer", "do_lower_case": tokenizer.do_lower_case,
                    "model_max_length": config["max_position_embeddings"]})
        with open(os.path.join(tmp, "vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
            # a token listed twice in the original kept its last id; its first line keeps the row count
            f.writelines(tokenizer.inv_vocab.get(i, f"[unused_duplicate_{i}]") + "\n"
                         for i in range(max(tokenizer.inv_vocab) + 1))
        if os.path.isdir(folder):
            os.rmdir(folder)  # empty, checked above
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def classifier_config(hparams, num_labels):
    """config.json of a BertForSequenceClassification with num_labels labels."""
    id2label = hparams.get("id2label")
    if not isinstance(id2label, dict) or sorted(int(i) for i in id2label) != list(range(num_labels)):
        id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
    id2label = {str(i): str(id2label.get(i, id2label.get(str(i)))) for i in range(num_labels)}
    return {"model_type": "bert", **hparams, "architectures": ["BertForSequenceClassification"],
            "num_labels": num_labels, "id2label": id2label, "label2id": {v: int(k) for k, v in id2label.items()}}


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")
