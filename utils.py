"""The entry point known from picoGPT / picoBERT: a model name -> (tokenizer, hparams, params).

    tokenizer, hparams, params = load_tokenizer_hparams_and_params("bert-base-uncased")

The name is a short name (hub.SHORT_NAMES), a hub id owner/name, or a local folder; hub.py finds or downloads
the folder, model_folder.py reads it.
"""
from hub import find_model
from model_folder import load_model_folder

__version__ = "0.1.0"


def load_tokenizer_hparams_and_params(model_name, models_dir="models"):
    """A short name, a hub id owner/name, or a local directory -> (tokenizer, config dict, params)."""
    return load_model_folder(find_model(model_name, models_dir), name=model_name)
