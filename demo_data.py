"""What the classification demos share, so that classify_demo and finetune_demo given the same options test
on the same rows: the data options (bare `key value` pairs or --flags), loading a dataset's text and label
columns (data.py reads it), and the stratified train/test split. A user mistake exits with one `error:` line."""
import itertools
import os
import sys

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import type_of_target

import data
from model_folder import is_complete

MAX_SEED = 2**32 - 1  # sklearn's limit for random_state


def add_data_arguments(parser, dataset_name="imdb", kinds="a local .csv/.tsv/.json/.jsonl/.parquet file",
                       columns=(("text_column", "text", "texts"), ("label_column", "label", "labels")),
                       model_name="bert-base-uncased", rows="rows"):
    """The data and model options the demos take: the dataset, its columns ((option, default, what it
    holds)), N of its rows, the test share, the model and the seed."""
    parser.add_argument("--dataset_name", default=dataset_name,
                        help=f"hub dataset or {kinds} (default: %(default)s)")
    for option, default, holds in columns:
        parser.add_argument(f"--{option}", default=default, help=f"column with the {holds} (default: %(default)s)")
    parser.add_argument("--N", type=int, default=1000, help=f"{rows} to use, after shuffling (default: %(default)s)")
    parser.add_argument("--test_ratio", type=float, default=0.2,
                        help=f"share of the {rows} kept for testing, in (0, 1) (default: %(default)s)")
    parser.add_argument("--model_name", default=model_name,
                        help="short name, hub id (owner/name) or local folder (default: %(default)s)")
    parser.add_argument("--models_dir", default="models", help="download cache (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for shuffling and splitting (default: 0)")


def check_data_arguments(args, columns=("text_column", "label_column"), min_rows=1):
    """Exits with one line unless the data options make sense."""
    if not 0 < args.test_ratio < 1:
        sys.exit(f"error: test_ratio must be strictly between 0 and 1, got {args.test_ratio}")
    if args.N < min_rows:
        sys.exit(f"error: N must be at least {min_rows}, got {args.N}")
    if not 0 <= args.seed <= MAX_SEED:
        sys.exit(f"error: seed must be between 0 and {MAX_SEED}, got {args.seed}")
    for i, j in itertools.combinations(range(len(columns)), 2):
        if getattr(args, columns[i]) == getattr(args, columns[j]):
            sys.exit(f"error: {columns[i]} and {columns[j]} are both {getattr(args, columns[i])!r}: they must be two "
                     "different columns")


def bare_pairs_to_flags(argv, parser):
    """['N', '1000', '--seed', '1'] -> ['--N', '1000', '--seed', '1']: a bare word where an option name
    is expected is a key and becomes --key (dataset-name too); a flag (e.g. line_by_line) takes no value after
    it; values (even ones starting with '-') are left alone. A bare word that is no key is an error
    (parser.error) naming the keys: the close one for a misspelt key, the key it needs for a value without one."""
    flags, expecting_value = [], False
    for word in argv:
        if expecting_value:
            flags.append(word)
            expecting_value = False
        elif word.startswith("-"):
            flags.append(word)
            option = parser.option_for(word)
            expecting_value = "=" not in word and (option is None or parser.takes_value(option))
        else:
            option = parser.option_for("--" + word) or parser.error(not_a_key(word, parser))
            flags.append(option)
            expecting_value = parser.takes_value(option)
    return flags


def not_a_key(word, parser):
    """Why a bare word in a key's place is refused: a value lacking its key (data.csv -> dataset_name data.csv),
    or a key spelt wrong (n -> N)."""
    if os.path.splitext(word)[1].lower() in data.FORMATS or os.path.isfile(word):
        keys = ["dataset_name"]
    elif is_complete(word):
        keys = ["model_name"]
    elif parser.options_with_choice(word):
        keys = [option[2:] for option in parser.options_with_choice(word)]
    elif word.replace(".", "", 1).isdigit():
        keys = [option[2:] for option in parser.options_taking(int, float)]
    elif parser.close_options(word):
        return parser.unknown(word, "key")
    else:
        return parser.unknown(word, "key") + f"; a value needs its key in front of it, as in dataset_name {word}"
    if len(keys) == 1:
        return f"{word} is a value without its key: write {keys[0]} {word}"
    return f"{word} is a value without its key: write its key in front of it ({', '.join(keys)})"


def load_rows(args, columns=None, text_options=("--text_column",)):
    """The dataset's columns ({option: column}; default: the text and label columns), shuffled with the seed,
    at most N rows (data.load_rows reads it; the columns of text_options must hold strings)."""
    columns = columns or {"--text_column": args.text_column, "--label_column": args.label_column}
    try:
        dataset, left_out = data.load_rows(args.dataset_name, columns, text_options)
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    if left_out:
        print(f"note: left out {left_out} of {len(dataset) + left_out} rows: no {' or no '.join(columns.values())}",
              file=sys.stderr)
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


def class_names(dataset, column, classes):
    """The classes' names for a report: a ClassLabel column's names, else the label values as text."""
    names = getattr(dataset.features[column], "names", None)
    return [names[c] for c in classes] if names else [str(c) for c in classes]
