"""Fine-tune a whole BERT model as a text classifier, in NumPy: the encoder, its pooler and a new classifier
head are trained with AdamW (linear warmup and decay, gradient clipping at 1.0, dropout as the config says),
the test accuracy printed after each epoch and sklearn's classification report at the end.

    python finetune_demo.py dataset_name ../shared/data/rt_polarity_sample.csv N 2000 model_name path/to/model
    python finetune_demo.py --dataset_name reviews.csv --N 2000 --epochs 3 --lr 5e-5 --save_dir my-classifier

Both forms work: bare `key value` pairs and `--key value` flags. The data options and the train/test split
are classify_demo's: the same options and seed test on the same rows, so the two reports compare.
--text_pair_column trains on pairs of texts, [CLS] text [SEP] pair [SEP] (e.g. paraphrase or entailment),
as transformers' run_glue does for a task with two sentence columns.
--save_dir writes a folder that transformers' BertForSequenceClassification and numpy-bert both load; an
interrupted run (Ctrl-C) leaves no folder behind.
"""
import sys

import datasets
import numpy as np
from sklearn.metrics import classification_report

import cli
from demo_data import (add_data_arguments, bare_pairs_to_flags, check_data_arguments, class_names, load_rows,
                       split_indices)
from demo_training import (add_training_arguments, check_training_arguments, load_model, run, save, train_and_evaluate,
                           with_label_names)
from finetune import predict
from runner import token_limit
from training import init_classifier


def parse_args(argv):
    parser = cli.ArgumentParser(description=__doc__)
    add_data_arguments(parser)
    parser.add_argument("--text_pair_column", help="column with the second text of each pair, if the rows are "
                                                   "pairs of texts (default: none)")
    add_training_arguments(parser)
    args = parser.parse_args(bare_pairs_to_flags(argv, parser))
    check_data_arguments(args)
    if args.text_pair_column in (args.text_column, args.label_column):
        sys.exit(f"error: text_pair_column is {args.text_pair_column!r}, as another column: the second texts need a "
                 "column of their own")
    check_training_arguments(args)
    return args


def load_data(args):
    """The rows' texts (with --text_pair_column, (text, pair) tuples), class ids (0 .. num_labels - 1), class
    names, and the train and test row indices: classify_demo's rows and split."""
    datasets.disable_progress_bars()
    columns = {"--text_column": args.text_column, "--label_column": args.label_column}
    if args.text_pair_column:
        columns["--text_pair_column"] = args.text_pair_column
    dataset = load_rows(args, columns, [option for option in columns if option != "--label_column"])
    raw_labels = np.asarray(dataset[args.label_column])
    train, test = split_indices(raw_labels, args)
    classes = np.unique(raw_labels)
    texts = list(dataset[args.text_column])
    if args.text_pair_column:
        texts = list(zip(texts, dataset[args.text_pair_column]))
    return texts, np.searchsorted(classes, raw_labels), class_names(dataset, args.label_column, classes), train, test


def fine_tune(args, progress=True):
    """Train, print each epoch's test accuracy and the report, save; returns each epoch's training seconds
    and test accuracy."""
    texts, labels, names, train, test = load_data(args)
    tokenizer, hparams, checkpoint, params = load_model(
        args, lambda params, hparams: init_classifier(params, hparams, len(names), seed=args.seed))
    if "pooler" not in checkpoint:
        print("note: this checkpoint has no pooler: a new one is trained from scratch, as transformers does",
              file=sys.stderr)
    hparams = with_label_names(hparams, names)
    pairs = bool(args.text_pair_column)
    test_texts, last = [texts[i] for i in test], {}

    def evaluate(params):  # the test rows' predicted classes, kept for the report
        first, second = zip(*test_texts) if pairs else (test_texts, None)
        last["predicted"] = predict(list(first), tokenizer, params, hparams, args.batch_size,
                                    token_limit(hparams, args.max_length),
                                    list(second) if pairs else None).argmax(axis=-1)
        return "test accuracy", float(np.mean(last["predicted"] == labels[test]))

    tokens = [tuple(map(tokenizer.tokenize, t)) if pairs else tokenizer.tokenize(t) for t in texts]
    lengths = [sum(map(len, t)) if pairs else len(t) for t in tokens]
    seconds, accuracy = train_and_evaluate(args, (tokenizer, params, hparams), (tokens, labels), lengths, train,
                                           evaluate, progress=progress)
    print(classification_report(labels[test], last["predicted"], labels=range(len(names)), target_names=names,
                                digits=4, zero_division=0))
    save(args, (tokenizer, params, hparams))
    return {"epoch_seconds": seconds, "test_accuracy": accuracy}


def main(argv=None):
    run(fine_tune, parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
