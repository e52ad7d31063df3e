"""checkpoint.read_safetensors: NumPy-only, memory-mapped, and refuses malformed files with a clear ValueError."""
import json
import mmap
import os
import re
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file  # the reference reader; its numpy module does not import torch

import checkpoint


def write_safetensors(path, header, data=b"", header_len=None):
    """A safetensors file from a header (dict, or raw bytes) and data bytes; header_len may lie."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data)
    return str(path)


def test_dtypes_are_read_as_float32_and_int64(tmp_path):
    values = np.array([[1.5, -2.0, 3.140625], [0.0, 1024.0, -0.25]], np.float32)  # exact in F16 and BF16
    f16 = values.astype(np.float16).tobytes()
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    i64 = np.array([7, -3, 2 ** 40], np.int64).tobytes()
    chunks, header, at = [values.tobytes(), f16, bf16, i64], {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape, chunk in zip(["f32", "f16", "bf16", "i64"], ["F32", "F16", "BF16", "I64"],
                                         [[2, 3]] * 3 + [[3]], chunks):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(chunk)]}
        at += len(chunk)
    tensors = checkpoint.read_safetensors(write_safetensors(tmp_path / "m.safetensors", header, b"".join(chunks)))
    assert sorted(tensors) == ["bf16", "f16", "f32", "i64"]
    for name in ("f32", "f16", "bf16"):
        assert tensors[name].dtype == np.float32 and np.array_equal(tensors[name], values), name
    assert tensors["i64"].dtype == np.int64 and tensors["i64"].tolist() == [7, -3, 2 ** 40]


def test_misaligned_float32_data_is_copied_into_an_aligned_array(tmp_path):
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}).encode()
    header += b" " * (-len(header) % 8 + 2)  # data starts 2 bytes past a multiple of 4
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + values.tobytes())
    w = checkpoint.read_safetensors(str(path))["w"]
    assert w.flags.aligned and np.array_equal(w, values)


def test_float32_tensors_are_read_only_views_of_the_mapped_file(minilm):
    tensors = checkpoint.read_safetensors(os.path.join(minilm, "model.safetensors"))
    word = tensors["embeddings.word_embeddings.weight"]
    assert isinstance(word.base, mmap.mmap) and not word.flags.writeable


def test_real_minilm_matches_the_safetensors_package(minilm):
    ours = checkpoint.read_safetensors(os.path.join(minilm, "model.safetensors"))
    reference = load_file(os.path.join(minilm, "model.safetensors"))
    assert ours.keys() == reference.keys() and len(ours) > 100
    for name, array in reference.items():
        assert ours[name].shape == array.shape and np.array_equal(ours[name], array), name


GOOD = {"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}


@pytest.mark.parametrize("header, data, header_len, reason", [
    (GOOD, bytes(16), 2 ** 62, "header length 4611686018427387904 exceeds the file size"),
    (GOOD, bytes(16), 40, "not valid JSON"),  # a length that cuts the JSON short
    (b"{not json", bytes(16), None, "not valid JSON"),
    (b"\xff\xfe{}", b"", None, "not valid JSON"),
    (b"[1, 2]", b"", None, "not a JSON object"),
    ({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, bytes(8), None, "outside the 8 data bytes"),
    ({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]}}, bytes(16), None, "outside the 16 data"),
    ({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 4]}}, bytes(16), None, "data_offsets [8, 4]"),
    ({"a": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 16]}}, bytes(16), None, "needs 24"),
    ({"a": {"dtype": "F32", "shape": [2 ** 40, 2 ** 40], "data_offsets": [0, 16]}}, bytes(16), None, "has 16 bytes"),
    ({"a": {"dtype": "F32", "shape": [-4, -1], "data_offsets": [0, 16]}}, bytes(16), None, "not a list of sizes"),
    ({"a": {"dtype": "F32", "shape": "2x2", "data_offsets": [0, 16]}}, bytes(16), None, "not a list of sizes"),
    ({"a": {"dtype": "Q4", "shape": [2, 2], "data_offsets": [0, 16]}}, bytes(16), None, "unknown dtype 'Q4'"),
    ({"a": {"shape": [2, 2], "data_offsets": [0, 16]}}, bytes(16), None, "unknown dtype None"),
    ({"a": [1, 2]}, bytes(16), None, "unknown dtype None"),
])
def test_malformed_files_are_refused(tmp_path, header, data, header_len, reason):
    path = write_safetensors(tmp_path / "bad.safetensors", header, data, header_len)
    with pytest.raises(ValueError, match="invalid safetensors file: .*" + re.escape(reason)):
        checkpoint.read_safetensors(path)


@pytest.mark.parametrize("size", [0, 5])
def test_truncated_files_are_refused(tmp_path, size):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(b"\x10" * size)
    with pytest.raises(ValueError, match="invalid safetensors file: shorter than its 8-byte header length"):
        checkpoint.read_safetensors(str(path))


def test_a_file_cut_inside_its_data_is_refused(minilm, tmp_path):
    with open(os.path.join(minilm, "model.safetensors"), "rb") as f:
        start = f.read(1_000_000)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(start)
    with pytest.raises(ValueError, match="invalid safetensors file: .* has data_offsets .* outside the"):
        checkpoint.read_safetensors(str(path))


def test_the_writer_round_trips_through_the_reference_reader(tmp_path):
    tensors = {"w": np.arange(12, dtype=np.float32).reshape(3, 4).T, "ids": np.array([3, -1], np.int64),
               "half": np.array([0.5, 2], np.float16), "empty": np.zeros((0, 3), np.float32)}
    path = tmp_path / "out.safetensors"
    checkpoint.write_safetensors(path, tensors, metadata={"format": "pt"})
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0 and json.loads(raw[8:8 + n])["__metadata__"] == {"format": "pt"}
    for reference in (load_file(str(path)), checkpoint.read_safetensors(str(path))):
        assert sorted(reference) == sorted(tensors)
        for name, a in tensors.items():
            assert np.array_equal(reference[name], a), name
    assert os.listdir(tmp_path) == ["out.safetensors"]  # no temporary file left


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="has dtype complex64"):
        checkpoint.write_safetensors(tmp_path / "out.safetensors", {"a": np.ones(2, np.float32),
                                                                    "z": np.ones(2, np.complex64)})
    assert os.listdir(tmp_path) == []
