"""Data files and hub datasets -> rows: the inputs classify_demo.py and embed_corpus.py read.

    dataset, left_out = load_rows("reviews.csv", {"--text_column": "text", "--label_column": "label"})
    for table in iter_tables("reviews.tsv", ["id", "text"], {"text": pyarrow.string()}):  # bounded chunks
        ...
    sentences = read_conll("train.conll")  # [(words, tags)], for token classification

A name is a local .csv, .tsv, .json, .jsonl or .parquet file, or a hub dataset (its "train" split, through
datasets.load_dataset; a local dataset folder works too). Mistakes are caught before any reading starts and
raised as one clear FileNotFoundError / ValueError / ConnectionError: a missing file, another extension, an
empty or header-only file, a file that is not UTF-8, a column that is not there, a hub dataset while offline.
load_rows gives a whole datasets.Dataset (cached by datasets); iter_tables reads pyarrow tables of at most
BLOCK_BYTES of text or BATCH_ROWS rows at a time, so memory does not grow with the file.
"""
import codecs
import functools
import os

import datasets
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from datasets.exceptions import DatasetsError

from hub import check_reachable

FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SUPPORTED = ", ".join(FORMATS)
OTHER_DATA_FILES = (".txt", ".xlsx", ".xls", ".gz", ".zip", ".bz2", ".xz", ".arrow", ".feather", ".avro", ".orc")
DATASETS_OFFLINE_FLAGS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")  # as datasets reads them
BLOCK_BYTES = 1 << 18  # text formats: bytes parsed at a time (the reader reads ahead a few dozen blocks)
BATCH_ROWS = 4096  # parquet files and hub datasets: rows at a time


def is_hub_dataset(name):
    """True for a hub dataset name (or a local dataset folder), False for a data file; a name that can only
    be a file (a known extension, a path) raises FileNotFoundError when there is no such file."""
    name = os.fspath(name)
    if os.path.isfile(name):
        return False
    if os.path.isdir(name):
        return True
    extension = os.path.splitext(name)[1].lower()
    if extension in FORMATS or extension in OTHER_DATA_FILES or name.startswith((".", "~", os.sep)) \
            or name.count("/") > 1:
        raise FileNotFoundError(f"dataset file not found: {name}")
    return True


def file_format(path):
    """"csv", "tsv", "json" or "parquet", from the file's extension; ValueError for any other."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise ValueError(f"{path}: unsupported file type {extension or '(no extension)'!r} (supported: {SUPPORTED})")
    return FORMATS[extension]


def check_file(path):
    """The file's format, after checking that it is not empty, is UTF-8 (text formats) and has a row (one
    full read of a text file); raises ValueError naming the problem and the fix."""
    fmt = file_format(path)
    if fmt == "parquet":
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowInvalid, OSError) as err:
            raise ValueError(f"{path} is not a readable Parquet file: {err}") from None
        if not rows:
            raise ValueError(f"{path} has no rows: write the rows into it, or leave it out")
        return fmt
    _check_utf8(path)
    if not _has_text(path):
        header = "a header line naming the columns (e.g. text,label), then one line per row" if fmt != "json" \
            else "one JSON object per line"
        raise ValueError(f"{path} is empty: it needs {header}")
    if fmt != "json" and next(_iter_text_tables(path, fmt, None, {}, BLOCK_BYTES, peek=True), None) is None:
        names = ", ".join(_peek_schema(path, fmt).names)
        raise ValueError(f"{path} has a header ({names}) but no rows: add one line per row below it")
    return fmt


def _check_utf8(path, chunk_bytes=1 << 20):
    decoder, lines = codecs.getincrementaldecoder("utf-8")(), 1
    with open(path, "rb") as f:
        while True:
            chunk = f.read(chunk_bytes)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:  # err.object: the bytes held back from the last chunk + this one
                line = lines + err.object.count(b"\n", 0, err.start)
                raise ValueError(f"{path} is not UTF-8 (byte 0x{err.object[err.start]:02x} on line {line}; Latin-1 "
                                 "or Windows-1252?): re-encode it as UTF-8, e.g. iconv -f latin1 -t utf-8 "
                                 f"{path} > utf8-{os.path.basename(path)}") from None
            if not chunk:
                return
            lines += chunk.count(b"\n")


def _has_text(path, chunk_bytes=1 << 16):
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            if chunk.strip():
                return True
    return False


def schema(name):
    """The columns and their types: a file's (types inferred from its first block for text formats; check
    the file first with check_file) or a hub dataset's."""
    if is_hub_dataset(name):
        return load_hub_dataset(name).features.arrow_schema
    return _peek_schema(name, file_format(name))


