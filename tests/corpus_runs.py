"""Running embed_corpus.py in the test process, and reading what it wrote (test_embed_corpus*.py)."""
import csv
import json
import os

import numpy as np
import pyarrow.dataset

import embed_corpus
from conftest import GOLDEN_DIR, review_sample
from pipelines import embed, embedding_settings
from runner import token_limit
from utils import load_tokenizer_hparams_and_params

TINY = os.path.join(GOLDEN_DIR, "tiny-gelu")


def read_reviews(name, n):
    with open(review_sample(name), encoding="utf-8", newline="") as f:
        return [r["text"] for r in csv.DictReader(f)][:n]


def run(*args):
    """embed_corpus in this process: (exit code, stderr lines)."""
    try:
        embed_corpus.main(list(map(str, args)))
    except SystemExit as exit:
        return exit.code, [exit.code] if isinstance(exit.code, str) else []
    return 0, []


def read_manifest(folder):
    return json.loads((folder / "_manifest.json").read_text())


def read_folder(folder):
    return pyarrow.dataset.dataset(folder, format="parquet").to_table()


def embeddings(table):
    return np.stack(table["embedding"].to_numpy(zero_copy_only=False))


def expected_embeddings(model_dir, texts, pooling, normalize, max_length=None, **options):
    """embed's features and token counts (as fed to the model) with these settings (None: the model's own) and
    embed's other options given (prompt, prompt_name, truncate_dim)."""
    tokenizer, hparams, params = load_tokenizer_hparams_and_params(model_dir)
    features, n_tokens = embed(texts, tokenizer, params, hparams, pooling=pooling, normalize=normalize,
                               max_length=max_length, progress=False, return_n_tokens=True, **options)
    return features, np.minimum(n_tokens, token_limit(hparams, embedding_settings(hparams, max_length=max_length)[2]))
