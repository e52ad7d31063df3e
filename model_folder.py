"""A model folder on disk <-> (tokenizer, hparams, params), with NumPy and the standard library alone.

A folder holds config.json, the vocabulary (vocab.txt, or tokenizer.json alone), model.safetensors or
pytorch_model.bin, and optionally tokenizer_config.json: what the hub serves for a BERT model, and what
transformers' save_pretrained writes. A sentence-transformers folder also has modules.json and its modules'
files (st_modules.py): their settings become hparams["sentence_transformers"], Dense modules' weights
params["sentence_dense"].
load_model_folder reads one; save_pretrained writes a sequence or token classifier's,
save_sentence_transformer a sentence-transformers folder.
"""
import json
import os
import posixpath
import shutil
import tempfile

import numpy as np

import tokenization
from bert import config_with_defaults, model_config
from checkpoint import WEIGHT_FILES, first_file, ordinary_mode, read_weights, write_safetensors
from convert import distilbert_config, distilbert_state, layer_count, to_params, to_state_dict
from st_modules import ST_PLAIN, ST_POOLINGS, module_files, read_json, sentence_transformers_settings

VOCAB_FILES = ("vocab.txt", "tokenizer.json")  # in order of preference


def is_complete(folder):
    """Whether folder holds every file load_model_folder needs."""
    return all(first_file(folder, names) for names in [("config.json",), VOCAB_FILES, WEIGHT_FILES,
                                                         *module_files(folder)[0]])


def load_model_folder(folder, name=None):
    """(tokenizer, hparams, params) from a model folder. hparams is config.json with bert.CONFIG_DEFAULTS filled
    in, plus "sentence_transformers" for a sentence-transformers folder (sentence_transformers_settings).
    Lowercasing (and strip_accents, tokenize_chinese_chars) follows tokenizer_config.json; without it,
    tokenizer.json (when there is no vocab.txt), else a name (default: the folder's) containing "cased" but not
    "uncased" keeps case. Tokenizer settings numpy-bert cannot follow are a ValueError (check_tokenizer_files)."""
    folder = os.path.expanduser(os.fspath(folder))
    if not is_complete(folder):
        needs = f"config.json, {' or '.join(VOCAB_FILES)} and {' or '.join(WEIGHT_FILES)}"
        extra = module_files(folder)[0] if os.path.isfile(os.path.join(folder, "modules.json")) else []
        raise FileNotFoundError(f"{folder} needs {needs}" + "".join(f", {' or '.join(names)}" for names in extra))
    config = os.path.join(folder, "config.json")
    hparams = read_config(config)
    tokenizer_config = read_json(os.path.join(folder, "tokenizer_config.json"), {})
    tokenizer_json = read_json(os.path.join(folder, "tokenizer.json"), {})  # transformers reads it when it is there
    if os.path.isfile(os.path.join(folder, "vocab.txt")):
        name = os.path.basename(os.path.normpath(name or folder)).lower()
        vocab, normalizer = os.path.join(folder, "vocab.txt"), {
            "do_lower_case": "uncased" in name or "cased" not in name, "strip_accents": None,
            "tokenize_chinese_chars": True}
    else:
        vocab, normalizer = tokenizer_json_settings(tokenizer_json, os.path.join(folder, "tokenizer.json"))
    # as transformers: tokenizer_config.json's settings win over tokenizer.json's normalizer
    tokenizer = tokenization.FullTokenizer(vocab, **{key: tokenizer_config.get(key, value)
                                                     for key, value in normalizer.items()})
    check_tokenizer_files(folder, tokenizer_config, tokenizer_json, tokenizer)
    settings, dense = sentence_transformers_settings(folder, tokenizer_config)
    if settings is not None:
        hparams["sentence_transformers"] = settings
    weights, vocab = first_file(folder, WEIGHT_FILES), first_file(folder, VOCAB_FILES)
    check_config_and_vocab(config, hparams, vocab, tokenizer)
    state = read_weights(weights)
    if hparams.get("model_type") == "distilbert":
        state = distilbert_state(state, hparams["hidden_size"])
    params = params_agreeing(state, weights, config, hparams)
    if dense:  # sentence-transformers' Dense modules, after the pooling (st_modules.dense_modules)
        params["sentence_dense"] = dense
    return tokenizer, hparams, params


