"""An output folder of Parquet shards with a manifest: what embed_corpus.py writes, and how it resumes.

    DIR/part-00000.parquet, part-00001.parquet, ...   shard k = input rows [k R, (k+1) R), R = rows per shard
    DIR/_manifest.json                                 the settings, the inputs, the counts

Every shard has the columns key (the id column, or `row`), `n_tokens` (int32) and `embedding`
(fixed-size list of float32, or of int8 / uint8 when quantized). A shard is written under a hidden temporary
name (a leading "."), flushed and renamed when complete, so the folder reads as one table
(pandas.read_parquet(DIR), pyarrow.dataset) at any moment, and a killed run leaves complete shards only. A
folder lock keeps two runs from writing into it at once.
"""
import contextlib
import fcntl
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quantization import quantized_shape

MANIFEST = "_manifest.json"
TEMPORARY = ".tmp"  # hidden temporary files: "." + final name + TEMPORARY
# what a resumed run must share with the first
SETTINGS = ("model", "config_sha256", "truncate_dim", "dimension", "pooling", "normalize", "max_length", "prompt",
            "precision", "calibration_rows", "text_column", "id_column", "rows_per_shard", "inputs")
# what a run whose manifest was written before these settings existed had
EARLIER = {"prompt": "", "truncate_dim": None, "precision": "float32", "calibration_rows": None}


def shard_name(shard, n_shards):
    return f"part-{shard:0{max(5, len(str(n_shards - 1)))}d}.parquet"


def schema(key, key_type, dimension, precision):
    """The shards' columns: the embeddings are fixed-size lists of float32, or of the quantized values."""
    dtype, width = quantized_shape(precision, dimension)
    return pa.schema([(key, key_type), ("n_tokens", pa.int32()),
                      ("embedding", pa.list_(pa.from_numpy_dtype(dtype), width))])


def settings_difference(old, new):
    """None when the manifests' settings agree, else a short description of the first difference."""
    for name in SETTINGS:
        if old.get(name, EARLIER.get(name)) == new[name]:
            continue
        if name != "inputs":
            return f"{name} was {old.get(name)!r}, now {new[name]!r}"
        before = {i["name"]: i for i in old.get("inputs", [])}
        for entry in new["inputs"]:
            if entry["name"] not in before:
                return f"input {entry['name']} was not among the inputs"
            if before[entry["name"]] != entry:
                return f"input {entry['name']} changed since (size or modification time)"
        return "the inputs were " + ", ".join(before) + (" in another order" if len(before) == len(new["inputs"])
                                                          else f", now {', '.join(i['name'] for i in new['inputs'])}")
    return None


class OutputFolder:
    """The output folder of one run: locked, checked against its manifest, cleaned of a killed run's
    temporary files. Use as a context manager; `pending` lists the shards still to write."""

    def __init__(self, folder, manifest, expected_rows, key_type):
        self.folder, self.manifest, self.expected = os.fspath(folder), manifest, np.asarray(expected_rows)
        self.schema = schema(manifest["key"], key_type, manifest["dimension"], manifest["precision"])
        self._lock = None

    def __enter__(self):
        os.makedirs(self.folder, exist_ok=True)
        self._lock = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise ValueError(f"another run is writing into {self.folder}: wait for it to finish") from None
        for entry in os.scandir(self.folder):  # a killed run's leftovers
            if entry.name.startswith(".") and entry.name.endswith(TEMPORARY):
                os.remove(entry.path)
        check_folder(self.folder, self.manifest)
        self.done = [k for k in range(len(self.expected)) if self._complete(k)]
        self.manifest.update(shards_written=len(self.done), rows_written=int(self.expected[self.done].sum()),
                             complete=len(self.done) == len(self.expected))
        self.write_manifest()
        return self

    def __exit__(self, *exc):
        os.close(self._lock)

    @property
    def pending(self):
        done = set(self.done)
        return [k for k in range(len(self.expected)) if k not in done]

    def _complete(self, shard):
        """Whether the shard's file is there with the rows and columns it should have (else it is redone)."""
        path = os.path.join(self.folder, shard_name(shard, len(self.expected)))
        try:
            metadata = pq.read_metadata(path)
        except FileNotFoundError:
            return False
        except (pa.ArrowInvalid, OSError):
            metadata = None
        if metadata and metadata.num_rows == self.expected[shard] \
                and metadata.schema.to_arrow_schema().remove_metadata() == self.schema:
            return True
        os.remove(path)
        return False

    def write_shard(self, shard, table):
        """Write one complete shard (its rows in order) under a temporary name, then rename it into place."""
        assert table.num_rows == self.expected[shard], (shard, table.num_rows, self.expected[shard])
        path = os.path.join(self.folder, shard_name(shard, len(self.expected)))
        _write_atomically(path, lambda f: pq.write_table(table.cast(self.schema), f, use_dictionary=False,
                                                        compression="zstd"))
        self.done.append(shard)
        self.manifest["shards_written"] += 1
        self.manifest["rows_written"] += table.num_rows
        self.manifest["complete"] = self.manifest["shards_written"] == len(self.expected)
        self.write_manifest()

    def write_manifest(self):
        text = json.dumps(self.manifest, indent=1, ensure_ascii=False) + "\n"
        _write_atomically(os.path.join(self.folder, MANIFEST), lambda f: f.write(text.encode()))


