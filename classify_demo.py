"""Text classification on BERT features: embed the texts with pipelines.embed, fit a logistic regression on a
stratified training split, print sklearn's classification report for the test split.

    python classify_demo.py dataset_name imdb N 1000 test_ratio 0.2 model_name bert-base-uncased
    python classify_demo.py --dataset_name reviews.csv --N 2000 --pooling mean --model_name path/to/model

Both forms work: bare `key value` pairs and `--key value` flags. dataset_name is a hub dataset (its "train"
split) or a local .csv, .tsv, .json, .jsonl or .parquet file (read by data.py). The features are computed
with datasets' map, so a re-run with the same data and options reads them from the datasets cache
(HF_DATASETS_CACHE).
"""
import functools
import os
import sys

import datasets
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import type_of_target

import cli
import data
from model_folder import is_complete
from pipelines import POOLINGS, check_pooling, embed, embedding_settings, token_limit
from utils import load_tokenizer_hparams_and_params

MAX_SEED = 2**32 - 1  # sklearn's limit for random_state


def parse_args(argv):
    parser = cli.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset_name", default="imdb",
                        help="hub dataset or local .csv/.json/.jsonl/.parquet file (default: %(default)s)")
    parser.add_argument("--text_column", default="text", help="column with the texts (default: %(default)s)")
    parser.add_argument("--label_column", default="label", help="column with the labels (default: %(default)s)")
    parser.add_argument("--N", type=int, default=1000, help="rows to use, after shuffling (default: %(default)s)")
    parser.add_argument("--test_ratio", type=float, default=0.2,
                        help="share of the rows kept for testing, in (0, 1) (default: %(default)s)")
    parser.add_argument("--model_name", default="bert-base-uncased",
                        help="short name, hub id (owner/name) or local folder (default: %(default)s)")
    parser.add_argument("--models_dir", default="models", help="download cache (default: %(default)s)")
    parser.add_argument("--pooling", choices=POOLINGS, default=None,
                        help="sentence feature: pooler output, [CLS] vector, or the mean, maximum or sum / "
                             "sqrt(length) of the token vectors (default: the model's own: a sentence-transformers "
                             "folder's pooling, else pooler)")
    parser.add_argument("--batch_size", type=int, default=32, help="texts per forward pass (default: %(default)s)")
    parser.add_argument("--num_proc", type=int, default=1, help="processes for feature extraction (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed for shuffling and splitting (default: 0)")
    args = parser.parse_args(bare_pairs_to_flags(argv, parser))
    if not 0 < args.test_ratio < 1:
        sys.exit(f"error: test_ratio must be strictly between 0 and 1, got {args.test_ratio}")
    for name in ("N", "batch_size", "num_proc"):
        if getattr(args, name) < 1:
            sys.exit(f"error: {name} must be at least 1, got {getattr(args, name)}")
    if not 0 <= args.seed <= MAX_SEED:
        sys.exit(f"error: seed must be between 0 and {MAX_SEED}, got {args.seed}")
    if args.text_column == args.label_column:
        sys.exit(f"error: text_column and label_column are both {args.text_column!r}: the texts and the labels "
                 "must be two different columns")
    return args


def bare_pairs_to_flags(argv, parser):
    """['N', '1000', '--seed', '1'] -> ['--N', '1000', '--seed', '1']: a bare word where an option name
    is expected is a key and becomes --key (dataset-name too); values (even ones starting with '-') are left
    alone. A bare word that is no key is an error (parser.error) naming the keys: the close one for a misspelt
    key, the key it needs for a value without one."""
    flags, expecting_value = [], False
    for word in argv:
        if expecting_value:
            flags.append(word)
            expecting_value = False
        elif word.startswith("-"):
            flags.append(word)
            expecting_value = "=" not in word and word not in ("-h", "--help")
        else:
            flags.append(parser.option_for("--" + word) or parser.error(not_a_key(word, parser)))
            expecting_value = True
    return flags


def not_a_key(word, parser):
    """Why a bare word in a key's place is refused: a value lacking its key (data.csv -> dataset_name data.csv),
    or a key spelt wrong (n -> N)."""
    if os.path.splitext(word)[1].lower() in data.FORMATS or os.path.isfile(word):
        keys = ["dataset_name"]
    elif is_complete(word):
        keys = ["model_name"]
    elif word in POOLINGS:
        keys = ["pooling"]
    elif word.replace(".", "", 1).isdigit():
        keys = [option[2:] for option in parser.options_taking(int, float)]
    elif parser.close_options(word):
        return parser.unknown(word, "key")
    else:
        return parser.unknown(word, "key") + f"; a value needs its key in front of it, as in dataset_name {word}"
    if len(keys) == 1:
        return f"{word} is a value without its key: write {keys[0]} {word}"
    return f"{word} is a value without its key: write its key in front of it ({', '.join(keys)})"