def read_config(path):
    """config.json as a dict with bert.CONFIG_DEFAULTS filled in, or a ValueError naming the file and what is
    wrong with it."""
    hparams = read_json(path)
    if isinstance(hparams, dict) and hparams.get("model_type") == "distilbert":
        hparams = distilbert_config(hparams)
    try:
        return config_with_defaults(hparams if isinstance(hparams, dict) else {})
    except ValueError as e:
        raise ValueError(f"{path} is not a BERT config: {e}") from None


def tokenizer_json_settings(data, path):
    """(vocabulary dict token -> id, {"do_lower_case", "strip_accents", "tokenize_chinese_chars"}) from data, the
    tokenizer.json (at path) of a BERT tokenizer, as the tokenizers library saves it: a WordPiece model with "##"
    continuations after HF's BertNormalizer."""
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise ValueError(f"{path} holds no WordPiece vocabulary: it is not a BERT tokenizer")
    if model.get("continuing_subword_prefix", "##") != "##":
        raise ValueError(f"{path}: continuing_subword_prefix {model['continuing_subword_prefix']!r} is not "
                         "supported (BERT's is '##')")
    normalizer = data.get("normalizer") or {}
    if normalizer.get("type") != "BertNormalizer":
        raise ValueError(f"{path}: normalizer {normalizer.get('type')!r} is not supported (BERT's is BertNormalizer)")
    if normalizer.get("clean_text", True) is False:
        raise ValueError(f"{path}: clean_text false is not supported: numpy-bert's tokenizer always cleans the text")
    return model["vocab"], {"do_lower_case": bool(normalizer.get("lowercase", True)),
                            "strip_accents": normalizer.get("strip_accents"),
                            "tokenize_chinese_chars": bool(normalizer.get("handle_chinese_chars", True))}


# tokenizer_config.json's (and special_tokens_map.json's) names of the special tokens, and BERT's tokens for them
SPECIAL_TOKENS = {"unk_token": tokenization.UNK, "sep_token": tokenization.SEP, "pad_token": tokenization.PAD,
                  "cls_token": tokenization.CLS, "mask_token": tokenization.MASK}


def check_tokenizer_files(folder, tokenizer_config, tokenizer_json, tokenizer):
    """A ValueError for tokenizer settings that HF's BertTokenizer follows and numpy-bert's tokenizer cannot, so
    that they are never silently ignored: special tokens other than BERT's, added tokens (added_tokens.json,
    added_tokens_decoder, tokenizer.json's added_tokens beyond BERT's special tokens), no basic tokenization,
    never_split words. tokenizer_config, tokenizer_json: those files' contents ({} for a missing one)."""
    config_path = os.path.join(folder, "tokenizer_config.json")
    map_path = os.path.join(folder, "special_tokens_map.json")
    for path, settings in ((config_path, tokenizer_config), (map_path, read_json(map_path, {}))):
        for key, standard in SPECIAL_TOKENS.items():
            value = settings.get(key)
            token = value.get("content") if isinstance(value, dict) else value
            if token is not None and token != standard:
                raise ValueError(f"{path}: {key} {token!r} is not supported: numpy-bert's tokenizer uses {standard}")
        if settings.get("additional_special_tokens"):
            raise ValueError(f"{path}: additional_special_tokens are not supported (numpy-bert's tokenizer keeps "
                             f"{', '.join(SPECIAL_TOKENS.values())} alone whole)")
    if tokenizer_config.get("do_basic_tokenize", True) is False or tokenizer_config.get("never_split"):
        raise ValueError(f"{config_path}: do_basic_tokenize false and never_split are not supported: numpy-bert's "
                         "tokenizer always splits on whitespace and punctuation")
    added = [*read_json(os.path.join(folder, "added_tokens.json"), {}),
             *(t.get("content") for t in (tokenizer_config.get("added_tokens_decoder") or {}).values()),
             *(t.get("content") for t in (tokenizer_json.get("added_tokens") if isinstance(tokenizer_json, dict)
                                          else None) or [])]
    extra = sorted({str(token) for token in added} - set(tokenizer.specials))
    if extra:
        raise ValueError(f"{folder}: added tokens ({', '.join(map(repr, extra[:5]))}"
                         f"{' ...' if len(extra) > 5 else ''}) are not supported: numpy-bert's tokenizer keeps "
                         f"{', '.join(SPECIAL_TOKENS.values())} alone whole")


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
        params = to_params(state, hparams["num_hidden_layers"], hparams.get("tie_word_embeddings", True))
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
        if "decoder" in m:  # untied
            found.append(spec("mlm/decoder", m["decoder"], "V H"))
    return found


