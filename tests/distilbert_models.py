"""Random DistilBERT checkpoints, the same on every machine: each head's model folder as transformers saves it
(DistilBERT's own weight names, config.json with its own keys), written from seeded NumPy, and a
sentence-transformers folder on DistilBertModel (as msmarco-distilbert-base-v4). make_golden_distilbert.py runs
transformers / sentence-transformers on them; test_distilbert.py writes the same folders."""
import os

import numpy as np
import pytest

from task_models import BIO, ST_CLASSIC, write_json, write_model_folder  # first: it puts the repository on sys.path
from synthetic import weight_makers  # noqa: I001

CONFIG = dict(model_type="distilbert", vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
              max_position_embeddings=512, activation="gelu", sinusoidal_pos_embds=False)
# name -> (architecture, extra config.json keys)
MODELS = {"distil-sentiment": ("DistilBertForSequenceClassification",
                               {"id2label": {"0": "NEGATIVE", "1": "POSITIVE"}}),
          "distil-ner": ("DistilBertForTokenClassification", {"id2label": dict(enumerate(BIO))}),
          "distil-qa": ("DistilBertForQuestionAnswering", {}),
          "distil-mlm": ("DistilBertForMaskedLM", {}),
          "distil-st": ("DistilBertModel", {})}


def distilbert_state(name):
    """{DistilBERT name: float32 array} of MODELS[name]: the encoder (the same for every model) and its head."""
    H, I, V = CONFIG["dim"], CONFIG["hidden_dim"], CONFIG["vocab_size"]
    uniform, dense, layer_norm = weight_makers(np.random.default_rng(21), dense_std=0.2)
    architecture, extra = MODELS[name]
    encoder = "" if architecture == "DistilBertModel" else "distilbert."
    state = {encoder + "embeddings.word_embeddings.weight": uniform(V, H, std=0.5),
             encoder + "embeddings.position_embeddings.weight": uniform(CONFIG["max_position_embeddings"], H, std=0.5),
             **layer_norm(encoder + "embeddings.LayerNorm", H)}
    for i in range(CONFIG["n_layers"]):
        p = f"{encoder}transformer.layer.{i}."
        for linear in ("q_lin", "k_lin", "v_lin", "out_lin"):
            state.update(dense(p + "attention." + linear, H, H))
        state.update({**layer_norm(p + "sa_layer_norm", H), **dense(p + "ffn.lin1", H, I),
                      **dense(p + "ffn.lin2", I, H), **layer_norm(p + "output_layer_norm", H)})
    # the head's own weights
    uniform, dense, layer_norm = weight_makers(np.random.default_rng(sorted(MODELS).index(name)), dense_std=0.2)
    n_labels = len(extra.get("id2label", {}))
    state.update({"DistilBertForSequenceClassification": {**dense("pre_classifier", H, H),
                                                          **dense("classifier", H, n_labels, std=1.0)},
                  "DistilBertForTokenClassification": dense("classifier", H, n_labels, std=1.0),
                  "DistilBertForQuestionAnswering": dense("qa_outputs", H, 2, std=1.0),
                  "DistilBertForMaskedLM": {**dense("vocab_transform", H, H), **layer_norm("vocab_layer_norm", H),
                                            "vocab_projector.bias": uniform(V, std=0.2)},
                  "DistilBertModel": {}}[architecture])
    return state


def write_distilbert_model(folder, name):
    """MODELS[name] as a model folder: config.json, model.safetensors, vocab.txt (bert-base-uncased's),
    tokenizer_config.json; the sentence-transformers one also modules.json and its mean Pooling."""
    architecture, extra = MODELS[name]
    write_model_folder(folder, {"architectures": [architecture], **CONFIG, **extra}, distilbert_state(name),
                       tokenizer_class="DistilBertTokenizer")
    if architecture == "DistilBertModel":
        write_json(os.path.join(folder, "modules.json"), [
            {"idx": 0, "name": "0", "path": "", "type": ST_CLASSIC + "Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": ST_CLASSIC + "Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": ST_CLASSIC + "Normalize"}])
        write_json(os.path.join(folder, "1_Pooling", "config.json"),
                   {"word_embedding_dimension": CONFIG["dim"], "pooling_mode_mean_tokens": True})
        write_json(os.path.join(folder, "sentence_bert_config.json"), {"max_seq_length": 128, "do_lower_case": False})
    return folder


@pytest.fixture(scope="session")
def distilbert_folders(tmp_path_factory):
    """{name: folder} for every model of MODELS, written once per test session."""
    root = tmp_path_factory.mktemp("distilbert")
    return {name: write_distilbert_model(str(root / name), name) for name in MODELS}