def load_rows(args):
    """The dataset's text and label columns, shuffled with the seed, at most N rows (data.load_rows reads it)."""
    try:
        dataset, left_out = data.load_rows(args.dataset_name, {"--text_column": args.text_column,
                                                               "--label_column": args.label_column})
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    if left_out:
        print(f"note: left out {left_out} of {len(dataset) + left_out} rows: no text or no label", file=sys.stderr)
    dataset = dataset.shuffle(seed=args.seed)
    if args.N > len(dataset):
        print(f"note: N={args.N} is more than the {len(dataset)} rows of the dataset: using all of them",
              file=sys.stderr)
    return dataset.select(range(min(args.N, len(dataset))))


def preview(values, n=3, width=30):
    """The first n values for a message, e.g. "'a', 'b', 'c' and 37 more"; long texts cut to width characters."""
    cut = [v[:width] + "..." if isinstance(v, str) and len(v) > width else v for v in values[:n]]
    return ", ".join(map(repr, cut)) + (f" and {len(values) - n} more" if len(values) > n else "")


def class_counts(labels, column):
    """The classes and their numbers of rows; exits with one line unless the labels are class labels, of at
    least two classes with at least two rows each (what a stratified split needs)."""
    kind = type_of_target(labels)
    if kind not in ("binary", "multiclass"):
        sys.exit(f"error: the label column {column!r} must hold class labels (ints or strings), but it holds "
                 f"{kind} values: choose the column of labels with --label_column")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        sys.exit(f"error: the labels have {len(classes)} class(es) among {len(labels)} rows; need at least two")
    singles = classes[counts < 2].tolist()
    if singles:
        sys.exit(f"error: {len(singles)} of the {len(classes)} classes in the label column {column!r} have a "
                 f"single row ({preview(singles)}); a stratified split needs two rows of each class: use more "
                 "rows (N) or another --label_column")
    return classes, counts


def split_indices(labels, args):
    """Stratified train/test row indices; exits with one line when the labels do not allow it."""
    classes, counts = class_counts(labels, args.label_column)
    try:
        return train_test_split(np.arange(len(labels)), test_size=args.test_ratio, stratify=labels,
                                random_state=args.seed)
    except ValueError as err:
        sys.exit(f"error: cannot split {len(labels)} rows of {len(classes)} classes (smallest has "
                 f"{counts.min()}) with test_ratio {args.test_ratio}: {err}")


@functools.lru_cache(maxsize=1)
def load_model(model_name, models_dir):
    """Loaded once per process; forked map workers inherit the main process's copy."""
    return load_tokenizer_hparams_and_params(model_name, models_dir)


def checkpoint_stamp(model_name):
    """Names, sizes and modification times of a local checkpoint's files, so that datasets' cache
    notices a changed checkpoint; hub names are fingerprinted by name alone."""
    if not os.path.isdir(model_name):
        return ()
    entries = sorted(os.scandir(model_name), key=lambda e: e.name)
    return tuple((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file())


def embed_batch(batch, text_column, model_name, models_dir, pooling, batch_size, stamp):
    """datasets.map function: sentence features and a truncation flag for a batch of rows. The arguments
    are all small, so datasets fingerprints them cheaply; the model is loaded on first use."""
    del stamp  # only part of the cache fingerprint
    tokenizer, hparams, params = load_model(model_name, models_dir)
    features, n_tokens = embed(batch[text_column], tokenizer, params, hparams, batch_size=batch_size, pooling=pooling,
                               return_n_tokens=True)
    return {"features": features, "truncated": n_tokens > token_limit(hparams, embedding_settings(hparams)[2])}


def compute_features(dataset, args):
    kwargs = dict(text_column=args.text_column, model_name=args.model_name, models_dir=args.models_dir,
                  pooling=args.pooling, batch_size=args.batch_size, stamp=checkpoint_stamp(args.model_name))
    dataset = dataset.map(embed_batch, batched=True, batch_size=None, fn_kwargs=kwargs,
                          num_proc=args.num_proc if args.num_proc > 1 else None, desc="features")
    n_truncated = sum(dataset["truncated"])
    if n_truncated:
        print(f"note: {n_truncated} of {len(dataset)} texts are longer than the model's limit and were cut "
              "(keeping the final [SEP])", file=sys.stderr)
    return np.asarray(dataset.with_format("numpy")["features"], dtype=np.float32)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    datasets.disable_progress_bars()  # embed shows the one bar that matters
    dataset = load_rows(args)
    labels = np.asarray(dataset[args.label_column])
    train, test = split_indices(labels, args)
    try:
        _, hparams, params = load_model(args.model_name, args.models_dir)
        check_pooling(embedding_settings(hparams, args.pooling)[0], params)
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")

    features = compute_features(dataset, args)
    classifier = LogisticRegression(max_iter=1000)
    classifier.fit(features[train], labels[train])
    classes = np.unique(labels)
    names = getattr(dataset.features[args.label_column], "names", None)  # a ClassLabel's class names
    print(classification_report(labels[test], classifier.predict(features[test]), labels=classes,
                                target_names=[names[c] for c in classes] if names else None,
                                digits=4, zero_division=0))


if __name__ == "__main__":
    main()
