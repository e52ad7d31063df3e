"""Embeddings in fewer bytes, as sentence-transformers' quantize_embeddings makes them (NumPy alone).

    q = quantize_embeddings(features, "int8", calibration_embeddings=sample)  # (N, D) int8: 4x smaller
    bits = quantize_embeddings(features, "ubinary")                            # (N, D/8) uint8: 32x smaller

"int8" and "uint8" cut each dimension's range into 256 equal buckets: the range is the dimension's smallest
and largest value in `ranges` (2, D), else in calibration_embeddings, else in the embeddings themselves
(sentence-transformers' default, which it discourages: a query quantized alone then has a range of its own).
"binary" and "ubinary" keep each value's sign bit (> 0), packed eight to a byte, first value in the high bit;
"binary" stores the bytes minus 128 as int8. "float32" is the embeddings as float32.
"""
import numpy as np

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def quantization_ranges(embeddings):  # (N, D) -> (2, D)
    """Each dimension's smallest and largest value: the int8 / uint8 buckets' range."""
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or len(embeddings) < 2:
        raise ValueError(f"quantization ranges need two or more embeddings, (N, D) with N >= 2, got shape "
                         f"{embeddings.shape}: pass ranges, or calibration_embeddings of more texts")
    return np.vstack((embeddings.min(axis=0), embeddings.max(axis=0)))


def check_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def quantized_shape(precision, dimension):
    """(dtype, values per row) of dimension-long embeddings quantized to precision."""
    check_precision(precision)
    dtype = np.dtype({"float32": np.float32, "int8": np.int8, "binary": np.int8}.get(precision, np.uint8))
    return dtype, -(-dimension // 8) if precision.endswith("binary") else dimension


def quantize_embeddings(embeddings, precision, ranges=None, calibration_embeddings=None):
    """(N, D) float embeddings -> (N, D) int8 / uint8, (N, ceil(D / 8)) int8 / uint8 for binary / ubinary, or
    float32: sentence-transformers' quantize_embeddings, value for value (see the module's docstring)."""
    check_precision(precision)
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.floating):
        raise ValueError(f"embeddings must be a 2-D float array (N, D), got {embeddings.dtype} of shape "
                         f"{embeddings.shape}")
    if precision == "float32":
        return np.asarray(embeddings, dtype=np.float32)  # float32 already: the same array, no copy
    if precision.endswith("binary"):
        bits = np.packbits(embeddings > 0, axis=-1)
        return (bits - 128).astype(np.int8) if precision == "binary" else bits
    if not len(embeddings):
        return np.zeros(embeddings.shape, np.uint8 if precision == "uint8" else np.int8)
    if ranges is None:
        ranges = quantization_ranges(embeddings if calibration_embeddings is None else calibration_embeddings)
    ranges = np.asarray(ranges, dtype=np.float32)
    if ranges.shape != (2, embeddings.shape[1]):
        raise ValueError(f"ranges must be (2, {embeddings.shape[1]}): each dimension's smallest and largest "
                         f"value, got shape {ranges.shape}")
    starts = ranges[0]
    steps = (ranges[1] - starts) / np.float32(255)
    steps = np.where(steps == 0, np.float32(1), steps)  # a constant dimension: every value in bucket 0
    buckets = np.clip(np.floor((embeddings - starts) / steps), 0, 255)
    return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)