def check_folder(folder, manifest):
    """The manifest of the run that wrote into folder (None if none did); a ValueError when `folder` cannot take
    this run: a file, a folder of other things, or the shards of a run with other settings."""
    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"--output {folder} is a file: give a folder (it is created if needed)")
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        if os.path.isdir(folder) and any(not e.name.startswith(".") for e in os.scandir(folder)):
            raise ValueError(f"--output {folder} is not empty and has no {MANIFEST}: choose a new or empty folder")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
    except ValueError:
        raise ValueError(f"{path} is not a manifest (not JSON): choose another --output folder") from None
    difference = settings_difference(old, manifest)
    if difference:
        raise ValueError(f"{folder} holds a run with other settings ({difference}): use another --output "
                         f"folder, or delete {folder} to start over")
    return old


def _write_atomically(path, write):
    """write(file) into a hidden temporary file beside path, flushed to disk, then renamed to path."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, "." + name + TEMPORARY)
    try:
        with open(temporary, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


class Assembler:
    """Collects embedded rows (tables with row, key, n_tokens, embedding; any order, any batching) into
    their shards and writes each shard as soon as all its rows are there."""

    def __init__(self, output, rows_per_shard, on_rows=lambda n: None):
        self.output, self.rows_per_shard, self.on_rows = output, rows_per_shard, on_rows
        self.buffers = {}

    def start(self):
        """Write the pending shards that have no rows to embed (every text empty) at once."""
        for shard in self.output.pending:
            if self.output.expected[shard] == 0:
                self._write(shard, [])

    def add(self, table):
        shards = table["row"].to_numpy() // self.rows_per_shard
        for shard in np.unique(shards):
            self.buffers.setdefault(int(shard), []).append(table.filter(pa.array(shards == shard)))
            rows = sum(t.num_rows for t in self.buffers[int(shard)])
            if rows > self.output.expected[shard]:
                raise RuntimeError(f"shard {shard} got {rows} rows, expected {self.output.expected[shard]}")
            if rows == self.output.expected[shard]:
                self._write(int(shard), self.buffers.pop(int(shard)))
        self.on_rows(table.num_rows)

    def finish(self):
        missing = sorted(set(self.output.pending))
        if missing:
            raise RuntimeError(f"shards {missing[:5]} did not get all their rows")

    def _write(self, shard, tables):
        table = pa.concat_tables(tables) if tables else self.output.schema.empty_table()
        if tables:
            table = table.take(pc.sort_indices(table["row"]))
            key = self.output.manifest["key"]
            table = pa.table({key: table["key"], "n_tokens": table["n_tokens"], "embedding": table["embedding"]})
        self.output.write_shard(shard, table)
