"""Continue BERT's masked-language-model pre-training on your own texts (domain adaptation), in NumPy, as
transformers' run_mlm.py does: the texts' tokens, each text as [CLS] text [SEP], are concatenated and cut into
blocks of max_length tokens; each batch has 15% of its tokens chosen anew (of those, 80% become [MASK], 10% a
random token, 10% stay), and the encoder and MLM head (its decoder tied to the word embeddings) are trained to
predict them with AdamW (linear warmup and decay, gradient clipping at 1.0, dropout as the config says). The test
texts' blocks, masked once with the seed, give the test perplexity (exp of the mean cross-entropy over their
masked tokens) before training and after each epoch. With --line_by_line each text is a sequence of its own
instead, cut to max_length tokens and padded per batch (run_mlm.py's --line_by_line: for short texts that
should not run into each other).

    python finetune_mlm_demo.py dataset_name ../shared/data/imdb_sample.csv N 1000 model_name bert-base-uncased
    python finetune_mlm_demo.py --dataset_name imdb --N 1000 --epochs 3 --save_dir my-bert-imdb

Both forms work: bare `key value` pairs and `--key value` flags. The data: a hub dataset or a local
.csv/.tsv/.json/.jsonl/.parquet file with a text column; the texts are shuffled with the seed, N of them kept and
split into training and test texts. A checkpoint without an MLM head (e.g. a sentence-transformers model) gets a
new one, as transformers' BertForMaskedLM does. --save_dir writes a folder that transformers' BertForMaskedLM,
numpy-bert's fill_mask pipeline and pipeline_demo.py load; an interrupted run (Ctrl-C) leaves no folder behind.
"""
import sys

import datasets
import numpy as np
from sklearn.model_selection import train_test_split

import cli
from demo_data import add_data_arguments, bare_pairs_to_flags, check_data_arguments, load_rows
from demo_training import add_training_arguments, check_training_arguments, load_model, run, save, train_and_evaluate
from finetune import masked_batch, masked_lm_loss, train_mlm_epoch
from layers import IGNORE
from mlm_data import group_texts, line_rows, word_starts
from runner import token_limit
from training import init_masked_lm


def parse_args(argv):
    parser = cli.ArgumentParser(description=__doc__)
    add_data_arguments(parser, columns=(("text_column", "text", "texts"),), rows="texts")
    add_training_arguments(parser, "tokens per block (the texts' tokens are concatenated and cut into blocks), "
                                   "or per text at most with --line_by_line")
    parser.add_argument("--line_by_line", action="store_true",
                        help="each text a sequence of its own, cut to max_length, instead of blocks")
    parser.add_argument("--mlm_probability", type=float, default=0.15,
                        help="share of the tokens chosen for prediction, in (0, 1) (default: %(default)s)")
    parser.add_argument("--whole_word_mask", action="store_true",
                        help="choose whole words, all their tokens at once, instead of single tokens (as "
                             "DataCollatorForLanguageModeling's whole_word_mask)")
    args = parser.parse_args(bare_pairs_to_flags(argv, parser))
    check_data_arguments(args, ["text_column"], min_rows=2)  # a training and a test text
    check_training_arguments(args)
    if not 0 < args.mlm_probability < 1:
        sys.exit(f"error: mlm_probability must be strictly between 0 and 1, got {args.mlm_probability}")
    return args


