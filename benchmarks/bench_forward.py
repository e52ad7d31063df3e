"""The NumPy forward pass against HF transformers (torch, CPU) at bert-base shape, on the same threads.

Each side runs in its own process (torch's OpenMP threads keep spinning after work and would slow NumPy's
BLAS in a shared process); the processes alternate for --rounds rounds and each figure is the best seen.
On a shared virtual machine the speed of both sides drifts by 10-20% over minutes: many short rounds give
each side more chances at a quiet spell than a few long ones.
Weights are synthetic (tests/synthetic.py) at bert-base shape, written once as a safetensors checkpoint
that both sides load. Without transformers installed, only the NumPy side runs.

    python benchmarks/bench_forward.py [--rounds 5] [--repeats 2] [--threads N]
"""
import argparse
import csv
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
SHAPES = [(8, 128), (1, 128), (2, 512)]
SGEMM = (1024, 768, 3072)
GOALS = {"speed-up": 1.2, "share of sgemm at 8x128": 0.8, "load seconds": 0.5, "rss ratio": 1.3}


def flops(B, L, c):
    """Multiply-adds x 2 of the encoder: the dense layers and the two attention products."""
    H, I = c["hidden_size"], c["intermediate_size"]
    return c["num_hidden_layers"] * 2 * B * L * (4 * H * H + 2 * H * I + 2 * L * H)


