"""Generate tests/golden/minilm_embed.npz: the real all-MiniLM-L6-v2's sentence features, computed by
sentence-transformers (mean) and HF transformers ([CLS] vector, pooler output), for pipelines.embed's tests.

Needs torch==2.13.0, transformers and sentence-transformers (never needed to run the tests).
Run from the repository root:  python tests/make_golden_embed.py
"""
import os

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from transformers import BertModel, BertTokenizer

from conftest import GOLDEN_DIR, minilm_dir

MAX_LENGTH = 256  # all-MiniLM-L6-v2's max_seq_length in sentence_bert_config.json
TEXTS = [
    "A man is eating food.",
    "the film is a charming , funny and touching portrait of a family .",
    "It was the worst two hours I have ever spent in a cinema; the plot made no sense at all.",
    "ok",
    "Numpy arrays are fast, and the forward pass needs nothing else.",
    "Café au lait, s'il vous plaît!",
    # longer than MAX_LENGTH tokens: cut, keeping the final [SEP]
    "a long and winding review that goes on and on , " * 30,
    "Short again.",
]


def main():
    folder = minilm_dir()
    full = SentenceTransformer(folder, device="cpu")
    full.max_seq_length = MAX_LENGTH
    transformer_and_mean = SentenceTransformer(modules=[full[0], full[1]], device="cpu")  # no Normalize
    mean = transformer_and_mean.encode(TEXTS, batch_size=3, convert_to_numpy=True)

    tokenizer = BertTokenizer.from_pretrained(folder)
    model = BertModel.from_pretrained(folder).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    path = os.path.join(GOLDEN_DIR, "minilm_embed.npz")
    np.savez_compressed(path, texts=np.array(TEXTS), max_length=MAX_LENGTH, mean=mean.astype(np.float32),
                        cls=out.last_hidden_state[:, 0].numpy().astype(np.float32),
                        pooler=out.pooler_output.numpy().astype(np.float32))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