def load_blocks(args, tokenizer, block_size):
    """The training and the test texts' (blocks of token ids (mlm_data.group_texts), or with --line_by_line their
    sequences (mlm_data.line_rows; texts without a token left out, as run_mlm leaves out empty lines); with
    --whole_word_mask their word starts, grouped or cut the same way, else None); exits with one line when the
    test texts (or the training texts) hold less than one block, or no token."""
    datasets.disable_progress_bars()
    texts = load_rows(args, {"--text_column": args.text_column})[args.text_column]
    train, test = train_test_split(np.arange(len(texts)), test_size=args.test_ratio, random_state=args.seed)
    pieces = [tokenizer.tokenize_with_offsets(text) if args.whole_word_mask else (tokenizer.tokenize(text), None)
              for text in texts]
    ids = [tokenizer.convert_tokens_to_ids(["[CLS]", *tokens, "[SEP]"]) for tokens, _ in pieces]
    starts = [[False, *word_starts(offsets), False] for _, offsets in pieces] if args.whole_word_mask else None
    sides = [[i for i in rows if len(ids[i]) > 2] for rows in (train, test)] if args.line_by_line else [train, test]
    if not all(len(rows) for rows in sides):
        sys.exit("error: the training or the test texts have no tokens: give more texts (N, test_ratio)")

    def cut(lists, rows):
        chosen = [lists[i] for i in rows]
        return line_rows(chosen, block_size) if args.line_by_line else group_texts(chosen, block_size)

    try:
        return [(cut(ids, rows), None if starts is None else cut(starts, rows)) for rows in sides]
    except ValueError as err:
        sys.exit(f"error: {err} (max_length), or more texts (N, test_ratio)")


def masked_test_blocks(args, tokenizer, blocks, starts):
    """(input_ids, labels, attention_mask or None) of the test blocks (or line_rows' sequences, padded), masked
    once with the seed (mlm_data.mask_tokens; whole words with their starts, unless None)."""
    return masked_batch(blocks, np.arange(len(blocks)), tokenizer, np.random.default_rng([args.seed, 4]),
                        args.mlm_probability, starts)


def training_masks(args):
    """The generator of the training batches' masks, seeded."""
    return np.random.default_rng([args.seed, 3])


def fine_tune(args, progress=True):
    """Train, print the test perplexity before training and after each epoch, save; returns each epoch's training
    seconds and test perplexity, and the perplexity before training."""
    tokenizer, hparams, _, params = load_model(args, lambda params, hparams: init_masked_lm(params, hparams,
                                                                                            seed=args.seed))
    block_size = token_limit(hparams, args.max_length)
    (train_blocks, train_starts), (test_blocks, test_starts) = load_blocks(args, tokenizer, block_size)
    test_inputs, test_labels, test_mask = masked_test_blocks(args, tokenizer, test_blocks, test_starts)
    if not (test_labels != IGNORE).any():
        sys.exit(f"error: no test token was masked (mlm_probability {args.mlm_probability}): give more test texts "
                 "(N, test_ratio) or a larger mlm_probability")
    unit = ("texts", "texts of at most") if args.line_by_line else ("blocks", "blocks of")
    print(f"{len(train_blocks)} training {unit[0]} and {len(test_blocks)} test {unit[1]} {block_size} tokens "
          f"({int((test_labels != IGNORE).sum())} masked test tokens)", flush=True)

    def evaluate(params):
        return "test perplexity", float(np.exp(masked_lm_loss(test_inputs, test_labels, params, hparams,
                                                              args.batch_size, test_mask)))

    before = evaluate(params)[1]
    print(f"before training: test perplexity {before:.4f}", flush=True)
    mask_rng = training_masks(args)

    def epoch(params, hparams, tokenizer, blocks, batches, state, lrs, _max_length, weight_decay, **options):
        return train_mlm_epoch(params, hparams, tokenizer, blocks, batches, state, lrs, mask_rng, weight_decay,
                               mlm_probability=args.mlm_probability, starts=train_starts, **options)

    seconds, perplexity = train_and_evaluate(args, (tokenizer, params, hparams), (train_blocks,),
                                             [len(row) for row in train_blocks], np.arange(len(train_blocks)),
                                             evaluate, epoch, progress)
    save(args, (tokenizer, params, hparams))
    return {"epoch_seconds": seconds, "test_perplexity": perplexity, "perplexity_before": before}


def main(argv=None):
    run(fine_tune, parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
