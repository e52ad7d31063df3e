"""quantization.quantize_embeddings against sentence-transformers' quantize_embeddings (tests/golden/minilm_embed.npz,
written by tests/make_golden_embed.py): the same inputs give the same bytes."""
import os

import numpy as np
import pytest

from conftest import GOLDEN_DIR
from quantization import quantization_ranges, quantize_embeddings

GOLDEN = np.load(os.path.join(GOLDEN_DIR, "minilm_embed.npz"))
MEAN = GOLDEN["mean"]  # 8 sentence features (384) of the real all-MiniLM-L6-v2


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_equals_sentence_transformers(precision):
    expected = GOLDEN[f"quantized_{precision}"]
    quantized = quantize_embeddings(MEAN, precision)
    assert quantized.dtype == expected.dtype and quantized.shape == expected.shape
    assert np.array_equal(quantized, expected)


def test_calibration_embeddings_and_ranges():
    calibrated = quantize_embeddings(MEAN, "int8", calibration_embeddings=GOLDEN["cls"])
    assert np.array_equal(calibrated, GOLDEN["quantized_int8_calibrated_on_cls"])
    ranges = quantization_ranges(GOLDEN["cls"])
    assert ranges.shape == (2, 384) and np.array_equal(quantize_embeddings(MEAN, "int8", ranges=ranges), calibrated)
    assert calibrated.min() == -128 and calibrated.max() == 127  # values outside the cls range are clipped


def test_buckets_by_hand():
    embeddings = np.array([[0.0, 255.0, 5.0], [127.5, -255.0, 5.0], [255.0, 1.0, 5.0]], np.float32)
    # dimension 0: 0..255 in steps of 1; dimension 1: steps of 2; dimension 2 is constant: every value in bucket 0
    assert quantize_embeddings(embeddings, "uint8").tolist() == [[0, 255, 0], [127, 0, 0], [255, 128, 0]]
    assert quantize_embeddings(embeddings, "int8").tolist() == [[-128, 127, -128], [-1, -128, -128], [127, 0, -128]]
    bits = np.array([[1.0] * 9 + [-1.0] * 7], np.float32)  # 16 values: two bytes, first value in the high bit
    assert quantize_embeddings(bits, "ubinary").tolist() == [[0b11111111, 0b10000000]]
    assert quantize_embeddings(bits, "binary").tolist() == [[127, 0]]
    assert quantize_embeddings(bits[:, :10], "ubinary").tolist() == [[255, 0b10000000]]  # the last byte padded
    assert quantize_embeddings(embeddings.astype(np.float64), "float32").dtype == np.float32


def test_empty_embeddings_keep_their_width():
    empty = np.zeros((0, 20), np.float32)
    assert quantize_embeddings(empty, "int8").shape == (0, 20) and quantize_embeddings(empty, "int8").dtype == np.int8
    assert quantize_embeddings(empty, "uint8").dtype == np.uint8
    assert quantize_embeddings(empty, "ubinary").shape == (0, 3)


@pytest.mark.parametrize("args, message", [
    ((MEAN, "int4"), "precision must be one of float32, int8, uint8, binary, ubinary, got 'int4'"),
    ((MEAN.astype(np.int8), "int8"), "embeddings must be a 2-D float array"),
    ((MEAN[0], "binary"), r"embeddings must be a 2-D float array \(N, D\), got float32 of shape \(384,\)"),
    ((MEAN[:1], "int8"), "quantization ranges need two or more embeddings"),
    ((MEAN, "uint8", np.zeros((2, 10))), r"ranges must be \(2, 384\)"),
])
def test_refuses_with_a_clear_message(args, message):
    with pytest.raises(ValueError, match=message):
        quantize_embeddings(*args)
