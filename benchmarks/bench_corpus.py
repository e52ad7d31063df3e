"""embed_corpus.py measured: the same numbers as embed, bounded memory, and the throughput of the local and the Ray
engine against the best single embed call. One command:

    python benchmarks/bench_corpus.py                          # the full run (a quiet machine: ~30 minutes)
    python benchmarks/bench_corpus.py --rows 300 --memory_rows 2000 20000 --rounds 1   # a quick check

Texts are real movie reviews from ../shared/data (else built from the hub: tests/review_data.py), repeated to
size. Every timed side runs in its own process (imports and the interpreter are not timed; the model load is,
on both sides), the sides alternate for --rounds rounds, and each figure is the best seen: the machine is
shared and drifts 10-20%.
- throughput: `embed` on all --rows texts in one call (the best a single call does, default threads) vs
  embed_corpus.py's local engine and its Ray engine (2 workers on a local Ray started before the clock,
  as a cluster would be) on the same texts in a CSV file, output written.
- same numbers: every row of both engines' output against that embed call; then a run on the first 2,000
  texts killed (SIGKILL) after its first shards and resumed: the same rows, none lost, none twice.
- memory: peak RSS of an embed_corpus.py run, local engine, in a fresh process, on --memory_rows rows of IMDb
  reviews.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
SETTINGS = ["--pooling", "mean", "--normalize"]  # how all-MiniLM-L6-v2 is meant to be used
KILLED_ROWS = 2000  # the texts of the killed and resumed run


def parse_args():
    from conftest import minilm_dir
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--rows", type=int, default=20_000, help="texts for the throughput runs (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the three sides (default 3)")
    parser.add_argument("--memory_rows", type=int, nargs=2, default=[20_000, 200_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--model", default=minilm_dir(), help="model for throughput and equality (all-MiniLM-L6-v2)")
    parser.add_argument("--memory_model", default=os.path.join(ROOT, "tests", "golden", "tiny-gelu"),
                        help="model for the memory runs (default: the tiny test model, so that 200,000 rows take "
                             "minutes; what grows with the corpus does not depend on the model)")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    return parser.parse_args()


def read_texts(name, n):
    """n texts of ../shared/data/<name> (else the sample tests/review_data.py builds), repeated to size, with an
    id column."""
    import pandas as pd
    from review_data import sample_path
    texts = pd.read_csv(sample_path(name))["text"].tolist()
    return pd.DataFrame({"id": [f"doc-{i}" for i in range(n)], "text": (texts * (n // len(texts) + 1))[:n]})


def embed_side(args):
    """The best single call: embed on every text at once, normalized as embed_corpus does."""
    import pandas as pd
    from pipelines import embed
    from utils import load_tokenizer_hparams_and_params
    texts = pd.read_csv(os.path.join(args.folder, "texts.csv"))["text"].tolist()
    start = time.perf_counter()
    tokenizer, hparams, params = load_tokenizer_hparams_and_params(args.model)
    features = embed(texts, tokenizer, params, hparams, pooling="mean", normalize=True, progress=False)
    seconds = time.perf_counter() - start
    np.save(os.path.join(args.folder, "embed.npy"), features)
    return {"seconds": seconds}


def engine_side(args, engine):
    """embed_corpus.py on the same texts, from reading the CSV to the last shard written."""
    import embed_corpus
    out = os.path.join(args.folder, engine)
    shutil.rmtree(out, ignore_errors=True)
    argv = [os.path.join(args.folder, "texts.csv"), "--output", out, "--model_name", args.model, "--id_column",
            "id", *SETTINGS, "--engine", engine]
    result = {}
    if engine == "ray":
        import corpus_ray
        start = time.perf_counter()
        corpus_ray.connect()
        result["ray_init_seconds"] = time.perf_counter() - start
        argv += ["--workers", "2"]
        embed_ray = corpus_ray.embed_ray

        def timed_embed_ray(*args, **kwargs):
            for i, table in enumerate(embed_ray(*args, **kwargs)):
                if i == 0:
                    result["first_part_seconds"] = time.perf_counter() - start
                yield table
        corpus_ray.embed_ray = timed_embed_ray
    start = time.perf_counter()
    embed_corpus.main(argv)
    result["seconds"] = time.perf_counter() - start
    return result


def run_side(side, args):
    cmd = [sys.executable, __file__, "--side", side, "--folder", args.folder, "--model", args.model,
           "--memory_model", args.memory_model, *(["--csv", args.csv] if args.csv else [])]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: the {side} side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_output(folder):
    import pyarrow.dataset
    table = pyarrow.dataset.dataset(folder, format="parquet").to_table()
    return table["id"].to_pylist(), np.stack(table["embedding"].to_numpy(zero_copy_only=False))


def same_numbers(args, n):
    """Both engines' rows against embed; a killed and resumed run against an uninterrupted one."""
    expected = np.load(os.path.join(args.folder, "embed.npy"))
    ids = [f"doc-{i}" for i in range(n)]
    for engine in ("local", "ray"):
        got_ids, got = read_output(os.path.join(args.folder, engine))
        print(f"  {engine} engine: {len(got_ids)} rows, ids in order: {got_ids == ids}, "
              f"max |difference| from embed: {np.abs(got - expected).max():.1e}")
    import pandas as pd
    n = min(n, KILLED_ROWS)
    pd.read_csv(os.path.join(args.folder, "texts.csv")).head(n).to_csv(os.path.join(args.folder, "killed.csv"),
                                                                       index=False)
    cmd = [sys.executable, os.path.join(ROOT, "embed_corpus.py"), os.path.join(args.folder, "killed.csv"),
           "--output", os.path.join(args.folder, "killed"), "--model_name", args.model, "--id_column", "id",
           *SETTINGS, "--rows_per_shard", str(max(1, n // 10))]
    process = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    third = os.path.join(args.folder, "killed", f"part-{2:05d}.parquet")
    while not os.path.exists(third) and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = len([f for f in os.listdir(os.path.join(args.folder, "killed")) if f.startswith("part-")])
    subprocess.run(cmd, stderr=subprocess.DEVNULL, check=True)
    got_ids, got = read_output(os.path.join(args.folder, "killed"))
    print(f"  local engine on the first {n} texts killed after {kept} of 10 shards, then resumed: {len(got_ids)} "
          f"rows, {len(set(got_ids))} distinct, ids in order: {got_ids == ids[:n]}, max |difference| from embed: "
          f"{np.abs(got - expected[:n]).max():.1e}")


def memory_side(args):
    """embed_corpus.py's local engine in this fresh process: its peak RSS (VmHWM: unlike ru_maxrss, not
    inherited from the parent across fork and exec)."""
    import embed_corpus
    embed_corpus.main([args.csv, "--output", args.csv[:-4], "--model_name", args.memory_model, "--id_column", "id"])
    with open("/proc/self/status") as f:
        return {"peak_mb": next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024}


def peak_rss(args, n):
    """Goal 2: peak RSS (MB) of embed_corpus.py, local engine, on n IMDb reviews; and the CSV's size (MB)."""
    args.csv = os.path.join(args.folder, f"memory-{n}.csv")
    read_texts("imdb_sample.csv", n).to_csv(args.csv, index=False)
    peak = run_side("memory", args)["peak_mb"]
    size = os.path.getsize(args.csv) / 2 ** 20
    shutil.rmtree(args.csv[:-4])
    os.remove(args.csv)
    return peak, size


def machine():
    import threadpoolctl
    cpu = re.sub(r"\s+", " ", next((line.split(":", 1)[1] for line in open("/proc/cpuinfo")
                                    if line.startswith("model name")), platform.processor())).strip()
    blas = ", ".join(f"{p['internal_api']} {p['version']} ({p['num_threads']} threads)"
                     for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
    a, b = np.ones((1024, 768), np.float32), np.ones((768, 3072), np.float32)
    a @ b
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    gflops = 10 * 2 * 1024 * 768 * 3072 / (time.perf_counter() - start) / 1e9
    print(f"machine: {cpu}, {os.cpu_count()} cores; numpy {np.__version__}, {blas}; python "
          f"{platform.python_version()}; sgemm 1024x768x3072: {gflops:.0f} GFLOP/s")


def main():
    from conftest import minilm_dir
    from corpus_ray import RAY_PART_ROWS
    args = parse_args()
    if args.side:
        sides = {"embed": embed_side, "memory": memory_side}
        result = sides[args.side](args) if args.side in sides else engine_side(args, args.side)
        print(json.dumps(result))
        return
    machine()
    with tempfile.TemporaryDirectory() as args.folder:
        read_texts("rt_polarity_sample.csv", args.rows).to_csv(os.path.join(args.folder, "texts.csv"), index=False)
        results = {side: [] for side in ("embed", "local", "ray")}
        for _ in range(args.rounds):
            for side in results:
                results[side].append(run_side(side, args))
        best = {side: min(r["seconds"] for r in runs) for side, runs in results.items()}
        model = "all-MiniLM-L6-v2" if args.model == minilm_dir() else args.model
        print(f"\nthroughput on {args.rows} movie-review sentences, {model}, mean pooling, normalized (best of "
              f"{args.rounds}; seconds per round in brackets):")
        for side, label in (("embed", "embed, one call"), ("local", "local engine"), ("ray", "ray, 2 workers")):
            rounds = ", ".join(f"{r['seconds']:.1f}" for r in results[side])
            print(f"  {label:<16}{args.rows / best[side]:8.1f} texts/s   [{rounds}]")
        ray_init = min(r["ray_init_seconds"] for r in results["ray"])
        first_part = min(r["first_part_seconds"] for r in results["ray"])
        print(f"  local / embed: {best['embed'] / best['local']:.2f}; ray / local: "
              f"{best['local'] / best['ray']:.2f}; ray.init before the clock: {ray_init:.1f} s; the Ray engine's "
              f"first part ({RAY_PART_ROWS} texts) back after {first_part:.1f} s")
        print("\nsame numbers:")
        same_numbers(args, args.rows)
        print("\npeak RSS of embed_corpus.py, local engine, IMDb reviews "
              f"({os.path.basename(args.memory_model.rstrip('/'))}):")
        small, large = (peak_rss(args, n) for n in args.memory_rows)
        for n, (rss, size) in zip(args.memory_rows, (small, large)):
            print(f"  {n:>8} rows ({size:6.0f} MB of CSV): {rss:6.0f} MB")
        print(f"  difference: {abs(large[0] - small[0]) / small[0]:.1%}")


if __name__ == "__main__":
    main()
