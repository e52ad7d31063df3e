"""A corpus in many files -> its rows in bounded parts -> embeddings, on this machine's cores.

    corpus = scan(["reviews/*.csv"], "text", id_column=None, rows_per_shard=10_000)   # one checking pass
    for part in read_parts(corpus, skip_shards=set()):          # tables: row, key, text (no empty texts)
        ...
    for result in embed_local(parts, model, settings, workers=2):  # tables: row, key, n_tokens, embedding

scan reads every input once before anything is written: it checks the files and columns, counts the rows and
the empty texts of each shard, and settles the id column's type. read_parts then streams the same rows (the
row number counts over all inputs in the order given), leaving out empty texts and whole shards already done.
The engines (embed_local here, corpus_ray.embed_ray) turn parts into embeddings and keep no more than a few
parts in memory.
"""
import collections
import dataclasses
import datetime
import glob
import hashlib
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import data
from pipelines import embed_parts, embedding_settings, prompt_text
from quantization import quantization_ranges, quantize_embeddings
from runner import token_limit

# a part of texts the local engine sorts by length into batches: at most 4096 texts and 1 MiB. The bigger the
# part, the less padding: on real sentences, parts of 1024 / 2048 / 4096 cost 2.0% / 1.1% / 0.45% more work
# (length_batches' measure) than one sort of the whole corpus
PART_ROWS, PART_BYTES = 4096, 1 << 20
INTEGER = r"^-?(0|[1-9][0-9]*)$"  # an id column of a text file whose values all match this is read as int64


@dataclasses.dataclass(frozen=True)
class Settings:
    """How texts become vectors; pooling, normalize, max_length and prompt (the text put before every text, ""
    for none) are the effective values, never None. truncate_dim and precision are embed's; ranges: int8 /
    uint8's (2, D) quantization ranges (see calibration_ranges)."""
    pooling: str
    normalize: bool
    max_length: int
    batch_size: int = 32
    prompt: str = ""
    truncate_dim: int = None
    precision: str = "float32"
    ranges: tuple = None


def model_settings(hparams, pooling=None, normalize=None, max_length=None, batch_size=32, prompt_name=None,
                   prompt=None, truncate_dim=None, precision="float32"):
    """Settings with None filled in as embed fills it, by the model's own settings (pipelines.embedding_settings;
    neither prompt nor prompt_name: the folder's default prompt, if any), and max_length capped at the model's
    limit. A prompt_name the model does not have is a ValueError."""
    pooling, normalize, max_length, _ = embedding_settings(hparams, pooling, normalize, max_length)
    return Settings(pooling, bool(normalize), token_limit(hparams, max_length), batch_size,
                    prompt_text(hparams, prompt_name, prompt), truncate_dim, precision)


def config_sha256(hparams):
    return hashlib.sha256(json.dumps(hparams, sort_keys=True).encode()).hexdigest()


def result_table(part, features, n_tokens):
    """A part's rows with their embeddings as a fixed-size list of float32."""
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), features.shape[1])
    return pa.table({"row": part["row"], "key": part["key"], "n_tokens": n_tokens, "embedding": embedding})


def resolve_inputs(patterns):
    """Files (globs expanded, each sorted) and hub dataset names in the order given; a file matched twice or a
    glob that matches nothing raises."""
    names = []
    for pattern in map(os.fspath, patterns):
        if any(c in pattern for c in "*?["):
            matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
            if not matches:
                raise FileNotFoundError(f"no file matches {pattern}")
        else:
            matches = [pattern]
        for name in matches:
            names.append(name if data.is_hub_dataset(name) else os.path.abspath(name))
    twice = sorted(name for name, count in collections.Counter(names).items() if count > 1)
    if twice:
        raise ValueError(f"{twice[0]} is given twice among the inputs: each row would be embedded twice")
    return names


@dataclasses.dataclass
class Corpus:
    """What scan found: the inputs, the columns read and their types, the key column, the rows."""
    names: list
    columns: list
    types: dict
    key: str
    rows: int
    rows_per_shard: int
    empty_per_shard: np.ndarray
    empty_examples: list

    @property
    def expected_rows(self):
        """The rows each shard gets: rows_per_shard (fewer in the last shard) less its empty texts."""
        sizes = np.full(len(self.empty_per_shard), self.rows_per_shard, dtype=np.int64)
        sizes[-1] = self.rows - self.rows_per_shard * (len(sizes) - 1)
        return sizes - self.empty_per_shard

    @property
    def key_type(self):
        return self.types.get(self.key, pa.int64())


