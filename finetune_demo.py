"""Fine-tune a whole BERT model as a text classifier, in NumPy: the encoder, its pooler and a new classifier
head are trained with AdamW (linear warmup and decay, gradient clipping at 1.0, dropout as the config says),
the test accuracy printed after each epoch and sklearn's classification report at the end.

    python finetune_demo.py dataset_name ../shared/data/rt_polarity_sample.csv N 2000 model_name path/to/model
    python finetune_demo.py --dataset_name reviews.csv --N 2000 --epochs 3 --lr 5e-5 --save_dir my-classifier

Both forms work: bare `key value` pairs and `--key value` flags. The data options and the train/test split
are classify_demo's: the same options and seed test on the same rows, so the two reports compare.
--save_dir writes a folder that transformers' BertForSequenceClassification and numpy-bert both load; an
interrupted run (Ctrl-C) leaves no folder behind.
"""
import os
import sys
import time

import datasets
import numpy as np
from sklearn.metrics import classification_report

import cli
from demo_data import (add_data_arguments, bare_pairs_to_flags, check_data_arguments, class_names, load_rows,
                       split_indices)
from finetune import BUCKET, predict, schedule, train_epoch, training_batches
from model_folder import save_pretrained
from optim import adamw_init
from runner import token_limit
from training import init_classifier
from utils import load_tokenizer_hparams_and_params


def parse_args(argv):
    parser = cli.ArgumentParser(description=__doc__)
    add_data_arguments(parser)
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training rows (default: 3)")
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=32, help="rows per optimizer step (default: 32)")
    parser.add_argument("--max_length", type=int, default=128,
                        help="tokens per text at most, [CLS] and [SEP] included (default: 128)")
    parser.add_argument("--warmup_ratio", type=float, default=0.1,
                        help="share of the steps with a rising learning rate, in [0, 1] (default: 0.1)")
    parser.add_argument("--weight_decay", type=float, default=0.01,
                        help="AdamW's decoupled weight decay, not on biases and LayerNorm (default: 0.01)")
    parser.add_argument("--batches_per_group", type=int, default=BUCKET,
                        help="length grouping: the shuffled training rows are cut into groups of this many "
                             "batches and sorted by length within a group, for less padding; 1 gives random "
                             "batches, as transformers' Trainer draws them (default: %(default)s)")
    parser.add_argument("--save_dir", help="write the fine-tuned model here (a new or empty folder)")
    args = parser.parse_args(bare_pairs_to_flags(argv, parser))
    check_data_arguments(args)
    for name, low in (("epochs", 1), ("batch_size", 1), ("max_length", 3), ("batches_per_group", 1)):
        if getattr(args, name) < low:
            sys.exit(f"error: {name} must be at least {low}, got {getattr(args, name)}")
    if not (np.isfinite(args.lr) and args.lr > 0):
        sys.exit(f"error: lr must be a positive number, got {args.lr}")
    if not 0 <= args.warmup_ratio <= 1:
        sys.exit(f"error: warmup_ratio must be between 0 and 1, got {args.warmup_ratio}")
    if not (np.isfinite(args.weight_decay) and args.weight_decay >= 0):
        sys.exit(f"error: weight_decay must be 0 or more, got {args.weight_decay}")
    if args.save_dir and os.path.exists(args.save_dir) and not (os.path.isdir(args.save_dir)
                                                                and not os.listdir(args.save_dir)):
        sys.exit(f"error: save_dir {args.save_dir} already exists and is not an empty folder: choose a new name")
    return args


def load_data(args):
    """The rows' texts, class ids (0 .. num_labels - 1), class names, and the train and test row indices:
    classify_demo's rows and split."""
    datasets.disable_progress_bars()
    dataset = load_rows(args)
    raw_labels = np.asarray(dataset[args.label_column])
    train, test = split_indices(raw_labels, args)
    classes = np.unique(raw_labels)
    return (list(dataset[args.text_column]), np.searchsorted(classes, raw_labels),
            class_names(dataset, args.label_column, classes), train, test)


def epoch_batches(tokens, train, args):
    """Each epoch's batches of training rows, length-grouped and shuffled with the seed."""
    rng = np.random.default_rng([args.seed, 1])
    lengths = np.array([len(t) for t in tokens])[train]
    return [[train[rows] for rows in training_batches(lengths, args.batch_size, rng, args.batches_per_group)]
            for _ in range(args.epochs)]


def fine_tune(args, progress=True):
    """Train, print each epoch's test accuracy and the report, save; returns each epoch's training seconds
    and test accuracy."""
    texts, labels, names, train, test = load_data(args)
    try:
        tokenizer, hparams, params = load_tokenizer_hparams_and_params(args.model_name, args.models_dir)
        pooler = "pooler" in params
        params = init_classifier(params, hparams, len(names), seed=args.seed)
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    if not pooler:
        print("note: this checkpoint has no pooler: a new one is trained from scratch, as transformers does",
              file=sys.stderr)
    hparams = dict(hparams, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    max_length = token_limit(hparams, args.max_length)
    tokens = [tokenizer.tokenize(text) for text in texts]
    batches = epoch_batches(tokens, train, args)
    lrs = schedule(sum(map(len, batches)), args.warmup_ratio, args.lr)
    dropout_rng = np.random.default_rng([args.seed, 2])
    state, results, step = adamw_init(params), {"epoch_seconds": [], "test_accuracy": []}, 0
    for epoch, epoch_rows in enumerate(batches, 1):
        start = time.perf_counter()
        loss = train_epoch(params, hparams, tokenizer, tokens, labels, epoch_rows, state,
                           lrs[step:step + len(epoch_rows)], max_length, args.weight_decay, rng=dropout_rng,
                           desc=f"epoch {epoch}/{args.epochs}", progress=progress)
        step += len(epoch_rows)
        results["epoch_seconds"].append(time.perf_counter() - start)
        predicted = predict([texts[i] for i in test], tokenizer, params, hparams, args.batch_size,
                            max_length).argmax(axis=-1)
        results["test_accuracy"].append(float(np.mean(predicted == labels[test])))
        print(f"epoch {epoch}: train loss {loss:.4f}, test accuracy {results['test_accuracy'][-1]:.4f} "
              f"({results['epoch_seconds'][-1]:.0f} s training)", flush=True)
    print(classification_report(labels[test], predicted, labels=range(len(names)), target_names=names,
                                digits=4, zero_division=0))
    if args.save_dir:
        save_pretrained(args.save_dir, tokenizer, params, hparams)
        print(f"saved the fine-tuned model to {args.save_dir}")
    return results


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        fine_tune(args)
    except KeyboardInterrupt:
        print("error: interrupted (a --save_dir folder is written whole or not at all)", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
