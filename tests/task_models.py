"""What the pipeline golden files are made of, the same on every machine: random-weight task models and
sentence-transformers folders written from seeded NumPy (one small encoder shared by all, heads of their own,
the real bert-base-uncased vocabulary of all-MiniLM-L6-v2), and the inputs they run on (real sentences from
../shared/data, plus a few written to probe edge cases). tests/make_golden_pipelines.py and
tests/make_golden_qa.py run transformers / sentence-transformers on these; the tests write the same folders
into a temporary directory and compare with the stored outputs."""
import csv
import gzip
import json
import os
import shutil

import numpy as np
import pytest

from conftest import GOLDEN_DIR, minilm_dir, review_sample  # first: it puts the repository on sys.path
from checkpoint import write_safetensors  # noqa: I001
from synthetic import synthetic_state_dict

GOLDEN = os.path.join(GOLDEN_DIR, "pipelines")
ENCODER = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=1, intermediate_size=64,
               hidden_act="gelu", max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12)
BIO = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
# name -> (architecture, head: (HF prefix, its biases), extra config.json keys). The heads' weights are random;
# their biases were chosen once (by running the model on these inputs) to centre each label's logits, so that
# the predicted labels vary from input to input ("O" is favoured, as in real text).
TASK_MODELS = {
    "sentiment": ("BertForSequenceClassification", ("classifier", [7.18, -4.97]), {}),  # no id2label: LABEL_0, _1
    "emotion": ("BertForSequenceClassification", ("classifier", [0.08, 4.46, -2.84]),
                {"id2label": {"0": "sad", "1": "neutral", "2": "happy"}}),
    "reranker": ("BertForSequenceClassification", ("classifier", [-2.06]), {"id2label": {"0": "LABEL_0"}}),
    "topics": ("BertForSequenceClassification", ("classifier", [-1.89, -1.03, -1.98, 2.95]),
               {"id2label": {"0": "acting", "1": "plot", "2": "music", "3": "visuals"},
                "problem_type": "multi_label_classification"}),
    "ner": ("BertForTokenClassification", ("classifier", [4.37, 7.53, 1.15, -5.44, -7.35, 0.79, 2.09, -3.44, 5.74]),
            {"id2label": dict(enumerate(BIO))}),
    "qa": ("BertForQuestionAnswering", ("qa_outputs", [0.1, -0.1]), {}),
    "mlm": ("BertForMaskedLM", None, {}),
    # NLI models for zero-shot classification: entailment last, and first (then contradiction is the last label)
    "zero-shot-nli": ("BertForSequenceClassification", ("classifier", [-1.75, 0.0, 1.75]),
                      {"id2label": {"0": "contradiction", "1": "neutral", "2": "entailment"}}),
    "zero-shot-nli-first": ("BertForSequenceClassification", ("classifier", [3.5, 0.0, -3.5]),
                            {"id2label": {"0": "ENTAILMENT", "1": "NEUTRAL", "2": "CONTRADICTION"}}),
}
ST_CLASSIC = "sentence_transformers.models."
ST6 = {"Transformer": "sentence_transformers.base.modules.transformer.Transformer",
       "Pooling": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
       "Normalize": "sentence_transformers.base.modules.normalize.Normalize",
       "Dense": "sentence_transformers.base.modules.dense.Dense"}
# name -> (layout, pooling mode, Normalize?, tokenizer lowercases?, sentence_bert_config.json, model_max_length)
ST_MODELS = {
    "bge-classic": ("classic", "cls", True, True, {"max_seq_length": 64, "do_lower_case": False}, 512),
    "bge-st6": ("st6", "cls", True, True, {}, 48),
    "lowercase-max": ("classic", "max", False, False, {"max_seq_length": 40, "do_lower_case": True}, 512),
    "sqrt-len": ("classic", "mean_sqrt_len_tokens", True, True, {}, 512),
    "prompted": ("st6", "mean", True, True, {}, 64),
    "instructed-mean": ("classic", "mean", False, True, {"max_seq_length": 40}, 512),
    "instructed-cls": ("st6", "cls", False, True, {}, 48),
    "labse-like": ("classic", "cls", True, False, {"max_seq_length": 64}, 512),
    "projected": ("st6", "mean", False, True, {}, 64),
}
# name -> its Dense modules after the pooling: (out_features, torch activation class, use_residual) each
ST_DENSE = {"labse-like": [(32, "torch.nn.modules.activation.Tanh", False)],
            "projected": [(24, "torch.nn.modules.linear.Identity", True),
                          (24, "torch.nn.modules.activation.GELU", True),
                          (16, "torch.nn.modules.activation.ReLU", False)]}