def best_time(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_mb():
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def mixed_texts(data_file, n=32, seed=0):
    """n real IMDB reviews cut to 8-250 words each, in a fixed order."""
    with open(data_file, encoding="utf-8") as f:
        reviews = [row["text"].replace("<br />", " ") for row in csv.DictReader(f)]
    rng = random.Random(seed)
    return [" ".join(review.split()[:rng.randint(8, 250)]) for review in rng.sample(reviews, n)]


def write_checkpoint(folder):
    """bert-base-shaped synthetic weights as config.json + vocab.txt + model.safetensors."""
    from checkpoint import write_safetensors
    from conftest import minilm_dir
    from synthetic import BERT_BASE_CONFIG, synthetic_state_dict
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(dict(BERT_BASE_CONFIG, model_type="bert"), f)
    shutil.copy(os.path.join(minilm_dir(), "vocab.txt"), folder)  # bert-base-uncased's vocabulary
    write_safetensors(os.path.join(folder, "model.safetensors"), synthetic_state_dict(BERT_BASE_CONFIG))


def matmuls_only(B, L, params, hparams):
    """The forward pass's matrix products alone, at the same shapes and on the same weights, with nothing
    between them: the time no NumPy forward pass on this BLAS can beat."""
    H, I, A = hparams["hidden_size"], hparams["intermediate_size"], hparams["num_attention_heads"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B * L, H), dtype=np.float32)
    h = rng.standard_normal((B * L, I), dtype=np.float32)
    probs = rng.random((B, A, L, L), dtype=np.float32)
    q, k, v = (x @ params["blocks"][0]["attn"]["qkv"]["w"]).reshape(B, L, 3, A, H // A).transpose(2, 0, 3, 1, 4)

    def run():
        for block in params["blocks"]:
            x @ block["attn"]["qkv"]["w"], q @ k.transpose(0, 1, 3, 2), probs @ v
            x @ block["attn"]["proj"]["w"], x @ block["ffn"]["fc"]["w"], h @ block["ffn"]["proj"]["w"]
    return run


def numpy_side(folder, texts, repeats):
    import bert
    import pipelines
    import utils
    out = {"interpreter_mb": peak_rss_mb()}
    start = time.perf_counter()
    tokenizer, hparams, params = utils.load_tokenizer_hparams_and_params(folder)
    out["load_s"] = time.perf_counter() - start
    rng = np.random.default_rng(0)
    for B, L in SHAPES:
        ids = rng.integers(1000, hparams["vocab_size"], (B, L))
        out[f"{B}x{L}"] = best_time(lambda: bert.bert(ids, None, params, hparams), repeats)
        if (B, L) == (8, 128):
            out["rss_8x128_mb"] = peak_rss_mb()
        out[f"{B}x{L} matmuls"] = best_time(matmuls_only(B, L, params, hparams), repeats)
    out["mixed"] = best_time(lambda: pipelines.embed(texts, tokenizer, params, hparams, batch_size=16,
                                                     progress=False), repeats)
    M, K, N = SGEMM
    a, b = rng.random((M, K), dtype=np.float32), rng.random((K, N), dtype=np.float32)
    out["sgemm_gflops"] = 2 * M * K * N / best_time(lambda: a @ b, 10) / 1e9
    return out


def torch_side(folder, texts, repeats, threads):
    import torch
    from transformers import AutoTokenizer, BertModel
    torch.set_num_threads(threads)
    start = time.perf_counter()
    model = BertModel.from_pretrained(folder).eval()
    out = {"load_s": time.perf_counter() - start}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rng = np.random.default_rng(0)

    def mixed():
        for i in range(0, len(texts), 16):
            model(**tokenizer(texts[i:i + 16], padding=True, truncation=True, return_tensors="pt"))

    with torch.inference_mode():
        for B, L in SHAPES:
            ids = torch.from_numpy(rng.integers(1000, model.config.vocab_size, (B, L)))
            out[f"{B}x{L}"] = best_time(lambda: model(input_ids=ids), repeats)
        out["mixed"] = best_time(mixed, repeats)
    return out


def run_side(side, args):
    """One side in a fresh process; returns its JSON result."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, __file__, "--side", side, "--folder", args.folder, "--data", args.data,
           "--repeats", str(args.repeats), "--threads", str(args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: the {side} side failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_of(results):
    return {k: (max if k == "sgemm_gflops" else min)(r[k] for r in results) for k in results[0]}


def report(ours, theirs, folder):
    from synthetic import BERT_BASE_CONFIG
    weights_mb = os.path.getsize(os.path.join(folder, "model.safetensors")) / 2 ** 20
    cpu = re.sub(r"\s+", " ", next((line.split(":", 1)[1] for line in open("/proc/cpuinfo")
                                    if line.startswith("model name")), platform.processor())).strip()
    print(f"machine: {cpu}, {os.cpu_count()} cores; numpy {np.__version__}; python {platform.python_version()}")
    print(f"NumPy sgemm ceiling ({'x'.join(map(str, SGEMM))}): {ours['sgemm_gflops']:.1f} GFLOP/s\n")
    print(f"{'shape':<10}{'numpy ms':>10}{'torch ms':>10}{'speed-up':>10}{'matmuls ms':>12}{'at most':>9}"
          f"{'GFLOP/s':>9}{'of sgemm':>10}")
    nan = float("nan")
    checks = []
    for key in [f"{B}x{L}" for B, L in SHAPES] + ["mixed"]:
        floor = ours.get(f"{key} matmuls")  # the matrix products alone; none for the mixed workload
        ratio = theirs[key] / ours[key] if theirs else None
        at_most = theirs[key] / floor if theirs and floor else None
        gflops = flops(*map(int, key.split("x")), BERT_BASE_CONFIG) / ours[key] / 1e9 if floor else None
        print(f"{key:<10}{ours[key] * 1e3:>10.1f}{theirs[key] * 1e3 if theirs else nan:>10.1f}"
              f"{ratio or nan:>9.2f}x{floor * 1e3 if floor else nan:>12.1f}{at_most or nan:>8.2f}x"
              f"{gflops or nan:>9.1f}{(gflops or nan) / ours['sgemm_gflops']:>10.0%}")
        if ratio:
            bound = f"; the matmuls alone allow at most {at_most:.2f}" if at_most else ""
            checks.append((f"speed-up {key}", ratio, ">=", GOALS["speed-up"], bound))
    print("(matmuls ms: the forward pass's matrix products alone, same shapes and weights, nothing between them;"
          "\n at most: torch ms / matmuls ms, the best speed-up any NumPy forward pass can reach on this BLAS)")
    share = flops(8, 128, BERT_BASE_CONFIG) / ours["8x128"] / 1e9 / ours["sgemm_gflops"]
    rss_ratio = (ours["rss_8x128_mb"] - ours["interpreter_mb"]) / weights_mb
    print(f"\nload: numpy {ours['load_s']:.3f} s" + (f", torch {theirs['load_s']:.2f} s" if theirs else ""))
    print(f"peak RSS at 8x128: {ours['rss_8x128_mb']:.0f} MB = interpreter {ours['interpreter_mb']:.0f} MB"
          f" + {rss_ratio:.2f} x weights ({weights_mb:.0f} MB)")
    matmul_share = flops(8, 128, BERT_BASE_CONFIG) / ours["8x128 matmuls"] / 1e9 / ours["sgemm_gflops"]
    checks += [("share of sgemm at 8x128", share, ">=", GOALS["share of sgemm at 8x128"],
                f"; the matmuls alone reach {matmul_share:.2f}"),
               ("load seconds", ours["load_s"], "<=", GOALS["load seconds"], ""),
               ("rss ratio", rss_ratio, "<=", GOALS["rss ratio"], "")]
    print("\ngoals:")
    for name, value, op, goal, bound in checks:
        ok = value >= goal if op == ">=" else value <= goal
        print(f"  {'met ' if ok else 'MISSED'} {name}: {value:.2f} (goal {op} {goal}{bound})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of both sides (default 5)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per shape in each round (default 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both sides")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "imdb_sample.csv"),
                        help="CSV with a text column for the mixed workload")
    parser.add_argument("--side", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not os.path.isfile(args.data):
        sys.exit(f"error: no data file {args.data}: pass --data with a CSV that has a text column")
    if args.side:
        texts = mixed_texts(args.data)
        result = (numpy_side(args.folder, texts, args.repeats) if args.side == "numpy"
                  else torch_side(args.folder, texts, args.repeats, args.threads))
        print(json.dumps(result))
        return
    try:
        import transformers  # noqa: F401  (only checks that the comparison can run)
        sides = ["numpy", "torch"]
    except ImportError:
        print("transformers is not installed: timing the NumPy side only")
        sides = ["numpy"]
    with tempfile.TemporaryDirectory() as args.folder:
        write_checkpoint(args.folder)
        results = {side: [] for side in sides}
        for _ in range(args.rounds):
            for side in sides:
                results[side].append(run_side(side, args))
        report(best_of(results["numpy"]), best_of(results["torch"]) if "torch" in results else None,
               args.folder)


if __name__ == "__main__":
    main()