def save_pretrained(folder, tokenizer, params, hparams):
    """Write a sequence classifier (params with "pooler" and "classifier", as training.init_classifier makes
    them), a token classifier (params with "classifier" and no "pooler", as training.init_token_classifier
    makes them), a question-answering model (params with "qa" and no "classifier", as
    training.init_question_answering makes them) or a masked language model (params with "mlm" and neither, as
    training.init_masked_lm makes them) as a model folder that transformers' BertForSequenceClassification
    (BertForTokenClassification, BertForQuestionAnswering, BertForMaskedLM) .from_pretrained and
    load_model_folder both load: model.safetensors (HF names, no other heads), config.json (hparams with that
    architecture; a classifier's with num_labels, and id2label / label2id from hparams["id2label"] or LABEL_0,
    LABEL_1, ...), vocab.txt and tokenizer_config.json. The folder is written under a temporary name beside it
    and renamed when complete, so an interrupted save leaves nothing; an existing folder must be empty (it is
    never overwritten)."""
    folder = _savable(folder, params, hparams, "save_pretrained")
    head = next((key for key in ("classifier", "qa") if key in params),
                "mlm" if set(params) == {"embeddings", "blocks", "mlm"} else None)
    if head is None:
        raise ValueError("params has no classifier or question-answering head and is not a masked language model "
                         "(the encoder and an MLM head alone): save_pretrained writes a sequence or token classifier, "
                         "a question-answering model or a masked language model (start from "
                         "training.init_classifier, init_token_classifier, init_question_answering or init_masked_lm)")
    kept = ("embeddings", "blocks", "pooler", head) if head == "classifier" else ("embeddings", "blocks", head)
    trained = [key for key in kept if key in params]  # BertForQuestionAnswering and BertForMaskedLM have no pooler
    architecture = {"qa": "BertForQuestionAnswering", "mlm": "BertForMaskedLM"}.get(head, (
        "BertForSequenceClassification" if "pooler" in params else "BertForTokenClassification"))
    config = ({"model_type": "bert", **hparams, "architectures": [architecture],
               "tie_word_embeddings": "decoder" not in params["mlm"]} if head == "mlm" else
              classifier_config(hparams, params[head]["w"].shape[1], architecture))
    state = to_state_dict({key: params[key] for key in trained})
    write_folder(folder, lambda tmp: write_bert_files(tmp, tokenizer, state, config, config["max_position_embeddings"]))


# sentence-transformers 6's module classes, as its modules.json names them
ST6_MODULES = {"Transformer": "sentence_transformers.base.modules.transformer.Transformer",
               "Pooling": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
               "Dense": "sentence_transformers.base.modules.dense.Dense",
               "Normalize": "sentence_transformers.base.modules.normalize.Normalize"}