# name -> (config_sentence_transformers.json's prompts and default_prompt_name, the Pooling's include_prompt)
ST_PROMPTS = {
    "prompted": ({"query": "query: ", "passage": "passage: ", "empty": None}, "query", True),
    "instructed-mean": ({"query": "Represent this review for finding similar ones: ", "doc": ""}, None, False),
    "instructed-cls": ({"query": "Instruct: find reviews like this one\nQuery: "}, "query", False),
}
# "model/case" -> SentenceTransformer.encode's prompt arguments, beside each model's own default
PROMPT_CASES = {"prompted/passage": {"prompt_name": "passage"}, "prompted/empty": {"prompt_name": "empty"},
                "prompted/given": {"prompt": "Summary: "}, "instructed-mean/query": {"prompt_name": "query"},
                "instructed-mean/given": {"prompt": "Instruct: find the sentiment\nReview: "},
                "instructed-cls/given": {"prompt": "Classify: "}}


def encoder_state():
    """The shared encoder and MLM head, HF BertForPreTraining names."""
    return synthetic_state_dict(ENCODER, seed=14, dense_std=0.2)


def task_state(name, encoder):
    """The state dict of TASK_MODELS[name], as its HF class names its weights."""
    architecture, head, _ = TASK_MODELS[name]
    keep = ("bert.pooler.",) if architecture == "BertForSequenceClassification" else ()
    keep += ("cls.predictions.",) if architecture == "BertForMaskedLM" else ()
    state = {k: v for k, v in encoder.items() if not k.startswith(("bert.pooler.", "cls.")) or k.startswith(keep)}
    if head:
        prefix, biases = head
        rng = np.random.default_rng(sorted(TASK_MODELS).index(name))
        state[prefix + ".weight"] = ((rng.random((len(biases), ENCODER["hidden_size"]), dtype=np.float32) - 0.5)
                                     * np.float32(12 ** 0.5))  # standard deviation 1
        state[prefix + ".bias"] = np.array(biases, dtype=np.float32)
    return state


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)


def write_task_model(folder, name, encoder=None):
    """A model folder as transformers saves TASK_MODELS[name]: config.json, model.safetensors, vocab.txt,
    tokenizer_config.json."""
    architecture, _, extra = TASK_MODELS[name]
    return write_model_folder(folder, {"architectures": [architecture], "model_type": "bert", **ENCODER, **extra},
                              task_state(name, encoder or encoder_state()))


# cross-encoders saved by sentence-transformers: the reranker with an activation named in config.json
CROSS_ENCODER_ACTIVATIONS = {"reranker-identity": "torch.nn.modules.linear.Identity",
                             "reranker-tanh": "torch.nn.modules.activation.Tanh"}


