"""What the fine-tuning demos share (finetune_demo.py for texts, finetune_ner_demo.py for tokens): the training
options and their checks, each epoch's length-grouped batches, and the loop of epochs that trains, evaluates
on the test rows, prints a line per epoch and saves the model. A user mistake exits with one `error:` line."""
import os
import sys
import time

import numpy as np

from finetune import BUCKET, schedule, train_epoch, training_batches
from model_folder import save_pretrained
from optim import adamw_init
from runner import token_limit
from utils import load_tokenizer_hparams_and_params


def add_training_arguments(parser, max_length="tokens per text at most, [CLS] and [SEP] included"):
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training rows (default: 3)")
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=32, help="rows per optimizer step (default: 32)")
    parser.add_argument("--max_length", type=int, default=128,
                        help=f"{max_length} (default: 128)")
    parser.add_argument("--warmup_ratio", type=float, default=0.1,
                        help="share of the steps with a rising learning rate, in [0, 1] (default: 0.1)")
    parser.add_argument("--weight_decay", type=float, default=0.01,
                        help="AdamW's decoupled weight decay, not on biases and LayerNorm (default: 0.01)")
    parser.add_argument("--batches_per_group", type=int, default=BUCKET,
                        help="length grouping: the shuffled training rows are cut into groups of this many "
                             "batches and sorted by length within a group, for less padding; 1 gives random "
                             "batches, as transformers' Trainer draws them (default: %(default)s)")
    parser.add_argument("--save_dir", help="write the fine-tuned model here (a new or empty folder)")


def check_training_arguments(args):
    """Exits with one line unless the training options make sense."""
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


def load_model(args, init):
    """(tokenizer, hparams, the checkpoint's params, init(params, hparams)): the model of --model_name made
    ready to train; one that cannot be loaded or trained exits with one error line."""
    try:
        tokenizer, hparams, params = load_tokenizer_hparams_and_params(args.model_name, args.models_dir)
        return tokenizer, hparams, params, init(params, hparams)
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")


def with_label_names(hparams, names):
    """hparams with the classes' names as id2label and label2id (what save_pretrained writes)."""
    return dict(hparams, id2label=dict(enumerate(names)), label2id={name: i for i, name in enumerate(names)})


def epoch_batches(lengths, train, args):
    """Each epoch's batches of training rows (lengths: every row's), length-grouped and shuffled with the seed."""
    rng = np.random.default_rng([args.seed, 1])
    lengths = np.asarray(lengths)[train]
    return [[train[rows] for rows in training_batches(lengths, args.batch_size, rng, args.batches_per_group)]
            for _ in range(args.epochs)]


def train_and_evaluate(args, model, data, lengths, train, evaluate, epoch_function=train_epoch, progress=True):
    """args.epochs epochs of AdamW steps over the training rows, model = (tokenizer, params, hparams) with
    params trained in place by epoch_function(params, hparams, tokenizer, *data, batches, state, lrs, ...):
    finetune.train_epoch (data: tokens, labels) or train_pairs_epoch (data: the columns' tokens). After each
    epoch a line with the training loss and evaluate(params) -> (name, score) on the test rows. Returns each
    epoch's training seconds and score."""
    tokenizer, params, hparams = model
    max_length = token_limit(hparams, args.max_length)
    batches = epoch_batches(lengths, train, args)
    lrs = schedule(sum(map(len, batches)), args.warmup_ratio, args.lr)
    dropout_rng = np.random.default_rng([args.seed, 2])
    state, seconds, scores, step = adamw_init(params), [], [], 0
    for epoch, epoch_rows in enumerate(batches, 1):
        start = time.perf_counter()
        loss = epoch_function(params, hparams, tokenizer, *data, epoch_rows, state, lrs[step:step + len(epoch_rows)],
                              max_length, args.weight_decay, rng=dropout_rng, desc=f"epoch {epoch}/{args.epochs}",
                              progress=progress)
        step += len(epoch_rows)
        seconds.append(time.perf_counter() - start)
        name, score = evaluate(params)
        scores.append(score)
        print(f"epoch {epoch}: train loss {loss:.4f}, {name} {score:.4f} ({seconds[-1]:.0f} s training)", flush=True)
    return seconds, scores


def save(args, model, writer=save_pretrained):
    """writer(args.save_dir, tokenizer, params, hparams) when --save_dir is given."""
    if args.save_dir:
        writer(args.save_dir, *model)
        print(f"saved the fine-tuned model to {args.save_dir}")


def run(fine_tune, args):
    """fine_tune(args), Ctrl-C answered with one line and exit status 130."""
    try:
        fine_tune(args)
    except KeyboardInterrupt:
        print("error: interrupted (a --save_dir folder is written whole or not at all)", file=sys.stderr)
        sys.exit(130)