EMBEDDING = {"module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"}


def save_sentence_transformer(folder, tokenizer, params, hparams):
    """Write params' encoder as a sentence-transformers folder, as sentence-transformers 6 saves one, that
    SentenceTransformer(folder) and load_model_folder both load and embed alike: the Transformer in the folder
    itself (model.safetensors with BertModel's names: embeddings, layers and the pooler if params has one, no
    task heads; config.json; vocab.txt; tokenizer_config.json with max_seq_length as model_max_length;
    sentence_bert_config.json), 1_Pooling, each Dense module (params["sentence_dense"]) and Normalize, if any,
    in a folder of its own, modules.json, and config_sentence_transformers.json with the prompts. The settings
    are hparams["sentence_transformers"] (load_model_folder's); without them (a plain BERT checkpoint),
    sentence-transformers' own for such a checkpoint: mean pooling, no Normalize, max_position_embeddings
    tokens. Written as save_pretrained writes (write_folder): whole or not at all, never over a non-empty
    folder."""
    folder = _savable(folder, params, hparams, "save_sentence_transformer")
    settings = {**ST_PLAIN, **hparams.get("sentence_transformers", {})}
    pooling = {ours: theirs for theirs, ours in ST_POOLINGS.items()}.get(settings["pooling"])
    if pooling is None:
        raise ValueError(f"pooling {settings['pooling']!r} has no sentence-transformers Pooling module; "
                         f"it has {', '.join(ST_POOLINGS.values())}")
    dense = list(zip(settings["dense"], params.get("sentence_dense", [])))
    if len(dense) != len(settings["dense"]) or len(dense) != len(params.get("sentence_dense", [])):
        raise ValueError(f'hparams["sentence_transformers"] has {len(settings["dense"])} Dense modules but '
                         f'params["sentence_dense"] {len(params.get("sentence_dense", []))}: they must agree')
    config = {"model_type": "bert", **{k: v for k, v in hparams.items() if k != "sentence_transformers"},
              "architectures": ["BertModel"]}
    encoder = to_state_dict({key: params[key] for key in ("embeddings", "blocks", "pooler") if key in params})
    state = {name.removeprefix("bert."): array for name, array in encoder.items()}  # as BertModel names them
    files, dense_paths = st_module_files(settings, pooling, config["hidden_size"])

    def write(tmp):
        write_bert_files(tmp, tokenizer, state, config, settings["max_seq_length"] or config["max_position_embeddings"])
        for path, value in files.items():
            os.makedirs(os.path.join(tmp, os.path.dirname(path)), exist_ok=True)
            write_json(os.path.join(tmp, path), value)
        for path, (module, layer) in zip(dense_paths, dense):
            write_dense(os.path.join(tmp, path), module, layer)

    write_folder(folder, write)