def write_cross_encoder(folder, activation_fn, encoder=None):
    """The reranker's folder, its config.json naming activation_fn as sentence-transformers 4+ saves it."""
    write_task_model(folder, "reranker", encoder)
    path = os.path.join(folder, "config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    write_json(path, {**config, "sentence_transformers": {"activation_fn": activation_fn, "version": "6.2.0"}})
    return folder


def write_model_folder(folder, config, state, **tokenizer_config):
    """folder with config.json (label2id from its id2label), model.safetensors of state, the uncased vocab.txt of
    bert-base-uncased, and tokenizer_config.json (lowercasing, 512 tokens, and tokenizer_config's keys)."""
    os.makedirs(folder, exist_ok=True)
    if "id2label" in config:
        config = {**config, "label2id": {label: int(i) for i, label in config["id2label"].items()}}
    write_json(os.path.join(folder, "config.json"), config)
    write_safetensors(os.path.join(folder, "model.safetensors"), state)
    shutil.copy(os.path.join(minilm_dir(), "vocab.txt"), folder)
    write_json(os.path.join(folder, "tokenizer_config.json"),
               {"do_lower_case": True, "model_max_length": 512, **tokenizer_config})
    return folder


def write_st_model(folder, name, encoder=None):
    """A sentence-transformers folder for ST_MODELS[name] with the shared encoder (BertModel names), in the hub's
    classic layout (vocab.txt, pooling_mode_*_token keys; modules.json names 2_Normalize but, as on the hub,
    there is no such folder) or as sentence-transformers 6 saves it (tokenizer.json only, pooling_mode,
    max_seq_length as model_max_length)."""
    layout, pooling, normalize, lower, st_config, max_length = ST_MODELS[name]
    encoder = encoder or encoder_state()
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, "config.json"), {"architectures": ["BertModel"], "model_type": "bert", **ENCODER})
    write_safetensors(os.path.join(folder, "model.safetensors"),
                      {k.removeprefix("bert."): v for k, v in encoder.items() if k.startswith("bert.")})
    dense = ST_DENSE.get(name, [])
    modules = ["Transformer", "Pooling"] + ["Dense"] * len(dense) + ["Normalize"] * normalize
    paths = [f"{i}_{m}" if i else "" for i, m in enumerate(modules)]
    write_json(os.path.join(folder, "modules.json"), [
        {"idx": i, "name": str(i), "path": paths[i], "type": ST_CLASSIC + m if layout == "classic" else ST6[m]}
        for i, m in enumerate(modules)])
    n_in = ENCODER["hidden_size"]
    for i, (n_out, activation, residual) in enumerate(dense):
        write_dense(os.path.join(folder, paths[2 + i]), n_in, n_out, activation, residual, seed=i)
        n_in = n_out
    tokenizer_config = {"do_lower_case": lower, "model_max_length": max_length}
    prompts, default_prompt_name, include_prompt = ST_PROMPTS.get(name, ({}, None, True))
    write_json(os.path.join(folder, "config_sentence_transformers.json"),
               {"prompts": prompts, "default_prompt_name": default_prompt_name, "similarity_fn_name": "cosine"})
    if layout == "classic":
        shutil.copy(os.path.join(minilm_dir(), "vocab.txt"), folder)
        write_json(os.path.join(folder, "1_Pooling", "config.json"), {
            "word_embedding_dimension": ENCODER["hidden_size"], "include_prompt": include_prompt,
            **{key: mode == pooling for key, mode in LEGACY_POOLING_KEYS.items()}})
    else:
        with open(os.path.join(minilm_dir(), "tokenizer.json"), encoding="utf-8") as f:
            tokenizer = json.load(f)
        tokenizer["normalizer"]["lowercase"] = lower
        tokenizer["truncation"] = tokenizer["padding"] = None
        write_json(os.path.join(folder, "tokenizer.json"), tokenizer)
        tokenizer_config.update({"backend": "tokenizers", "tokenizer_class": "BertTokenizer", "strip_accents": None})
        write_json(os.path.join(folder, "1_Pooling", "config.json"), {
            "embedding_dimension": ENCODER["hidden_size"], "pooling_mode": pooling, "include_prompt": include_prompt})
        if normalize:
            write_json(os.path.join(folder, paths[-1], "config.json"), {
                "module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"})
        st_config = {"transformer_task": "feature-extraction", "modality_config": {
            "text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            "module_output_name": "token_embeddings", **st_config}
    write_json(os.path.join(folder, "tokenizer_config.json"), tokenizer_config)
    write_json(os.path.join(folder, "sentence_bert_config.json"), st_config)
    return folder


def write_dense(folder, n_in, n_out, activation, residual, seed):
    """A Dense module as sentence-transformers saves it: config.json and model.safetensors (torch's Linear
    weights, (out, in), standard deviation 1 / sqrt(in), a projection of the input for a residual of another size)."""
    rng = np.random.default_rng(100 + seed)
    state = {"linear.weight": rng.standard_normal((n_out, n_in)).astype(np.float32) / np.float32(n_in ** 0.5),
             "linear.bias": rng.standard_normal(n_out).astype(np.float32) * np.float32(0.1)}
    if residual and n_in != n_out:
        state["residual.weight"] = rng.standard_normal((n_out, n_in)).astype(np.float32) / np.float32(n_in ** 0.5)
    write_json(os.path.join(folder, "config.json"), {"in_features": n_in, "out_features": n_out, "bias": True,
                                                     "activation_function": activation,
                                                     **({"use_residual": True} if residual else {})})
    write_safetensors(os.path.join(folder, "model.safetensors"), state)


LEGACY_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
                       "pooling_mode_max_tokens": "max", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens"}


@pytest.fixture(scope="session")
def model_folders(tmp_path_factory):
    """{name: folder} for every model of TASK_MODELS and ST_MODELS, written once per test session."""
    root, encoder = tmp_path_factory.mktemp("task-models"), encoder_state()
    folders = {name: write_task_model(str(root / name), name, encoder) for name in TASK_MODELS}
    return {**folders, **{name: write_st_model(str(root / name), name, encoder) for name in ST_MODELS}}


def write_golden(task, cases):
    """Store the cases of one task (each {"model", "kwargs", "outputs", ...}) as GOLDEN/<task>.json.gz."""
    os.makedirs(GOLDEN, exist_ok=True)
    path = os.path.join(GOLDEN, task + ".json.gz")
    text = json.dumps(cases, ensure_ascii=False, separators=(",", ":"))
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", filename="", mtime=0) as z:  # no timestamp:
        z.write(text.encode("utf-8"))  # the same outputs give the same bytes
    print(f"wrote {path}")


def read_golden(task):
    with gzip.open(os.path.join(GOLDEN, task + ".json.gz"), "rt", encoding="utf-8") as f:
        return json.load(f)


# --- Inputs ---------------------------------------------------------------------------------------------

def _column(name):
    with open(review_sample(name), encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


def sentences(rows):
    """Movie-review sentences of rt_polarity_sample.csv (lowercased, tokenized by the dataset's authors)."""
    texts = _column("rt_polarity_sample.csv")
    return [texts[i] for i in rows]


def reviews(rows, chars=None):
    """IMDB reviews of imdb_sample.csv (cased, with <br /> markup), cut to their first `chars` characters."""
    texts = _column("imdb_sample.csv")
    return [texts[i][:chars] for i in rows]


EDGE_TEXTS = [
    "José Müller met Ana in Zürich, then flew to São Paulo.",
    "Cafe\u0301 de\u0301cor by Zoe\u0308 in Montre\u0301al",  # decomposed accents: a token's span is longer
    "Tokyo (東京) and Kyoto ☃ are in Japan 😀!",  # CJK characters one token each; ☃ and 😀 are [UNK]
    "ΟΔΟΣ Athens, a [MASK] literal and [UNK] too.",
]


def embedding_texts():
    return sentences(range(8)) + reviews([1, 7]) + EDGE_TEXTS


def classification_inputs():
    """(texts, text_pairs) for the text-classification goldens: short sentences, long reviews (over 512 tokens:
    cut), and query / passage pairs for the cross-encoder (an empty passage is no passage for transformers'
    pipeline, one of spaces an empty second segment)."""
    texts = sentences(range(10, 22)) + reviews([0, 3]) + EDGE_TEXTS[:2]
    queries = ["is the acting any good?", "what went wrong with the plot?", "Was the music memorable?",
               "who directed it", "Is it a good film for children?", "why is it so long?", "any good songs?",
               "is it worth watching?"]
    return texts, (queries, sentences(range(30, 34)) + reviews([3, 4]) + ["", "  "])


def token_classification_texts():
    # the last two: decomposed accents (a piece spans more characters than it has, so a word holds a space) and
    # a dropped control character inside a word: a grouped entity's word is cleaned up as HF's decoder does
    return (reviews(range(40, 46), chars=400) + sentences(range(50, 54)) + EDGE_TEXTS + reviews([3])
            + ["Ana Mu\u0308ller from at Orle\u0301ans with Rene\u0301e's qu'a\u0300 l'e\u0301te\u0301",
               "'squ'e\u0301t do not _'t\x7fQ"])


def token_classification_words():
    """Pre-split texts (is_split_into_words): the texts above split at spaces, a word holding a space, an empty
    word, words glued to punctuation."""
    return [text.split() for text in token_classification_texts()] + [
        ["New York", "is", "where", "Ann", "Smith", "lives"], ["Ann", "", "Bob", "met"], ["Dr.Jones", "(UK),", "said"]]


def qa_inputs():
    """(questions, contexts): short contexts, reviews over 384 tokens (several windows), an edge case."""
    questions = ["Who is the best actor in the film?", "When was the film made?", "What did the reviewer dislike?",
                 "Where does the story take place?", "Which scene is the funniest?", "Why did Maugham write it?",
                 "How long is the film?", "What is the name of the director?", "Who flew to São Paulo?"]
    contexts = reviews([0, 6, 7, 5, 4, 3, 2]) + sentences([5]) + EDGE_TEXTS[:1]
    return questions, contexts


# fill-mask's targets: tokens, words an uncased vocabulary has only lowercased or in pieces, one with no tokens
FILL_MASK_TARGETS = ["good", "bad", "film", "Paris", "capital", "##ing", " good", "unbelievable", "", "[SEP]"]


def zero_shot_inputs():
    """(texts, label sets): real sentences, a review over 512 tokens (cut, the hypothesis never), an edge text;
    candidate labels as a list, as one comma-separated string, and a single label."""
    texts = sentences(range(80, 86)) + reviews([3]) + EDGE_TEXTS[:1]
    return texts, [["acting", "plot", "music", "visuals"], "good, bad , boring,,", ["worth watching"]]


def search_inputs(embeddings):
    """(queries, corpus) for semantic search, from embeddings.npz's arrays: one folder's max-pooled, not
    normalized vectors (14) against four other folders' (56)."""
    corpus = np.concatenate([embeddings[name] for name in ("bge-classic", "sqrt-len", "prompted", "instructed-mean")])
    return np.ascontiguousarray(embeddings["lowercase-max"]), corpus


def fill_mask_texts():
    """One [MASK] (a word of a real sentence masked), several [MASK]s, a masked sub-word's neighbours."""
    texts = []
    for i, sentence in enumerate(sentences(range(60, 70))):
        words = sentence.split()
        words[(3 * i + 1) % len(words)] = "[MASK]"
        if i % 3 == 2:
            words[-2] = "[MASK]"
        texts.append(" ".join(words))
    return texts + ["Paris is the [MASK] of France.", "The [MASK] sat on the [MASK] [MASK].", "un[MASK]able, isn't it?",
                    "[PAD] the [MASK] sat on the [MASK] ."]  # [PAD]s are left out of the filled-in sequence
