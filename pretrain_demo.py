"""BERT's two pre-training tasks on your own sentences: masked-word prediction and next-sentence prediction.

    python pretrain_demo.py --text_a "The apple doesn't fall far from the tree." \\
        --text_b "Instead, it falls on Newton's head." --mask_prob 0.20

masks a few of the word pieces at random (reproducibly, --seed), lets the model predict them and prints
`mlm_accuracy = <float>`; with --text_b it also prints `is_next_sentence = True|False`. Write [MASK] into
the text yourself to have those positions filled in instead.
"""
import sys

import numpy as np

import cli
from bert import bert, mlm_head, nsp_head, softmax  # softmax works in place on the fresh logits
from pipelines import fill_mask
from runner import token_limit
from utils import load_tokenizer_hparams_and_params

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]")


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__)
    parser.add_argument("--text_a", required=True, help="first sentence")
    parser.add_argument("--text_b", help="second sentence; enables next-sentence prediction")
    parser.add_argument("--model_name", default="bert-base-uncased",
                        help="short name, hub id (owner/name) or local folder (default: %(default)s)")
    parser.add_argument("--models_dir", default="models", help="download cache (default: %(default)s)")
    parser.add_argument("--mask_prob", type=float, default=0.15,
                        help="share of word pieces to mask, in [0, 1] (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=123,
                        help="seed for choosing the masked positions (default: %(default)s)")
    parser.add_argument("--top_k", type=int, default=5,
                        help="candidates shown per masked position, at most the vocabulary's size "
                             "(default: %(default)s)")
    parser.add_argument("--verbose", action="store_true",
                        help="show the masked input, the top-k candidates and the NSP probability")
    args = parser.parse_args(argv)
    if not args.text_a.strip():
        parser.error("--text_a is empty: give a sentence")
    if not 0.0 <= args.mask_prob <= 1.0:
        parser.error(f"--mask_prob must be between 0 and 1, got {args.mask_prob}")
    if args.top_k < 1:
        parser.error(f"--top_k must be at least 1, got {args.top_k}")
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative integer, got {args.seed}")
    return args


def choose_masked_positions(tokens, mask_prob, seed):
    """Positions to mask: round(mask_prob * candidates) word pieces (at least one when mask_prob > 0),
    never [CLS]/[SEP]/[PAD]; the same positions for the same seed."""
    candidates = [i for i, token in enumerate(tokens) if token not in SPECIAL_TOKENS]
    n_masked = round(mask_prob * len(candidates))
    if mask_prob > 0:
        n_masked = max(n_masked, 1)
    chosen = np.random.default_rng(seed).choice(candidates, size=min(n_masked, len(candidates)), replace=False)
    return sorted(int(i) for i in chosen)


def top_k_candidates(probs, tokenizer, k):
    """[(token, probability), ...] for the k most likely tokens of vocab.txt, most likely first (a checkpoint
    may have spare embedding rows beyond vocab.txt)."""
    probs = probs[:len(tokenizer.vocab)]
    ids = np.argsort(-probs)[:k]
    return list(zip(tokenizer.convert_ids_to_tokens([int(i) for i in ids]), probs[ids].tolist()))


def format_candidates(candidates):
    return ", ".join(f"{token} {prob:.4f}" for token, prob in candidates)


def predict(seq_output, pooled_output, masked, params, hparams, with_nsp):
    """MLM probabilities (len(masked), V) at the masked positions and, with_nsp, the probability that
    text_b follows text_a. Raises ValueError when the checkpoint lacks a head that is needed."""
    mlm_probs = softmax(mlm_head(seq_output[0, masked], params, hparams))
    is_next_prob = float(softmax(nsp_head(pooled_output[0], params))[0]) if with_nsp else None
    return mlm_probs, is_next_prob


def main(argv=None):
    args = parse_args(argv)
    try:
        tokenizer, hparams, params = load_tokenizer_hparams_and_params(args.model_name, args.models_dir)
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")

    if args.top_k > len(tokenizer.vocab):
        print(f"note: --top_k {args.top_k} is more than the {len(tokenizer.vocab)} tokens of the vocabulary: "
              f"showing all {len(tokenizer.vocab)}", file=sys.stderr)
        args.top_k = len(tokenizer.vocab)
    text_b = args.text_b or None  # an empty second text is no second text, as in the tokenizer
    max_length = token_limit(hparams)
    batch = tokenizer.batch_encode([args.text_a], None if text_b is None else [text_b], max_length=max_length)
    input_ids, segment_ids = batch["input_ids"][0].tolist(), batch["segment_ids"][0].tolist()
    tokens, n_tokens = tokenizer.convert_ids_to_tokens(input_ids), batch["untruncated_length"][0]
    if n_tokens > max_length:
        print(f"note: the input has {n_tokens} tokens, cut to the model's limit of {max_length}", file=sys.stderr)

    written = [i for i, token in enumerate(tokens) if token == "[MASK]"]
    masked = written or choose_masked_positions(tokens, args.mask_prob, args.seed)
    mask_id = tokenizer.convert_tokens_to_ids(["[MASK]"])[0]
    masked_ids = [mask_id if i in masked else token_id for i, token_id in enumerate(input_ids)]

    seq_output, pooled_output = bert(np.asarray([masked_ids]), np.asarray([segment_ids]), params, hparams)
    try:
        mlm_probs, is_next_prob = predict(seq_output, pooled_output, [] if written else masked, params, hparams,
                                          with_nsp=text_b is not None)
        filled = written and fill_mask([args.text_a], tokenizer, params, hparams, top_k=args.top_k,
                                       text_pairs=None if text_b is None else [text_b])[0]
    except ValueError as err:
        sys.exit(f"error: {args.model_name}: {err}; pretrain_demo needs a checkpoint with its pre-training "
                 "heads, such as bert-base-uncased")

    if written:  # [MASK]s written into the text, filled in as transformers' fill-mask pipeline does
        for n, (position, fills) in enumerate(zip(written, filled if len(written) > 1 else [filled]), start=1):
            candidates = [(fill["token_str"], fill["score"]) for fill in fills]
            print(f"[MASK] {n} (position {position}): {format_candidates(candidates)}")
    if args.verbose and not written:
        print("masked input:", " ".join(tokenizer.convert_ids_to_tokens(masked_ids)))
    accuracy = None if written else mlm_accuracy(tokens, masked, mlm_probs, tokenizer, args.top_k, args.verbose)
    if args.verbose and is_next_prob is not None:
        print(f"P(text_b follows text_a) = {is_next_prob:.4f}")

    if accuracy is not None:
        print(f"mlm_accuracy = {accuracy}")
    if is_next_prob is not None:
        print(f"is_next_sentence = {is_next_prob > 0.5}")


def mlm_accuracy(tokens, masked, mlm_probs, tokenizer, top_k, verbose):
    """Share of masked positions whose most likely token is the actual one (nan when none is masked);
    verbose prints each position's actual token, prediction and top-k candidates."""
    correct = 0
    for position, probs in zip(masked, mlm_probs):
        candidates = top_k_candidates(probs, tokenizer, top_k)
        correct += candidates[0][0] == tokens[position]
        if verbose:
            print(f"position {position}: actual {tokens[position]}  predicted {candidates[0][0]}  "
                  f"top-{top_k}: {format_candidates(candidates)}")
    return correct / len(masked) if masked else float("nan")


if __name__ == "__main__":
    main()
