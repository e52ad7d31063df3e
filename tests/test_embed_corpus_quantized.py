"""embed_corpus.py's --truncate_dim and --precision: the shards hold embed's rows, cut and then quantized as
sentence-transformers' quantize_embeddings quantizes them; int8 / uint8 take their ranges from the corpus's
first texts, and a resumed run keeps them."""
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from corpus_runs import TINY, embeddings, expected_embeddings, read_folder, read_manifest, read_reviews, run
from quantization import quantization_ranges, quantize_embeddings


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """200 real sentences in a csv file: (path, texts)."""
    texts = read_reviews("rt_polarity_sample.csv", 200)
    path = tmp_path_factory.mktemp("rt") / "rt.csv"
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    return path, texts


@pytest.mark.parametrize("precision, dtype, width", [
    ("float32", pa.float32(), 36), ("int8", pa.int8(), 36), ("uint8", pa.uint8(), 36),
    ("binary", pa.int8(), 5), ("ubinary", pa.uint8(), 5),  # 36 bits in 5 bytes, the last one padded with 0 bits
])
def test_cut_and_quantized_shards_are_embeds_rows(tmp_path, reviews, precision, dtype, width):
    """One shard, so that the batches are embed's and the floats identical: the stored values must be equal."""
    path, texts = reviews
    calibration = ["--calibration_rows", 50] if precision.endswith("int8") else []
    code, _ = run(path, "--output", tmp_path / "out", "--model_name", TINY, "--pooling", "mean", "--normalize",
                  "--truncate_dim", 36, "--precision", precision, *calibration)
    assert code == 0
    table = read_folder(tmp_path / "out")
    assert table.schema.field("embedding").type == pa.list_(dtype, width)
    features, _ = expected_embeddings(TINY, texts, "mean", True, truncate_dim=36)
    first, _ = expected_embeddings(TINY, texts[:50], "mean", True, truncate_dim=36)  # embedded on their own
    ranges = quantization_ranges(first) if calibration else None
    assert np.array_equal(embeddings(table), quantize_embeddings(features, precision, ranges))
    written = read_manifest(tmp_path / "out")
    assert {k: written[k] for k in ("dimension", "truncate_dim", "precision", "calibration_rows")} == {
        "dimension": 36, "truncate_dim": 36, "precision": precision, "calibration_rows": 50 if calibration else None}
    assert written.get("ranges") == (None if ranges is None else ranges.tolist())


def test_a_resumed_int8_run_keeps_the_ranges_it_started_with(tmp_path, reviews):
    """The ranges come from the float32 rows of the first texts (here all 200: the default is 1,000). Stopped
    after a shard and resumed, a run equals an uninterrupted one; the resumed run quantizes with the manifest's
    ranges (here made twice as wide), not with ranges found again."""
    path, _ = reviews
    args = [path, "--model_name", TINY, "--rows_per_shard", 64]
    assert run(*args, "--output", tmp_path / "float32")[0] == 0
    features = embeddings(read_folder(tmp_path / "float32"))  # the same parts and batches as the int8 runs
    args += ["--precision", "int8"]
    assert run(*args, "--output", tmp_path / "whole")[0] == 0
    whole = embeddings(read_folder(tmp_path / "whole"))
    assert np.array_equal(whole, quantize_embeddings(features, "int8", quantization_ranges(features)))
    assert read_manifest(tmp_path / "whole")["calibration_rows"] == 1000
    assert read_manifest(tmp_path / "whole")["ranges"] == quantization_ranges(features).tolist()

    assert run(*args, "--output", tmp_path / "out", "--max_shards", 1)[0] == 0
    assert run(*args, "--output", tmp_path / "out")[0] == 0
    assert read_folder(tmp_path / "out").equals(read_folder(tmp_path / "whole"))

    assert run(*args, "--output", tmp_path / "wide", "--max_shards", 1)[0] == 0
    written = read_manifest(tmp_path / "wide")
    wide_ranges = 2 * np.array(written["ranges"], dtype=np.float32)
    (tmp_path / "wide" / "_manifest.json").write_text(json.dumps({**written, "ranges": wide_ranges.tolist()}))
    assert run(*args, "--output", tmp_path / "wide")[0] == 0
    wide = embeddings(read_folder(tmp_path / "wide"))
    assert np.array_equal(wide[:64], whole[:64])
    assert np.array_equal(wide[64:], quantize_embeddings(features[64:], "int8", wide_ranges))
    assert read_manifest(tmp_path / "wide")["ranges"] == wide_ranges.tolist()


def test_a_run_from_before_these_options_resumes(tmp_path, reviews):
    """A manifest without prompt, truncate_dim, precision and calibration_rows is a run without them."""
    path, _ = reviews
    args = [path, "--output", tmp_path / "out", "--model_name", TINY, "--rows_per_shard", 64]
    assert run(*args, "--max_shards", 1)[0] == 0
    written = read_manifest(tmp_path / "out")
    for name in ("prompt", "truncate_dim", "precision", "calibration_rows"):
        del written[name]
    (tmp_path / "out" / "_manifest.json").write_text(json.dumps(written))
    assert run(*args)[0] == 0
    assert run(path, "--output", tmp_path / "whole", "--model_name", TINY, "--rows_per_shard", 64)[0] == 0
    assert read_folder(tmp_path / "out").equals(read_folder(tmp_path / "whole"))


def test_bad_quantization_options_are_one_line_and_write_nothing(tmp_path, reviews, capsys):
    path, _ = reviews
    args = [path, "--output", tmp_path / "out", "--model_name", TINY]
    for options, message in [
        (["--calibration_rows", 10], "error: --calibration_rows is for --precision int8 or uint8"),
        (["--precision", "uint8", "--calibration_rows", 1],
         "error: --calibration_rows must be at least 2 (a range needs two values), got 1"),
        (["--truncate_dim", 0], "error: --truncate_dim must be at least 1, got 0"),
        (["--precision", "int4"], "error: argument --precision: invalid choice: 'int4'"),
    ]:
        assert run(*args, *options)[0] == 2
        assert message in capsys.readouterr().err
    pd.DataFrame({"text": ["only one", "", " "]}).to_csv(tmp_path / "one.csv", index=False)
    code, lines = run(tmp_path / "one.csv", *args[1:], "--precision", "int8")
    assert code == ("error: --precision int8 finds its ranges from two or more texts; the corpus has 1: use "
                    "--precision float32, binary or ubinary") and len(lines) == 1
    assert not (tmp_path / "out").exists()