def scan(names, text_column, id_column, rows_per_shard):
    """Check and count every input (one full read of its text and id columns): a Corpus."""
    columns = [text_column] + ([id_column] if id_column else [])
    options = {"--text_column": text_column, **({"--id_column": id_column} if id_column else {})}
    key_types, rows = {}, 0
    empty, examples = collections.Counter(), []  # empty texts per shard; the first few empty rows
    for name in names:
        if not data.is_hub_dataset(name):
            data.check_file(name)
        data.check_columns(data.schema(name), name, options)
        types = {text_column: pa.string()}
        kind, seen = _id_reading(name, id_column, types)
        for table in data.iter_tables(name, columns, types):
            empty_rows = np.flatnonzero(_empty(table[text_column]).to_numpy(zero_copy_only=False)) + rows
            empty.update(dict(zip(*np.unique(empty_rows // rows_per_shard, return_counts=True))))
            examples.extend(empty_rows[:3 - len(examples)].tolist())
            seen = _note_id_type(seen, kind, table, id_column, name)
            rows += table.num_rows
        if id_column:
            key_types[name] = _settle_id_type(kind, seen)
    if not rows:
        raise ValueError("the inputs have no rows")
    if empty.total() == rows:
        raise ValueError(f"every one of the {rows} rows has an empty {text_column!r}: nothing to embed")
    types = {text_column: pa.string()}
    if id_column:
        if len(set(key_types.values())) > 1:
            listed = ", ".join(f"{t} in {os.path.basename(n)}" for n, t in key_types.items())
            raise ValueError(f"the id column {id_column!r} holds {listed}: make it one type in every input")
        types[id_column] = next(iter(key_types.values()))
    empty_per_shard = np.zeros(-(-rows // rows_per_shard), dtype=np.int64)
    empty_per_shard[list(empty)] = list(empty.values())
    return Corpus(names, columns, types, id_column or "row", rows, rows_per_shard, empty_per_shard, examples)


def _empty(texts):
    """True where a text is missing or only white space."""
    return pc.fill_null(pc.equal(pc.utf8_trim_whitespace(texts), ""), True)


def _id_reading(name, id_column, types):
    """How scan learns the id column's type: ("text", True) reads a csv/tsv id column as strings and checks
    whether they are all integers; ("json", set()) collects the types the JSON reader infers; ("typed", t)
    takes a Parquet file's or hub dataset's own type."""
    if not id_column:
        return None, None
    if data.is_hub_dataset(name) or data.file_format(name) == "parquet":
        return "typed", data.schema(name).field(id_column).type
    if data.file_format(name) == "json":
        return "json", set()
    types[id_column] = pa.string()
    return "text", True


def _note_id_type(seen, kind, table, id_column, name):
    if kind == "text":
        return seen and pc.all(pc.match_substring_regex(table[id_column], INTEGER)).as_py() is not False
    if kind == "json" and not pa.types.is_null(table.schema.field(id_column).type):
        seen.add(table.schema.field(id_column).type)
        if len(seen) > 1:
            raise ValueError(f"{name}: the id column {id_column!r} holds values of types "
                             f"{' and '.join(sorted(map(str, seen)))}: give every row the same type")
    return seen


def _settle_id_type(kind, seen):
    if kind == "text":
        return pa.int64() if seen else pa.string()
    if kind == "json":
        return next(iter(seen), pa.string())
    return seen


def describe(name):
    """The manifest's record of an input: path, size and modification time, or a hub dataset's fingerprint."""
    if data.is_hub_dataset(name):
        return {"name": name, "fingerprint": data.load_hub_dataset(name)._fingerprint}
    stat = os.stat(name)
    modified = datetime.datetime.fromtimestamp(stat.st_mtime_ns / 1e9, datetime.timezone.utc)
    return {"name": name, "bytes": stat.st_size, "modified": modified.isoformat()}


def read_parts(corpus, skip_shards=frozenset(), part_rows=PART_ROWS, part_bytes=PART_BYTES):
    """Tables of row (int64, over all inputs), key and text, in input order: the non-empty texts of the shards
    not in skip_shards, at most part_rows rows and part_bytes of text each (one text may be longer), never two
    shards in one part."""
    text_column, id_column = corpus.columns[0], corpus.columns[1:]
    offset, buffer = 0, []
    for name in corpus.names:
        for table in data.iter_tables(name, corpus.columns, corpus.types):
            rows = pa.array(np.arange(offset, offset + table.num_rows, dtype=np.int64))
            offset += table.num_rows
            shards = rows.to_numpy() // corpus.rows_per_shard
            keep = ~_empty(table[text_column]).to_numpy(zero_copy_only=False) & ~np.isin(shards, list(skip_shards))
            table = pa.table({"row": rows, "key": table[id_column[0]] if id_column else rows,
                              "text": table[text_column]}).filter(pa.array(keep))
            shards = shards[keep]
            for shard in np.unique(shards):
                if buffer and buffer[0][1] != shard:
                    yield from _cut(buffer, part_rows, part_bytes, final=True)
                buffer.append((table.filter(pa.array(shards == shard)), shard))
                yield from _cut(buffer, part_rows, part_bytes, final=False)
    yield from _cut(buffer, part_rows, part_bytes, final=True)


def _cut(buffer, part_rows, part_bytes, final):
    """Full parts from the buffered tables of one shard (and the rest too, if final); what is not yielded
    stays in buffer."""
    if not buffer:
        return
    table, shard = pa.concat_tables(t for t, _ in buffer), buffer[0][1]
    buffer.clear()
    ends = np.cumsum(pc.binary_length(table["text"]).to_numpy(zero_copy_only=False))  # text bytes up to each row
    start = 0
    while start < table.num_rows:
        begin = ends[start - 1] if start else 0
        stop = min(start + part_rows, max(start + 1, int(np.searchsorted(ends, begin + part_bytes, "right"))))
        if stop == table.num_rows and not final and stop - start < part_rows and ends[-1] - begin < part_bytes:
            buffer.append((table.slice(start), shard))  # not full yet: wait for more rows of this shard
            return
        yield table.slice(start, stop - start)
        start = stop


def embed_local(parts, model, settings, workers):
    """Result tables (row, key, n_tokens, embedding) for the parts, in order, computed as one stream
    (pipelines.embed_parts): the next part is read and tokenized while `workers` threads (one BLAS thread each)
    compute, and they go on to its batches, longest first, while the last of a part finish."""
    tokenizer, hparams, params = model
    tables = collections.deque()  # the parts read, not yet embedded

    def texts():
        for part in parts:
            tables.append(part)
            yield part["text"].to_pylist()
    for features, n_tokens in embed_parts(texts(), tokenizer, params, hparams, settings.batch_size, settings.pooling,
                                          settings.normalize, settings.max_length, n_threads=workers,
                                          prompt=settings.prompt, truncate_dim=settings.truncate_dim):
        features = quantize_embeddings(features, settings.precision, settings.ranges)
        yield result_table(tables.popleft(), features, np.minimum(n_tokens, settings.max_length).astype(np.int32))


def calibration_ranges(corpus, model, settings, n_rows, workers):
    """int8 / uint8's quantization ranges, (2, D): each dimension's smallest and largest value among the float32
    embeddings of the corpus's first n_rows non-empty texts, with these settings."""
    def first_rows():
        left = n_rows
        for part in read_parts(corpus):
            yield part.slice(0, left)
            left -= min(left, part.num_rows)
            if not left:
                return
    tables = embed_local(first_rows(), model, dataclasses.replace(settings, precision="float32"), workers)
    features = np.concatenate([t["embedding"].combine_chunks().flatten().to_numpy().reshape(t.num_rows, -1)
                               for t in tables])
    if len(features) < 2:
        raise ValueError(f"--precision {settings.precision} finds its ranges from two or more texts; the corpus "
                         f"has {len(features)}: use --precision float32, binary or ubinary")
    return tuple(map(tuple, quantization_ranges(features).tolist()))
