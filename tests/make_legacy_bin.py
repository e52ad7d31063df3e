"""Write pytorch_model.bin twins of tests/golden/tiny-gelu/model.safetensors, as older checkpoints look.

Needs torch (never needed to run the tests). Run from the repository root after tests/make_golden.py:
    python tests/make_legacy_bin.py
Writes, each with copies of config.json and vocab.txt (no tokenizer_config.json):
  tests/golden/tiny-gelu-legacy/     torch.save zip format; BertModel names without "bert."; LayerNorm
                                     gamma/beta; the tied decoder weight stored (sharing the word embeddings'
                                     storage) and its bias as cls.predictions.decoder.bias; the pooler weight
                                     saved as a non-contiguous (transposed) view
  tests/golden/tiny-gelu-torch1.5/   the pre-1.6 non-zip torch.save format, float16, original names
"""
import argparse
import os
import shutil

import torch
from safetensors.torch import load_file

from conftest import GOLDEN_DIR

SOURCE = os.path.join(GOLDEN_DIR, "tiny-gelu")


def legacy_names(state):
    """BertForPreTraining names -> the names of a 2019-era checkpoint."""
    out = {}
    for name, tensor in state.items():
        name = name.removeprefix("bert.").replace("LayerNorm.weight", "LayerNorm.gamma")
        out[name.replace("LayerNorm.bias", "LayerNorm.beta")] = tensor
    out["cls.predictions.decoder.bias"] = out.pop("cls.predictions.bias")
    out["cls.predictions.decoder.weight"] = out["embeddings.word_embeddings.weight"]  # tied: same storage
    out["pooler.dense.weight"] = out["pooler.dense.weight"].t().contiguous().t()  # stride (1, H)
    return out


def write(folder, state, **save_args):
    os.makedirs(folder, exist_ok=True)
    for name in ("config.json", "vocab.txt"):
        shutil.copy(os.path.join(SOURCE, name), os.path.join(folder, name))
    torch.save(state, os.path.join(folder, "pytorch_model.bin"), **save_args)
    print("wrote", folder)


def main():
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                            allow_abbrev=False).parse_args()
    state = load_file(os.path.join(SOURCE, "model.safetensors"))
    write(os.path.join(GOLDEN_DIR, "tiny-gelu-legacy"), legacy_names(state))
    half = {name: tensor.half() for name, tensor in state.items()}
    write(os.path.join(GOLDEN_DIR, "tiny-gelu-torch1.5"), half, _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main()
