"""What the benchmarks share: the machine line, the sgemm ceiling, the encoder's FLOPs, peak memory, the
bert-base-shape checkpoint, and running one side of a comparison in its own process."""
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
SGEMM = (1024, 768, 3072)  # one feed-forward product of bert-base at 8 x 128 tokens


def machine():
    """CPU model, cores, Python, NumPy and its BLAS (name, version, kernels), e.g. for the first line of a report."""
    with open("/proc/cpuinfo") as f:  # the first CPU's lines "key : value"
        info = {key.strip(): value.strip() for key, _, value in
                (line.partition(":") for line in f.read().split("\n\n")[0].splitlines())}
    cpu = re.sub(r"\s+", " ", info.get("model name", platform.processor()))
    flags = info.get("flags", "").split()
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    cpu += f" (family {info.get('cpu family', '?')} model {info.get('model', '?')}, {simd})"
    try:
        from threadpoolctl import threadpool_info
        blas = next(f"{i['internal_api']} {i['version']} ({i.get('architecture') or '?'} kernels)"
                    for i in threadpool_info() if i["user_api"] == "blas")
    except (ImportError, StopIteration):
        blas = "BLAS unknown"
    forced = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    if forced:  # set on some machines for old OpenBLAS builds: the kernels are not the ones NumPy would choose
        blas += ", set by " + " ".join(f"{k}={v}" for k, v in forced.items())
    return (f"{cpu}, {os.cpu_count()} cores; python {platform.python_version()}, "
            f"numpy {np.__version__} with {blas}")


def sgemm_gflops(repeats=10):
    """The NumPy float32 matrix product's speed on this machine now: the ceiling for a NumPy forward pass."""
    M, K, N = SGEMM
    rng = np.random.default_rng(0)
    a, b = rng.random((M, K), dtype=np.float32), rng.random((K, N), dtype=np.float32)
    return 2 * M * K * N / best_time(lambda: a @ b, repeats) / 1e9


def flops(B, L, c):
    """Multiply-adds x 2 of the encoder on B sequences of L tokens: the dense layers and the two attention
    products."""
    H, I = c["hidden_size"], c["intermediate_size"]
    return c["num_hidden_layers"] * 2 * B * L * (4 * H * H + 2 * H * I + 2 * L * H)


def matmuls_only(B, L, params, hparams):
    """A function running the forward pass's matrix products alone, at the shapes bert.py computes them
    (a chunk of sequences at a time, the attention in its blocks) and on the same weights, with nothing
    between them: the time no NumPy forward pass on this BLAS can beat."""
    import bert
    H, I, A = hparams["hidden_size"], hparams["intermediate_size"], hparams["num_attention_heads"]
    chunk = bert.sequences_per_chunk(B, L)  # sequences per chunk of the encoder layer
    n_seqs, n_heads, n_rows = bert.attention_block(chunk, L, L, A)
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((chunk * L, H), dtype=np.float32), rng.standard_normal((chunk * L, I), dtype=np.float32)
    q, v = rng.standard_normal((2, n_seqs, A, L, H // A), dtype=np.float32)
    kt = np.ascontiguousarray(q.transpose(0, 1, 3, 2))
    weights = rng.random((n_seqs, n_heads, n_rows, L), dtype=np.float32)

    def run():
        for block, c in itertools.product(params["blocks"], range(0, B, chunk)):
            m = min(chunk, B - c)  # this chunk's sequences
            x[:m * L] @ block["attn"]["qkv"]["w"]
            for b, a, r in itertools.product(range(0, m, n_seqs), range(0, A, n_heads), range(0, L, n_rows)):
                heads = slice(a, a + n_heads)
                q[:m - b, heads, r:r + n_rows] @ kt[:m - b, heads], weights[:m - b, :A - a, :L - r] @ v[:m - b, heads]
            x[:m * L] @ block["attn"]["proj"]["w"], x[:m * L] @ block["ffn"]["fc"]["w"]
            h[:m * L] @ block["ffn"]["proj"]["w"]
    return run


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


def write_bert_base_checkpoint(folder):
    """bert-base-shaped synthetic weights (tests/synthetic.py) as config.json + vocab.txt + model.safetensors."""
    from checkpoint import write_safetensors
    from conftest import minilm_dir
    from synthetic import BERT_BASE_CONFIG, synthetic_state_dict
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(dict(BERT_BASE_CONFIG, model_type="bert"), f)
    shutil.copy(os.path.join(minilm_dir(), "vocab.txt"), folder)  # bert-base-uncased's vocabulary
    write_safetensors(os.path.join(folder, "model.safetensors"), synthetic_state_dict(BERT_BASE_CONFIG))


def run_side(script, threads, *args):
    """`python script --side ... args` in a fresh process on `threads` threads; its last stdout line as JSON."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, script, "--threads", str(threads), *map(str, args)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
