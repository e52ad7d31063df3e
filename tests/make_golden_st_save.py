"""Generate tests/golden/st_save.npz: SentenceTransformer.encode of the folders numpy-bert's
model_folder.save_sentence_transformer writes for the cases of test_save_sentence_transformer.py (the real
all-MiniLM-L6-v2 with seeded noise, the tiny plain BERT tests/golden/tiny-gelu, every sentence-transformers folder
of task_models.py). Each folder must load with no missing or unexpected weights; a saved task_models folder must
encode exactly as its source folder, the plain BERT as SentenceTransformer makes of the plain checkpoint itself,
and the noisy MiniLM unlike the original.

Needs requirements-golden.txt (torch==2.13.0, transformers 5.24, sentence-transformers 6.2); never needed to
run the tests. Run from tests/:  python make_golden_st_save.py
"""
import os
import tempfile

import numpy as np
from sentence_transformers import SentenceTransformer
from transformers import BertModel

from conftest import minilm_dir  # first: it puts the repository on sys.path
import model_folder  # noqa: I001
import task_models as tm
from test_save_sentence_transformer import CASES, GOLDEN, TEXTS, TINY, source_model


def encode(folder):
    return SentenceTransformer(folder, device="cpu").encode(TEXTS(), batch_size=4)


def saved_embeddings(name, sources, tmp):
    """encode of case `name`'s folder as save_sentence_transformer writes it, after checking it."""
    folder = os.path.join(tmp, name)
    tokenizer, hparams, params = source_model(name, sources)
    model_folder.save_sentence_transformer(folder, tokenizer, params, hparams)
    _, info = BertModel.from_pretrained(folder, output_loading_info=True)
    assert not any(info.values()), (name, info)
    vectors = encode(folder)
    if name == "minilm":
        assert np.abs(vectors - encode(minilm_dir())).max(axis=1).min() > 1e-3, "the noise does not show"
    else:
        source = encode(TINY if name == "plain" else sources[name])
        assert np.abs(vectors - source).max() <= 1e-6, (name, np.abs(vectors - source).max())
    return vectors.astype(np.float32)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        encoder = tm.encoder_state()
        sources = {name: tm.write_st_model(os.path.join(tmp, "sources", name), name, encoder) for name in tm.ST_MODELS}
        vectors = {name: saved_embeddings(name, sources, tmp) for name in CASES}
    np.savez_compressed(GOLDEN, **vectors)
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
