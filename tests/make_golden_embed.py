"""Generate tests/golden/minilm_embed.npz: the real all-MiniLM-L6-v2's sentence features, computed by
sentence-transformers (mean; the whole folder's encode with truncate_dim and precision) and HF transformers
([CLS] vector, pooler output), and sentence-transformers' quantize_embeddings of the mean features, for
pipelines.embed's and quantization's tests.

Needs torch==2.13.0, transformers and sentence-transformers (never needed to run the tests).
Run from the repository root:  python tests/make_golden_embed.py
"""
import os

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers import quantize_embeddings
from transformers import BertModel, BertTokenizer

from conftest import GOLDEN_DIR, minilm_dir

TRUNCATE_DIM = 128
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
    cls = out.last_hidden_state[:, 0].numpy().astype(np.float32)
    quantized = {f"quantized_{p}": quantize_embeddings(mean, p) for p in ("int8", "uint8", "binary", "ubinary")}
    quantized["quantized_int8_calibrated_on_cls"] = quantize_embeddings(mean, "int8", calibration_embeddings=cls)
    encoded = {"truncated": full.encode(TEXTS, batch_size=3, truncate_dim=TRUNCATE_DIM),  # after Normalize
               "truncated_normalized": full.encode(TEXTS, batch_size=3, truncate_dim=TRUNCATE_DIM,
                                                   normalize_embeddings=True),
               **{f"encoded_{p}": full.encode(TEXTS, batch_size=3, precision=p) for p in ("int8", "ubinary")}}
    path = os.path.join(GOLDEN_DIR, "minilm_embed.npz")
    np.savez_compressed(path, texts=np.array(TEXTS), max_length=MAX_LENGTH, mean=mean.astype(np.float32), cls=cls,
                        pooler=out.pooler_output.numpy().astype(np.float32), truncate_dim=TRUNCATE_DIM,
                        **quantized, **encoded)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