def _peek_schema(path, fmt):
    if fmt == "parquet":
        return pq.ParquetFile(path).schema_arrow
    reader = _open_text(path, fmt, None, {}, BLOCK_BYTES)
    first = next(iter(reader), None)
    return first.schema if first is not None else reader.schema


def check_columns(table_schema, name, columns, text_options=("--text_column",)):
    """Raise ValueError unless the schema has every column of `columns` ({option: column}) and the columns of
    `text_options` hold strings."""
    missing = [column for column in columns.values() if column not in table_schema.names]
    if missing:
        raise ValueError(f"dataset {os.fspath(name)!r} has no column {', '.join(map(repr, missing))} (it has "
                         f"{', '.join(table_schema.names)}): choose with {' / '.join(columns)}")
    for option in text_options:
        kind = table_schema.field(columns[option]).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
                or pa.types.is_null(kind)):  # null: every value missing
            raise ValueError(f"the text column {columns[option]!r} must hold strings, but it holds {kind} values: "
                             f"choose the column of texts with {option}")


def iter_tables(name, columns, types=None, block_bytes=BLOCK_BYTES, batch_rows=BATCH_ROWS):
    """pyarrow tables of `columns`, in file order, each at most block_bytes of text (csv, tsv, json lines) or
    batch_rows rows (parquet, hub datasets); `types` ({column: pyarrow type}) fixes columns' types, the others
    are inferred (text formats: from the first block, and a later value that does not fit raises ValueError).
    The caller checks the file (check_file) and its columns (check_columns) first."""
    types = types or {}
    if is_hub_dataset(name):
        dataset = load_hub_dataset(name).select_columns(columns).with_format("arrow")
        for table in dataset.iter(batch_size=batch_rows):
            yield table.cast(pa.schema([(c, types.get(c, table.schema.field(c).type)) for c in columns]))
        return
    fmt = file_format(name)
    if fmt == "parquet":
        file = pq.ParquetFile(name, buffer_size=block_bytes, pre_buffer=False)
        for batch in file.iter_batches(batch_size=batch_rows, columns=columns):
            table = pa.Table.from_batches([batch])
            yield table.cast(pa.schema([(c, types.get(c, table.schema.field(c).type)) for c in columns]))
        return
    yield from _iter_text_tables(name, fmt, columns, types, block_bytes)


def _iter_text_tables(path, fmt, columns, types, block_bytes, peek=False):
    try:
        for batch in _open_text(path, fmt, columns, types, block_bytes):
            if batch.num_rows:
                yield pa.Table.from_batches([batch])
                if peek:
                    return
    except pa.ArrowInvalid as err:
        raise ValueError(f"{path}: {err}") from None


