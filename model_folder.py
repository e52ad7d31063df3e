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
from convert import layer_count, to_params

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in order of preference


def is_complete(folder):
    """Whether folder holds every file load_model_folder needs."""
    return all(os.path.isfile(os.path.join(folder, name)) for name in ("config.json", "vocab.txt")) and any(
        os.path.isfile(os.path.join(folder, name)) for name in WEIGHT_FILES)


def load_model_folder(folder, name=None):
    """(tokenizer, hparams, params) from a model folder. hparams is config.json with bert.CONFIG_DEFAULTS filled
    in. Lowercasing follows tokenizer_config.json; without one, a name (default: the folder's) containing
    "cased" but not "uncased" keeps case."""
    folder = os.path.expanduser(os.fspath(folder))
    if not is_complete(folder):
        raise FileNotFoundError(f"{folder} needs config.json, vocab.txt and {' or '.join(WEIGHT_FILES)}")
    config = os.path.join(folder, "config.json")
    hparams = read_config(config)
    tokenizer_config = pathlib.Path(folder, "tokenizer_config.json")
    tokenizer_config = json.loads(tokenizer_config.read_text(encoding="utf-8")) if tokenizer_config.is_file() else {}
    name = os.path.basename(os.path.normpath(name or folder)).lower()
    lower = tokenizer_config.get("do_lower_case", "uncased" in name or "cased" not in name)
    tokenizer = tokenization.FullTokenizer(os.path.join(folder, "vocab.txt"), do_lower_case=bool(lower))
    weights = next(os.path.join(folder, w) for w in WEIGHT_FILES if os.path.isfile(os.path.join(folder, w)))
    check_config_and_vocab(config, hparams, os.path.join(folder, "vocab.txt"), tokenizer)
    state = read_safetensors(weights) if weights.endswith(".safetensors") else read_torch_checkpoint(weights)
    return tokenizer, hparams, params_agreeing(state, weights, config, hparams)


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


# --- Do the folder's files agree? ---------------------------------------------------------------------
# A vocab.txt, config.json or weights file from another model would otherwise fail deep in the forward pass,
# or silently give wrong answers.

def check_config_and_vocab(config, hparams, vocab, tokenizer):
    """A ValueError unless config.json's heads divide its hidden size and every id of vocab.txt is below its
    vocab_size. A vocab.txt with fewer entries than vocab_size is fine: some checkpoints (dbmdz's Italian BERTs,
    NVIDIA's, padded to a multiple of 8) keep spare embedding rows."""
    if hparams["hidden_size"] % hparams["num_attention_heads"]:
        raise ValueError(f"{config}: hidden_size {hparams['hidden_size']} is not a multiple of "
                         f"num_attention_heads {hparams['num_attention_heads']}")
    n_entries = max(tokenizer.vocab.values()) + 1  # a token's id is its line number
    if n_entries > hparams["vocab_size"]:
        raise ValueError(f"{vocab} has {n_entries} entries but {config} says vocab_size {hparams['vocab_size']}: "
                         "is the vocab.txt from another model?")


def params_agreeing(state, weights, config, hparams):
    """to_params(state) after checking that its layers and every array's shape match config.json; a ValueError
    naming both files and the first mismatch otherwise."""
    n_layers = layer_count(state)
    if n_layers and n_layers != hparams["num_hidden_layers"]:  # none at all: to_params says what is missing
        raise ValueError(f"{weights} has {n_layers} encoder layers but {config} says num_hidden_layers "
                         f"{hparams['num_hidden_layers']}: are they from the same model?")
    try:
        params = to_params(state, hparams["num_hidden_layers"])
    except ValueError as e:
        raise ValueError(f"{weights}: {e}") from None
    for path, array, expected, sizes in _shapes(params, hparams):
        if array.shape != expected:
            raise ValueError(f"{weights} does not match {config}: {path} has shape {array.shape}, but {sizes} "
                             f"give {expected}: are they from the same model?")
    return params


def _shapes(params, h):
    """(params path, array, the shape config.json implies, which sizes those are) for every array."""
    names = {"V": "vocab_size", "H": "hidden_size", "I": "intermediate_size", "P": "max_position_embeddings",
             "T": "type_vocab_size"}
    sizes = {key: h[name] for key, name in names.items()}

    def spec(path, array, dims):  # dims such as "H 3H": config sizes, times a factor, or a literal number
        shape = tuple(int(d[:-1] or 1) * sizes[d[-1]] if d[-1] in sizes else int(d) for d in dims.split())
        keys = dict.fromkeys(names[d[-1]] for d in dims.split() if d[-1] in sizes)
        return path, array, shape, "config.json's " + ", ".join(f"{k} {h[k]}" for k in keys)

    def dense(path, p, n_in, n_out):
        return [spec(path + "/w", p["w"], f"{n_in} {n_out}"), spec(path + "/b", p["b"], n_out)]

    def ln(path, p):
        return [spec(path + "/g", p["g"], "H"), spec(path + "/b", p["b"], "H")]

    e = params["embeddings"]
    found = [spec("embeddings/word", e["word"], "V H"), spec("embeddings/position", e["position"], "P H"),
             spec("embeddings/token_type", e["token_type"], "T H"), *ln("embeddings/ln", e["ln"])]
    for i, block in enumerate(params["blocks"]):
        p = f"blocks/{i}/"
        found += [*dense(p + "attn/qkv", block["attn"]["qkv"], "H", "3H"),
                  *dense(p + "attn/proj", block["attn"]["proj"], "H", "H"), *ln(p + "ln_1", block["ln_1"]),
                  *dense(p + "ffn/fc", block["ffn"]["fc"], "H", "I"),
                  *dense(p + "ffn/proj", block["ffn"]["proj"], "I", "H"), *ln(p + "ln_2", block["ln_2"])]
    for head, n_out in {"pooler": "H", "nsp": "2", "qa": "2", "classifier": None}.items():
        if head in params:  # a classifier has as many outputs as its checkpoint has labels
            found += dense(head, params[head], "H", n_out or str(params[head]["w"].shape[-1]))
    if "mlm" in params:
        m = params["mlm"]
        found += [*dense("mlm/transform", m["transform"], "H", "H"), *ln("mlm/ln", m["ln"]),
                  spec("mlm/bias", m["bias"], "V")]
    return found
