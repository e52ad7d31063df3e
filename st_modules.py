"""A sentence-transformers folder's modules (modules.json), with NumPy and the standard library alone: the
settings SentenceTransformer.encode applies after the Transformer (Pooling, Dense, Normalize, prompts), the
Dense modules' weights, and those Dense layers applied to pooled features (dense_modules).

    modules.json: Transformer -> Pooling (-> Dense ...) (-> Normalize)   e.g. LaBSE: cls, Dense 768 -> 768 tanh
"""
import json
import os
import pathlib
import posixpath

import numpy as np

from bert import gelu, relu
from checkpoint import WEIGHT_FILES, first_file, read_weights

# sentence-transformers' Pooling modes (its pooling_mode names, and the boolean keys of older configs) ->
# the pooling names of pipelines.embed. Other modes (weightedmean, lasttoken) are refused.
ST_POOLINGS = {"cls": "cls", "mean": "mean", "max": "max", "mean_sqrt_len_tokens": "mean_sqrt_len"}
ST_LEGACY_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                          "pooling_mode_mean_tokens": "mean",
                          "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                          "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
ST_MODULES = ("Transformer", "Pooling", "Dense", "Normalize")  # the module types numpy-bert runs, in this order
# what SentenceTransformer(folder) makes of a plain BERT checkpoint: mean pooling, no Normalize, no prompts
ST_PLAIN = {"pooling": "mean", "normalize": False, "max_seq_length": None, "do_lower_case": False, "prompts": {},
            "default_prompt_name": None, "include_prompt": True, "dense": []}
NO_LIMIT = 10 ** 20  # transformers writes model_max_length = 1e30 for "no limit"
# a Dense module's activation_function (torch's class) -> the function dense_modules applies (Tanh: the default)
ACTIVATIONS = {"torch.nn.modules.activation.Tanh": np.tanh, "torch.nn.modules.linear.Identity": lambda x: x,
               "torch.nn.modules.activation.ReLU": relu,
               "torch.nn.modules.activation.GELU": gelu}


def read_json(path, default=None):
    """The JSON in path (default when there is no such file), or a ValueError naming the file."""
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        if default is None:
            raise
        return default
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def _modules(folder):
    """modules.json's list of {"type", "path"}, each type cut to its class name, or [] without modules.json."""
    path = os.path.join(folder, "modules.json")
    modules = read_json(path, [])
    if not isinstance(modules, list) or not all(isinstance(m, dict) and "type" in m for m in modules):
        raise ValueError(f"{path} is not a sentence-transformers modules list")
    return [{"type": str(m["type"]).rsplit(".", 1)[-1], "full_type": m["type"], "path": m.get("path", "")}
            for m in modules]


def module_files(folder):
    """(required, optional) files of a sentence-transformers folder, relative to it: required, a list of
    alternatives (each a tuple of names, one of which must be there): each Pooling and Dense module's
    config.json, each Dense module's weights; optional, the Transformer module's sentence_bert_config.json and
    config_sentence_transformers.json (its prompts). Both empty without modules.json."""
    modules = _modules(folder)
    required, optional = [], ["config_sentence_transformers.json"] if modules else []
    for module in modules:
        if module["type"] in ("Pooling", "Dense"):
            required.append((posixpath.join(module["path"], "config.json"),))
        if module["type"] == "Dense":
            required.append(tuple(posixpath.join(module["path"], name) for name in WEIGHT_FILES))
        elif module["type"] == "Transformer":
            optional.append(posixpath.join(module["path"], "sentence_bert_config.json"))
    return required, optional


def sentence_transformers_settings(folder, tokenizer_config):
    """(settings, dense) for the modules of a sentence-transformers folder: the settings SentenceTransformer.encode
    uses, {"pooling": "cls" | "mean" | "max" | "mean_sqrt_len", "normalize": bool, "max_seq_length": int or None,
    "do_lower_case": bool, "prompts": {name: text}, "default_prompt_name": str or None, "include_prompt": bool,
    "dense": [{"activation": torch's class name, "residual": bool}, one per Dense module]} (include_prompt False:
    pooling leaves out the prompt's tokens), and the Dense modules' weights, [{"w": (in, out), "b": (out,),
    "residual": (in, out) with use_residual}]. (None, []) without modules.json, or for a cross-encoder (a
    Transformer module alone). Both layouts load: the hub's classic one (sentence_transformers.models.*,
    pooling_mode_*_token keys, max_seq_length in sentence_bert_config.json) and sentence-transformers 6's
    (pooling_mode, max_seq_length as tokenizer_config.json's model_max_length). Modules numpy-bert cannot run
    are a ValueError naming them."""
    modules, where = _modules(folder), os.path.join(folder, "modules.json")
    if not modules or [m["type"] for m in modules] == ["Transformer"]:
        return None, []
    for module in modules:
        if module["type"] not in ST_MODULES or not module["full_type"].startswith("sentence_transformers."):
            raise ValueError(f"{where}: module {module['full_type']} is not supported: numpy-bert runs "
                             "sentence-transformers' Transformer, Pooling, Dense and Normalize modules")
    kinds = [m["type"] for m in modules]
    n_dense = kinds.count("Dense")
    if kinds not in (["Transformer", "Pooling"] + ["Dense"] * n_dense + normalize for normalize in ([], ["Normalize"])):
        raise ValueError(f"{where}: modules {' -> '.join(kinds)} are not supported: numpy-bert runs Transformer "
                         "-> Pooling, then Dense modules and Normalize if any")
    transformer, pooling = modules[0], modules[1]
    if transformer["path"] not in ("", "."):
        raise ValueError(f"{where}: the model in a subfolder ({transformer['path']}) is not supported: load "
                         f"{os.path.join(folder, transformer['path'])} and pass embed its pooling")
    st_config = read_json(os.path.join(folder, "sentence_bert_config.json"), {})
    max_seq_length = st_config.get("max_seq_length")
    if max_seq_length is None:
        limit = tokenizer_config.get("model_max_length")
        max_seq_length = limit if isinstance(limit, int) and 0 < limit < NO_LIMIT else None
    pooling_path = os.path.join(folder, pooling["path"], "config.json")
    pooling_config = read_json(pooling_path)
    dense = [read_dense(os.path.join(folder, module["path"])) for module in modules[2:2 + n_dense]]
    return {"pooling": _pooling_mode(pooling_config, pooling_path), "normalize": kinds[-1] == "Normalize",
            "max_seq_length": max_seq_length, "do_lower_case": bool(st_config.get("do_lower_case", False)),
            **_prompts(os.path.join(folder, "config_sentence_transformers.json")),
            "include_prompt": bool(pooling_config.get("include_prompt", True)),
            "dense": [settings for settings, _ in dense]}, [weights for _, weights in dense]


