"""Fine-tune a whole BERT model as a token classifier (e.g. named-entity recognition), in NumPy: the encoder and
a new classifier on every token are trained with AdamW (linear warmup and decay, gradient clipping at 1.0,
dropout as the config says), each word's tag learnt on its first token as transformers' examples do; the test
entity F1 (as seqeval computes it) is printed after each epoch, and the per-type report at the end.

    python finetune_ner_demo.py dataset_name train.conll N 2000 model_name bert-base-cased
    python finetune_ner_demo.py --dataset_name lhoestq/conll2003 --epochs 3 --save_dir my-ner

Both forms work: bare `key value` pairs and `--key value` flags. The data: a CoNLL file (.conll or .txt: a word
and its tag per line, the tag last, a blank line between sentences), or a hub dataset or .json/.jsonl/.parquet
file with a column of word lists and a column of tag lists (class ids of a ClassLabel sequence, as CoNLL-2003's
ner_tags, or tag strings). The sentences are shuffled with the seed, N of them kept and split into training
and test rows. --save_dir writes a folder that transformers' BertForTokenClassification, numpy-bert's
token_classification pipeline and pipeline_demo.py load; an interrupted run (Ctrl-C) leaves no folder behind.
"""
import os
import sys
import warnings

import datasets
import numpy as np
import pyarrow as pa
from sklearn.model_selection import train_test_split

import cli
import data
import ner_metrics
from demo_data import add_data_arguments, bare_pairs_to_flags, check_data_arguments
from demo_training import (add_training_arguments, check_training_arguments, load_model, run, save, train_and_evaluate,
                           with_label_names)
from finetune import predict_tokens, token_labels
from runner import token_limit
from layers import IGNORE
from training import init_token_classifier

COLUMNS = (("words_column", "tokens", "word lists"), ("tags_column", "ner_tags", "tag lists"))


def parse_args(argv):
    parser = cli.ArgumentParser(description=__doc__)
    add_data_arguments(parser, "lhoestq/conll2003", "a CoNLL file (.conll, .txt) or .json/.jsonl/.parquet file",
                       COLUMNS, "bert-base-cased", "sentences")
    add_training_arguments(parser)
    args = parser.parse_args(bare_pairs_to_flags(argv, parser))
    check_data_arguments(args, [option for option, _, _ in COLUMNS], min_rows=2)  # a training and a test row
    check_training_arguments(args)
    return args


def read_sentences(args):
    """(words, tags, tag names) of every sentence: tags as strings, the names of a ClassLabel column (else
    None); exits with one line on a data mistake."""
    try:
        if os.path.splitext(args.dataset_name)[1].lower() in data.CONLL_FORMATS:
            sentences = data.read_conll(args.dataset_name)
            return [w for w, _ in sentences], [t for _, t in sentences], None
        datasets.disable_progress_bars()
        columns = {"--words_column": args.words_column, "--tags_column": args.tags_column}
        dataset, _ = data.load_rows(args.dataset_name, columns, text_options=())
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    schema = dataset.features.arrow_schema
    for option, column, kinds, example in (("--words_column", args.words_column, "strings", '["EU", "rejects"]'),
                                           ("--tags_column", args.tags_column, "strings or integers", "[3, 0]")):
        kind = schema.field(column).type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not (
                pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)
                or ("integers" in kinds and pa.types.is_integer(kind.value_type))):
            sys.exit(f"error: the column {column!r} must hold a list of {kinds} per sentence (e.g. {example}), but "
                     f"it holds {kind} values: choose the column with {option}")
    names = getattr(getattr(dataset.features[args.tags_column], "feature", None), "names", None)
    tags = dataset[args.tags_column]
    return dataset[args.words_column], [[names[t] for t in row] for row in tags] if names else tags, names


def load_data(args):
    """The kept sentences' words and tag ids, the tag names, and the train and test row indices."""
    words, tags, names = read_sentences(args)
    for i, (w, t) in enumerate(zip(words, tags)):
        if len(w) != len(t) or None in w or None in t:
            sys.exit(f"error: sentence {i} has {len(w)} words and {len(t)} tags (or a missing value): each word "
                     "needs its tag")
    rows = [i for i, w in enumerate(words) if w]  # an empty sentence has nothing to learn
    rows = [rows[i] for i in np.random.default_rng(args.seed).permutation(len(rows))[:args.N]]
    if len(rows) < 2:
        sys.exit(f"error: {args.dataset_name} has {len(rows)} non-empty sentence(s): need at least two")
    names = names or sorted({tag for i in rows for tag in tags[i]})  # as transformers' run_ner sorts them
    ids = {name: i for i, name in enumerate(names)}
    train, test = train_test_split(np.arange(len(rows)), test_size=args.test_ratio, random_state=args.seed)
    return [words[i] for i in rows], [[ids[t] for t in tags[i]] for i in rows], names, train, test


def fine_tune(args, progress=True):
    """Train, print each epoch's test entity F1 and the report, save; returns each epoch's training seconds
    and F1. A type never predicted (or never true) scores 0 in the report, without seqeval's warning."""
    warnings.simplefilter("ignore", ner_metrics.UndefinedMetricWarning)
    words, tag_ids, names, train, test = load_data(args)
    tokenizer, hparams, _, params = load_model(
        args, lambda params, hparams: init_token_classifier(params, hparams, len(names), seed=args.seed))
    hparams = with_label_names(hparams, names)
    tokens, labels = zip(*[token_labels(tokenizer, w, t) for w, t in zip(words, tag_ids)])
    last = {}

    def evaluate(params):  # the test sentences' tags and predicted tags, of the words the model reads (not cut)
        logits = predict_tokens([tokens[i] for i in test], tokenizer, params, hparams, args.batch_size,
                                token_limit(hparams, args.max_length))
        last["truth"], last["predicted"] = [], []
        for i, row_logits in zip(test, logits):
            read = np.asarray(labels[i][:len(row_logits)])
            first = read != IGNORE  # each word's first token
            last["truth"].append([names[k] for k in read[first]])
            last["predicted"].append([names[k] for k in row_logits[first].argmax(axis=-1)])
        last["scores"] = ner_metrics.entity_scores(last["truth"], last["predicted"])
        return "test entity F1", last["scores"]["micro avg"]["f1-score"]

    seconds, f1 = train_and_evaluate(args, (tokenizer, params, hparams), (list(tokens), list(labels)),
                                     list(map(len, tokens)), train, evaluate, progress=progress)
    print(ner_metrics.format_report(last["scores"]))
    print(f"token accuracy {ner_metrics.token_accuracy(last['truth'], last['predicted']):.4f}")
    save(args, (tokenizer, params, hparams))
    return {"epoch_seconds": seconds, "test_f1": f1}


def main(argv=None):
    run(fine_tune, parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
