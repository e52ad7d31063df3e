"""data.py: data files and hub datasets -> rows, whole (load_rows) or in bounded chunks (iter_tables), and the
one-line errors both scripts give for files and datasets they cannot use."""
import csv
import json
import os
import socket

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import classify_demo
import data
import embed_corpus
from conftest import GOLDEN_DIR
from scripts import assert_one_line_error, run_script

TINY = os.path.join(GOLDEN_DIR, "tiny-gelu")


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))


@pytest.fixture(scope="module")
def reviews(rt_polarity):
    """40 real movie-review sentences with their labels."""
    with open(rt_polarity, encoding="utf-8", newline="") as f:
        return [(r["text"], int(r["label"])) for r in csv.DictReader(f)][:40]


def write_delimited(path, rows, delimiter=",", header=("text", "label")):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def test_tsv_is_read_whole_and_in_chunks_like_csv(tmp_path, reviews):
    tsv = write_delimited(tmp_path / "reviews.tsv", reviews + [("a\ttab, a comma and a \"quote\"", 1)], "\t")
    dataset, left_out = data.load_rows(tsv, {"--text_column": "text", "--label_column": "label"})
    expected = [text for text, _ in reviews] + ["a\ttab, a comma and a \"quote\""]
    assert dataset["text"] == expected and dataset["label"] == [label for _, label in reviews] + [1]
    assert left_out == 0
    tables = list(data.iter_tables(tsv, ["text"], {"text": pa.string()}))
    assert [text for table in tables for text in table["text"].to_pylist()] == expected


def test_chunks_are_bounded_and_complete(tmp_path, reviews):
    """A small block size gives many small tables, in order, with every row (a quoted newline included)."""
    rows = [(f"{text}\nsecond line" if i == 7 else text, label) for i, (text, label) in enumerate(reviews * 5)]
    path = write_delimited(tmp_path / "many.csv", rows)
    tables = list(data.iter_tables(path, ["label", "text"], block_bytes=1024))
    assert len(tables) > 10 and all(t.nbytes < 4096 for t in tables)
    assert [t for table in tables for t in table["text"].to_pylist()] == [text for text, _ in rows]
    assert tables[0].schema.names == ["label", "text"] and tables[0].schema.field("label").type == pa.int64()


def test_jsonl_and_parquet_chunks(tmp_path, reviews):
    records = [{"text": text, "stars": label} for text, label in reviews]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "r.parquet", row_group_size=7)
    for name in ("r.jsonl", "r.parquet"):
        tables = list(data.iter_tables(str(tmp_path / name), ["stars", "text"], block_bytes=512, batch_rows=5))
        assert len(tables) > 3 and max(t.num_rows for t in tables) <= 40
        assert pa.concat_tables(tables).to_pylist() == [{"stars": r["stars"], "text": r["text"]} for r in records]


FILE_MISTAKES = {
    "data.txt": (b"some text\n", "data.txt: unsupported file type '.txt' (supported: .csv, .tsv, .json, .jsonl, "
                                 ".parquet)"),
    "empty.csv": (b"", "empty.csv is empty: it needs a header line naming the columns"),
    "blank.tsv": (b"\n  \n", "blank.tsv is empty"),
    "header.csv": (b"text,label\n", "header.csv has a header (text, label) but no rows: add one line per row"),
    "latin1.csv": ("text,label\nun film très réussi,1\n".encode("latin-1"),
                   "latin1.csv is not UTF-8 (byte 0xe8 on line 2; Latin-1 or Windows-1252?): re-encode it as UTF-8, "
                   "e.g. iconv -f latin1 -t utf-8"),
    "empty.jsonl": (b"", "empty.jsonl is empty: it needs one JSON object per line"),
}


@pytest.mark.parametrize("name", FILE_MISTAKES)
def test_files_that_cannot_be_used_are_one_clear_line_in_both_scripts(tmp_path, capsys, name):
    content, message = FILE_MISTAKES[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_classify:
        classify_demo.main(["--dataset_name", str(path), "--model_name", TINY])
    with pytest.raises(SystemExit) as exit_embed:
        embed_corpus.main([str(path), "--output", str(tmp_path / "out"), "--model_name", TINY])
    for raised in (exit_classify, exit_embed):
        assert raised.value.code.startswith("error: ") and "\n" not in raised.value.code
        assert message in raised.value.code.replace(str(tmp_path) + os.sep, "")
    assert not (tmp_path / "out").exists()


def test_a_json_array_loads_whole_but_is_not_streamed(tmp_path, reviews):
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"text": text, "label": label} for text, label in reviews]), encoding="utf-8")
    dataset, _ = data.load_rows(str(path), {"--text_column": "text", "--label_column": "label"})
    assert len(dataset) == 40
    with pytest.raises(ValueError, match="holds one JSON array, which cannot be read in a stream: write one JSON "
                                         r"object per line \(\.jsonl\)"):
        next(data.iter_tables(str(path), ["text"]))


def test_a_missing_file_is_never_looked_up_on_the_hub():
    for name in ("missing.csv", "missing.txt", "./missing", "/data/reviews"):
        with pytest.raises(FileNotFoundError, match=f"dataset file not found: {name}"):
            data.is_hub_dataset(name)
    assert data.is_hub_dataset("stanfordnlp/imdb") and data.is_hub_dataset("imdb")


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("script, env, message", [
    ("classify_demo.py", {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": ""},
     "could not load dataset 'stanfordnlp/imdb': it is not in the datasets cache and HF_DATASETS_OFFLINE is set: "
     "unset it to download the dataset, or pass a local file"),
    ("embed_corpus.py", {"HF_DATASETS_OFFLINE": "", "HF_HUB_OFFLINE": "1"}, "and HF_HUB_OFFLINE is set"),
    ("embed_corpus.py", {"HF_DATASETS_OFFLINE": "", "HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:{port}"},
     "could not load dataset 'stanfordnlp/imdb': cannot reach http://127.0.0.1:{port} (no network?): check the "
     "connection, or set HF_DATASETS_OFFLINE=1 to use the datasets cache, or pass a local file"),
], ids=["datasets-offline", "hub-offline", "no-network"])
def test_a_hub_dataset_offline_or_without_network_fails_at_once(tmp_path, script, env, message):
    """One line, no retries (datasets alone retries for ~25 s and prints a line per try); nothing written."""
    port = closed_port()
    env = {k: v.format(port=port) for k, v in env.items()} | {"HF_DATASETS_CACHE": str(tmp_path / "cache")}
    args = ["--dataset_name", "stanfordnlp/imdb"] if script == "classify_demo.py" else \
        ["stanfordnlp/imdb", "--output", tmp_path / "out"]
    result = run_script(script, *args, "--model_name", TINY, env=env)
    assert_one_line_error(result, message.format(port=port))
    assert not (tmp_path / "out").exists()


def test_read_conll_takes_the_first_and_last_fields_of_each_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects\tVBZ\tB-VP\tO\n\n\n"
                    "Peter B-PER\nBlackburn I-PER", encoding="utf-8")  # tabs, blank lines in a row, no last newline
    assert data.read_conll(path) == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter", "Blackburn"], ["B-PER", "I-PER"])]
    path.write_bytes("caf\xe9 O\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        data.read_conll(path)