def read_dense(folder):
    """({"activation", "residual"}, {"w", "b", ("residual")}) of the Dense module in folder, weights as (in, out)
    float32 (torch's Linear keeps (out, in)), or a ValueError naming what numpy-bert cannot run."""
    path = os.path.join(folder, "config.json")
    config = read_json(path)
    activation = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{path}: activation_function {activation!r} is not supported; numpy-bert has "
                         f"{', '.join(name.rsplit('.', 1)[-1] for name in ACTIVATIONS)}")
    for key in ("module_input_name", "module_output_name"):
        if config.get(key, "sentence_embedding") != "sentence_embedding":
            raise ValueError(f"{path}: {key} {config[key]!r} is not supported: numpy-bert's Dense modules act on "
                             "the sentence embedding")
    weights = first_file(folder, WEIGHT_FILES)
    state = read_weights(weights)
    n_in, n_out, residual = config.get("in_features"), config.get("out_features"), bool(config.get("use_residual"))
    expected = {"linear.weight": (n_out, n_in)}
    if config.get("bias", True):
        expected["linear.bias"] = (n_out,)
    if residual and n_in != n_out:  # the input is projected to the output's size
        expected["residual.weight"] = (n_out, n_in)
    shapes = {name: tuple(array.shape) for name, array in state.items()}
    if shapes != expected:
        raise ValueError(f"{weights} does not match {path}: it holds {shapes}, the config gives {expected}")
    layer = {"w": np.ascontiguousarray(state["linear.weight"].T, dtype=np.float32),
             "b": np.asarray(state.get("linear.bias", np.zeros(n_out)), dtype=np.float32)}
    if "residual.weight" in state:
        layer["residual"] = np.ascontiguousarray(state["residual.weight"].T, dtype=np.float32)
    return {"activation": activation, "residual": residual}, layer


def dense_modules(features, params, hparams):
    """features [N, H] through the folder's Dense modules, as sentence-transformers applies them: activation(x W
    + b), plus x (or x R, when the sizes differ) with use_residual; features unchanged without Dense modules."""
    for settings, layer in zip(hparams.get("sentence_transformers", {}).get("dense", []),
                               params.get("sentence_dense", [])):
        out = ACTIVATIONS[settings["activation"]](features @ layer["w"] + layer["b"])
        if settings["residual"]:
            out += features @ layer["residual"] if "residual" in layer else features
        features = out
    return features


def _prompts(path):
    """{"prompts": {name: text}, "default_prompt_name": a name of prompts or None} from the folder's
    config_sentence_transformers.json, as sentence-transformers reads them (a prompt of None is "")."""
    config = read_json(path, {})
    prompts, default = config.get("prompts") or {}, config.get("default_prompt_name")
    if not (isinstance(prompts, dict) and all(isinstance(v, (str, type(None))) for v in prompts.values())):
        raise ValueError(f"{path}: prompts must map names to texts")
    if default is not None and default not in prompts:
        raise ValueError(f"{path}: default_prompt_name {default!r} is not one of its prompts "
                         f"({', '.join(map(repr, prompts)) or 'there are none'})")
    return {"prompts": {name: text or "" for name, text in prompts.items()}, "default_prompt_name": default}


def _pooling_mode(config, path):
    """A Pooling module's config -> one of ST_POOLINGS' values, or a ValueError naming what is unsupported."""
    mode = config.get("pooling_mode")
    if mode is None:  # the boolean keys of sentence-transformers before 6; none set means mean
        mode = [m for key, m in ST_LEGACY_POOLING_KEYS.items() if config.get(key)] or ["mean"]
    modes = [mode] if isinstance(mode, str) else list(mode)
    if len(modes) != 1:
        raise ValueError(f"{path}: several poolings at once ({', '.join(modes)}) are not supported")
    if modes[0] not in ST_POOLINGS:
        raise ValueError(f"{path}: pooling {modes[0]!r} is not supported; numpy-bert has {', '.join(ST_POOLINGS)}")
    return ST_POOLINGS[modes[0]]
