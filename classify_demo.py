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

import cli
from demo_data import (add_data_arguments, bare_pairs_to_flags, check_data_arguments, class_names, load_rows,
                       split_indices)
from pipelines import POOLINGS, check_pooling, embed, embedding_settings
from runner import token_limit
from utils import load_tokenizer_hparams_and_params


def parse_args(argv):
    parser = cli.ArgumentParser(description=__doc__)
    add_data_arguments(parser)
    parser.add_argument("--pooling", choices=POOLINGS, default=None,
                        help="sentence feature: pooler output, [CLS] vector, or the mean, maximum or sum / "
                             "sqrt(length) of the token vectors (default: the model's own: a sentence-transformers "
                             "folder's pooling, else pooler)")
    parser.add_argument("--batch_size", type=int, default=32, help="texts per forward pass (default: %(default)s)")
    parser.add_argument("--num_proc", type=int, default=1, help="processes for feature extraction (default: 1)")
    args = parser.parse_args(bare_pairs_to_flags(argv, parser))
    check_data_arguments(args)
    for name in ("batch_size", "num_proc"):
        if getattr(args, name) < 1:
            sys.exit(f"error: {name} must be at least 1, got {getattr(args, name)}")
    return args


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
    print(classification_report(labels[test], classifier.predict(features[test]), labels=classes,
                                target_names=class_names(dataset, args.label_column, classes),
                                digits=4, zero_division=0))


if __name__ == "__main__":
    main()