def _open_text(path, fmt, columns, types, block_bytes):
    """A streaming pyarrow reader of a csv, tsv or JSON-lines file."""
    if fmt == "json":
        with open(path, "rb") as f:
            if f.read(block_bytes).lstrip()[:1] == b"[":
                raise ValueError(f"{path} holds one JSON array, which cannot be read in a stream: write one JSON "
                                 "object per line (.jsonl)")
        fields = pa.schema([(c, t) for c, t in types.items() if columns is None or c in columns])
        parse = pa_json.ParseOptions(explicit_schema=fields, unexpected_field_behavior="infer")
        reader = pa_json.open_json(path, pa_json.ReadOptions(block_size=block_bytes), parse)
        return reader if columns is None else (_select(batch, columns) for batch in reader)
    return pa_csv.open_csv(
        path, pa_csv.ReadOptions(block_size=block_bytes),
        pa_csv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True),
        pa_csv.ConvertOptions(include_columns=columns or [], column_types=types))


def _select(batch, columns):
    """The batch's `columns`, in that order; one that no object of the batch has is all null."""
    return pa.RecordBatch.from_arrays(
        [batch.column(c) if c in batch.schema.names else pa.nulls(batch.num_rows) for c in columns], names=columns)


@functools.lru_cache(maxsize=4)
def load_hub_dataset(name):
    """The "train" split of a hub dataset (or a local dataset folder) through datasets.load_dataset; offline
    (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE set) it comes from the datasets cache, and without a network the
    error comes at once instead of after datasets' retries."""
    offline = [flag for flag in DATASETS_OFFLINE_FLAGS
               if os.environ.get(flag, "").upper() in ("1", "ON", "YES", "TRUE")]
    try:
        if not offline and not os.path.isdir(name):
            check_reachable()
        dataset = datasets.load_dataset(name, split="train")
    except (DatasetsError, OSError, ValueError) as err:
        reason = f"it is not in the datasets cache and {offline[0]} is set: unset it to download the dataset, " \
                 "or pass a local file" if offline and isinstance(err, ConnectionError) else err
        raise ValueError(f"could not load dataset {os.fspath(name)!r}: {reason}") from None
    if not len(dataset):
        raise ValueError(f"dataset {name!r} has no rows in its train split")
    return dataset


def load_rows(name, columns, text_options=("--text_column",)):
    """(datasets.Dataset of `columns` ({option: column}) with the rows where none of them is missing, the
    number of rows left out). A data file is read by datasets' csv / json / parquet builder, so the result is
    cached (HF_DATASETS_CACHE) and fingerprinted by the file."""
    if is_hub_dataset(name):
        dataset = load_hub_dataset(name)
    else:
        fmt = check_file(name)
        options = {"delimiter": "\t"} if fmt == "tsv" else {}
        try:
            dataset = datasets.load_dataset("csv" if fmt == "tsv" else fmt, data_files=os.fspath(name),
                                            split="train", **options)
        except (DatasetsError, OSError, ValueError) as err:
            raise ValueError(f"could not load dataset {os.fspath(name)!r}: {err}") from None
    check_columns(dataset.features.arrow_schema, name, columns, text_options)
    names = list(columns.values())
    complete = dataset.select_columns(names).filter(
        lambda *values: all(v is not None for v in values), input_columns=names)
    return complete, len(dataset) - len(complete)


CONLL_FORMATS = (".conll", ".txt")


def read_conll(path):
    """The sentences of a CoNLL file (as CoNLL-2003's train.txt): a word per line, its fields separated by
    spaces or tabs, the word first and its tag last (other fields, e.g. part of speech, are left out); a blank
    line between sentences; -DOCSTART- lines skipped. Returns [(words, tags)]; ValueError for a line without a
    tag, a file that is not UTF-8 or that has no sentence."""
    _check_utf8(path)
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if fields and fields[0] != "-DOCSTART-":
                if len(fields) < 2:
                    raise ValueError(f"{path}, line {number}: {line.strip()!r} has no tag; a CoNLL line is a word "
                                     "and its tag (the last field), separated by a space or a tab")
                words.append(fields[0])
                tags.append(fields[-1])
            elif words:
                sentences.append((words, tags))
                words, tags = [], []
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise ValueError(f"{path} has no sentence: it needs a word and its tag per line, a blank line between "
                         "sentences")
    return sentences
