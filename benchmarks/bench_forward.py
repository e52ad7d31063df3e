"""The NumPy forward pass against HF transformers (torch, CPU) at bert-base shape and fixed batch shapes.

Each side runs in its own process on the same threads (torch's OpenMP threads keep spinning after work and
would slow NumPy's BLAS in a shared process); the processes alternate for --rounds rounds and each figure
is the best seen. On a shared virtual machine the speed of both sides drifts by 10-20% over minutes: many
short rounds give each side more chances at a quiet spell than a few long ones. Weights are synthetic
(tests/synthetic.py) at bert-base shape, written once as a safetensors checkpoint that both sides load.
The NumPy side is timed twice: bert.bert as it is (its matrix products on all BLAS threads, the element-wise
work on one core) and parallel.bert_threaded (a slice of the batch per thread, one BLAS thread each, so the
element-wise work runs on every core). Besides each shape's time it prints the forward pass's matrix products
alone (the floor no NumPy forward pass on this BLAS can beat), the share of the same-run sgemm ceiling, load
time and peak memory. Without transformers installed, only the NumPy side runs. Real text of mixed length:
benchmarks/bench_embed.py.

    python benchmarks/bench_forward.py [--rounds 5] [--repeats 2] [--threads N]
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

import benchlib
from benchlib import best_time, flops, matmuls_only, peak_rss_mb

SHAPES = [(8, 128), (1, 128), (2, 512)]


def numpy_side(folder, repeats, threads):
    import bert
    import utils
    from parallel import bert_threaded
    out = {"interpreter_mb": peak_rss_mb()}
    start = time.perf_counter()
    tokenizer, hparams, params = utils.load_tokenizer_hparams_and_params(folder)
    out["load_s"] = time.perf_counter() - start
    rng = np.random.default_rng(0)
    for B, L in SHAPES:
        ids = rng.integers(1000, hparams["vocab_size"], (B, L))
        out[f"{B}x{L}"] = best_time(lambda: bert.bert(ids, None, params, hparams), repeats)
        out[f"{B}x{L} threaded"] = best_time(lambda: bert_threaded(ids, None, params, hparams, n_threads=threads),
                                             repeats)
        if (B, L) == (8, 128):
            out["rss_8x128_mb"] = peak_rss_mb()
        out[f"{B}x{L} matmuls"] = best_time(matmuls_only(B, L, params, hparams), repeats)
    out["sgemm_gflops"] = benchlib.sgemm_gflops()
    return out


def torch_side(folder, repeats, threads):
    import torch
    from transformers import BertModel
    torch.set_num_threads(threads)
    start = time.perf_counter()
    model = BertModel.from_pretrained(folder).eval()
    out = {"load_s": time.perf_counter() - start}
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        for B, L in SHAPES:
            ids = torch.from_numpy(rng.integers(1000, model.config.vocab_size, (B, L)))
            out[f"{B}x{L}"] = best_time(lambda: model(input_ids=ids), repeats)
    return out


def best_of(results):
    return {k: (max if k == "sgemm_gflops" else min)(r[k] for r in results) for k in results[0]}


def report(ours, theirs, folder, threads):
    from synthetic import BERT_BASE_CONFIG
    weights_mb = os.path.getsize(os.path.join(folder, "model.safetensors")) / 2 ** 20
    print(f"NumPy sgemm ceiling ({'x'.join(map(str, benchlib.SGEMM))}, {threads} threads, best of the rounds): "
          f"{ours['sgemm_gflops']:.1f} GFLOP/s\n")
    torch_columns = f"{'torch ms':>10}{'speed-up':>10}" if theirs else ""
    at_most = f"{'at most':>9}" if theirs else ""
    print(f"{'shape':<10}{'bert() ms':>10}{'threaded ms':>13}{torch_columns}{'matmuls ms':>12}{at_most}{'GFLOP/s':>9}"
          f"{'of sgemm':>10}{'matmuls of sgemm':>18}")
    for B, L in SHAPES:
        key, floor = f"{B}x{L}", ours[f"{B}x{L} matmuls"]
        best = min(ours[key], ours[f"{key} threaded"])
        work = flops(B, L, BERT_BASE_CONFIG)
        torch_cells = f"{theirs[key] * 1e3:>10.1f}{theirs[key] / best:>9.2f}x" if theirs else ""
        bound = f"{theirs[key] / floor:>8.2f}x" if theirs else ""
        print(f"{key:<10}{ours[key] * 1e3:>10.1f}{ours[f'{key} threaded'] * 1e3:>13.1f}{torch_cells}"
              f"{floor * 1e3:>12.1f}{bound}{work / best / 1e9:>9.1f}{work / best / 1e9 / ours['sgemm_gflops']:>10.0%}"
              f"{work / floor / 1e9 / ours['sgemm_gflops']:>18.0%}")
    print("(bert() ms: bert.bert, its products on all BLAS threads; threaded ms: parallel.bert_threaded, a slice of"
          " the batch per thread, one BLAS thread each; speed-up, GFLOP/s and share of sgemm from the faster of"
          " the two; matmuls ms: the forward pass's matrix products alone, same shapes and weights, nothing"
          " between them" + ("; at most: torch ms / matmuls ms, the best speed-up any NumPy forward pass can reach"
                             " on this BLAS)" if theirs else ")"))
    if not theirs:
        print("skipped: the torch side (transformers is not installed: pip install -r requirements-golden.txt)")
    rss_ratio = (ours["rss_8x128_mb"] - ours["interpreter_mb"]) / weights_mb
    print(f"\nload: numpy {ours['load_s']:.3f} s" + (f", torch {theirs['load_s']:.2f} s" if theirs else ""))
    print(f"peak RSS at 8x128: {ours['rss_8x128_mb']:.0f} MB = interpreter {ours['interpreter_mb']:.0f} MB"
          f" + {rss_ratio:.2f} x weights ({weights_mb:.0f} MB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of both sides (default 5)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per shape in each round (default 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both sides")
    parser.add_argument("--side", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1 or args.repeats < 1 or args.threads < 1:
        sys.exit("error: --rounds, --repeats and --threads must be at least 1")
    if args.side:
        result = (numpy_side(args.folder, args.repeats, args.threads) if args.side == "numpy"
                  else torch_side(args.folder, args.repeats, args.threads))
        print(json.dumps(result))
        return
    sides = ["numpy", "torch"]
    try:
        import transformers  # noqa: F401  (only checks that the comparison can run)
        import torch
        torch_version = f"; torch {torch.__version__}, transformers {transformers.__version__}"
    except ImportError:
        sides, torch_version = ["numpy"], ""
    print(f"machine: {benchlib.machine()}{torch_version}")
    print(f"{args.threads} threads for both sides, best of {args.rounds} alternating rounds of {args.repeats} runs")
    with tempfile.TemporaryDirectory() as folder:
        benchlib.write_bert_base_checkpoint(folder)
        results = {side: [] for side in sides}
        for _ in range(args.rounds):
            for side in sides:
                results[side].append(benchlib.run_side(os.path.abspath(__file__), args.threads, "--side", side,
                                                       "--folder", folder, "--repeats", args.repeats))
        report(best_of(results["numpy"]), best_of(results["torch"]) if "torch" in results else None, folder,
               args.threads)


if __name__ == "__main__":
    main()
