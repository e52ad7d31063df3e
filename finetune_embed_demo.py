"""Fine-tune a sentence-embedding model on pairs of texts that belong together (a question and its answer, a
sentence and its paraphrase), in NumPy, with sentence-transformers' MultipleNegativesRankingLoss: each anchor
should be closer to its own positive than to every other positive of the batch (and to the hard negatives, if
a negative column is given). AdamW with linear warmup and decay, gradient clipping at 1.0, dropout as the
config says. Before training and after each epoch, the test pairs are scored as a retrieval task: each test
anchor searches all test positives; accuracy@1 and MRR@10 are printed, as sentence-transformers'
InformationRetrievalEvaluator computes them.

    python finetune_embed_demo.py dataset_name pairs.csv anchor_column question positive_column answer
    python finetune_embed_demo.py --dataset_name sentence-transformers/natural-questions --N 5000 --save_dir my-model

Both forms work: bare `key value` pairs and `--key value` flags. The model keeps its own pooling and Normalize
(a sentence-transformers folder's; a plain BERT checkpoint gets mean pooling, as sentence-transformers gives
it). --save_dir writes a sentence-transformers folder that sentence-transformers, numpy-bert's embed and
embed_corpus.py load; an interrupted run (Ctrl-C) leaves no folder behind.
"""
import functools
import sys

import datasets
import numpy as np
from sklearn.model_selection import train_test_split

import cli
from demo_data import add_data_arguments, bare_pairs_to_flags, check_data_arguments, load_rows
from demo_training import add_training_arguments, check_training_arguments, load_model, run, save, train_and_evaluate
from embedding_training import init_embedding_training, training_settings
from finetune import train_pairs_epoch
from model_folder import save_sentence_transformer
from pipelines import embed, lowercased
from runner import token_limit
from search import semantic_search

COLUMNS = (("anchor_column", "query", "anchors (e.g. questions)"),
           ("positive_column", "answer", "positives (e.g. the answers)"))
CUTOFFS = (1, 3, 5, 10)


def parse_args(argv):
    parser = cli.ArgumentParser(description=__doc__)
    add_data_arguments(parser, "sentence-transformers/natural-questions",
                       "a local .csv/.tsv/.json/.jsonl/.parquet file", COLUMNS,
                       "sentence-transformers/all-MiniLM-L6-v2", "pairs")
    parser.add_argument("--negative_column", help="column with a hard negative for each anchor (default: none)")
    parser.add_argument("--scale", type=float, default=20.0,
                        help="the loss's scale on the cosine similarities, 1 / temperature (default: %(default)s)")
    add_training_arguments(parser)
    args = parser.parse_args(bare_pairs_to_flags(argv, parser))
    check_data_arguments(args, [option for option, _, _ in COLUMNS], min_rows=2)  # a training and a test pair
    check_training_arguments(args)
    if not (np.isfinite(args.scale) and args.scale > 0):
        sys.exit(f"error: scale must be a positive number, got {args.scale}")
    if args.negative_column in (args.anchor_column, args.positive_column):
        sys.exit(f"error: negative_column {args.negative_column!r} is also the anchor or positive column")
    return args


def load_data(args):
    """The kept rows' columns of texts (anchors, positives, negatives if any), and the train and test rows."""
    datasets.disable_progress_bars()
    options = ["--anchor_column", "--positive_column"] + (["--negative_column"] if args.negative_column else [])
    names = [getattr(args, option[2:]) for option in options]
    dataset = load_rows(args, dict(zip(options, names)), text_options=options)
    if len(dataset) < 2:
        sys.exit(f"error: {args.dataset_name} has {len(dataset)} complete row(s): need at least two pairs")
    train, test = train_test_split(np.arange(len(dataset)), test_size=args.test_ratio, random_state=args.seed)
    return [list(dataset[name]) for name in names], train, test


def retrieval_scores(anchors, positives):
    """Each anchor's search of all positives (its own at the same row): accuracy@k and MRR@10."""
    hits = semantic_search(anchors, positives, top_k=max(CUTOFFS))
    ranks = [next((rank for rank, hit in enumerate(row, 1) if hit["corpus_id"] == i), None)
             for i, row in enumerate(hits)]
    scores = {f"accuracy@{k}": float(np.mean([r is not None and r <= k for r in ranks])) for k in CUTOFFS}
    scores["MRR@10"] = float(np.mean([1 / r if r else 0.0 for r in ranks]))
    return scores


def pair_lengths(tokens):
    """Each row's longest text in tokens (one list of token lists per column): what its batch is padded to."""
    return np.max([list(map(len, column)) for column in tokens], axis=0)


def fine_tune(args, progress=True):
    """Train, print the test retrieval scores before training and after each epoch, save; returns each epoch's
    training seconds and test MRR@10."""
    columns, train, test = load_data(args)
    tokenizer, hparams, params, trained = load_model(args, init_embedding_training)
    settings = training_settings(hparams)
    max_length = token_limit(hparams, args.max_length)
    last = {}

    def evaluate(trained):
        model = {**params, **trained}
        anchors, positives = ([column[i] for i in test] for column in columns[:2])
        vectors = [embed(texts, tokenizer, model, hparams, args.batch_size, settings["pooling"], True, max_length,
                         progress=False) for texts in (anchors, positives)]
        last["scores"] = retrieval_scores(*vectors)
        return "test MRR@10", last["scores"]["MRR@10"]

    print(f"before training: test MRR@10 {evaluate(trained)[1]:.4f}, accuracy@1 {last['scores']['accuracy@1']:.4f}")
    tokens = [[tokenizer.tokenize(text) for text in (lowercased(column, tokenizer) if settings["do_lower_case"]
                                                     else column)] for column in columns]
    lengths = pair_lengths(tokens)
    seconds, mrr = train_and_evaluate(args, (tokenizer, trained, hparams), (tokens,), lengths, train, evaluate,
                                      functools.partial(train_pairs_epoch, scale=args.scale), progress)
    print("test retrieval: " + ", ".join(f"{name} {value:.4f}" for name, value in last["scores"].items()))
    save(args, (tokenizer, {**params, **trained}, hparams), save_sentence_transformer)
    return {"epoch_seconds": seconds, "test_mrr": mrr}


def main(argv=None):
    run(fine_tune, parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