def st_module_files(settings, pooling, hidden_size):
    """({path in the folder: its JSON} for the sentence-transformers files beside the model's own, as
    sentence-transformers 6 writes them, [each Dense module's folder]); pooling: sentence-transformers' name."""
    modules = ["Transformer", "Pooling"] + ["Dense"] * len(settings["dense"]) + ["Normalize"] * settings["normalize"]
    paths = [f"{i}_{module}" if i else "" for i, module in enumerate(modules)]
    lowercase = {"do_lower_case": True} if settings["do_lower_case"] else {}  # the texts, before the tokenizer
    files = {"sentence_bert_config.json": {
                 "transformer_task": "feature-extraction", "module_output_name": "token_embeddings", **lowercase,
                 "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}},
             "config_sentence_transformers.json": {"model_type": "SentenceTransformer", "prompts": settings["prompts"],
                                                   "default_prompt_name": settings["default_prompt_name"]},
             "modules.json": [{"idx": i, "name": str(i), "path": path, "type": ST6_MODULES[module]}
                              for i, (module, path) in enumerate(zip(modules, paths))],
             posixpath.join(paths[1], "config.json"): {"embedding_dimension": hidden_size, "pooling_mode": pooling,
                                                       "include_prompt": bool(settings["include_prompt"])}}
    if settings["normalize"]:
        files[posixpath.join(paths[-1], "config.json")] = EMBEDDING
    return files, paths[2:2 + len(settings["dense"])]


def write_dense(folder, settings, layer):
    """A Dense module (settings {"activation", "residual"}, layer {"w": (in, out), "b", ("residual")}, as
    st_modules.read_dense reads them) into folder, made if need be: config.json, and model.safetensors with
    torch's Linear's (out, in) weights."""
    os.makedirs(folder, exist_ok=True)
    n_in, n_out = layer["w"].shape
    state = {"linear.weight": layer["w"].T, "linear.bias": layer["b"]}
    if "residual" in layer:
        state["residual.weight"] = layer["residual"].T
    write_safetensors(os.path.join(folder, "model.safetensors"),
                      {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in state.items()})
    write_json(os.path.join(folder, "config.json"), {
        "in_features": n_in, "out_features": n_out, "bias": True, "activation_function": settings["activation"],
        **EMBEDDING, **({"use_residual": True} if settings["residual"] else {})})


def _savable(folder, params, hparams, writer):
    """folder as an absolute path, after checking that params and hparams are a BERT model's."""
    model_config(params, hparams)
    if hparams.get("model_type", "bert") != "bert":
        raise ValueError(f"{writer} writes BERT checkpoints, not {hparams['model_type']} ones")
    return os.path.abspath(os.fspath(folder))


def write_folder(folder, write):
    """write(tmp) fills tmp, a new folder beside folder, which is then renamed to folder: an interrupted write
    leaves nothing. An existing folder must be empty (a FileExistsError otherwise: it is never overwritten)."""
    if os.path.exists(folder) and not (os.path.isdir(folder) and not os.listdir(folder)):
        raise FileExistsError(f"{folder} already exists and is not an empty folder: choose a new folder name")
    parent, name = os.path.split(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=".tmp")
    try:
        ordinary_mode(tmp)
        write(tmp)
        if os.path.isdir(folder):
            os.rmdir(folder)  # empty, checked above
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bert_files(folder, tokenizer, state, config, model_max_length):
    """model.safetensors (state: HF names -> arrays), config.json, tokenizer_config.json (the tokenizer's
    settings, model_max_length) and vocab.txt into folder."""
    write_safetensors(os.path.join(folder, "model.safetensors"), state, {"format": "pt"})
    write_json(os.path.join(folder, "config.json"), config)
    write_json(os.path.join(folder, "tokenizer_config.json"),
               {"tokenizer_class": "BertTokenizer", "do_lower_case": tokenizer.do_lower_case,
                "strip_accents": tokenizer.strip_accents, "tokenize_chinese_chars": tokenizer.tokenize_chinese_chars,
                "model_max_length": model_max_length})
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
        # a token listed twice in the original kept its last id; its first line keeps the row count
        f.writelines(tokenizer.inv_vocab.get(i, f"[unused_duplicate_{i}]") + "\n"
                     for i in range(max(tokenizer.inv_vocab) + 1))


def classifier_config(hparams, num_labels, architecture):
    """config.json of a model with a head of num_labels outputs (architecture: BertForSequenceClassification,
    BertForTokenClassification or BertForQuestionAnswering, whose head's two are the start and end logits)."""
    id2label = hparams.get("id2label")
    if not isinstance(id2label, dict) or sorted(int(i) for i in id2label) != list(range(num_labels)):
        id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
    id2label = {str(i): str(id2label.get(i, id2label.get(str(i)))) for i in range(num_labels)}
    return {"model_type": "bert", **hparams, "architectures": [architecture],
            "num_labels": num_labels, "id2label": id2label, "label2id": {v: int(k) for k, v in id2label.items()}}


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")
