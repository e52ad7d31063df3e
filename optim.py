"""Optimizing a params tree: AdamW as torch.optim.AdamW computes it, transformers' linear warmup/decay
schedule, and global gradient-norm clipping (Trainer's defaults).

    state = adamw_init(params)
    for step in range(total_steps):
        loss, grads = loss_and_grads(...)
        clip_grad_norm(grads, 1.0)
        adamw_step(params, grads, state, linear_schedule(step, total_steps, warmup, lr=5e-5))

Elementwise work runs on cache-sized chunks (every pass over a chunk stays in L2), split between threads.
"""
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CHUNK = 1 << 14  # 16k float32 = 64 KiB per array: p, g, m, v and a scratch buffer fit in a 512 KiB L2
TABLES = "embeddings/"  # embedding tables: only the rows of tokens seen so far have non-zero moments
NO_DECAY = ("b", "g", "bias")  # biases (the MLM head's per-word one too) and LayerNorm gains: Trainer's rule


def leaves(tree, prefix=""):
    """[(path, array)] of a params-like tree in a fixed order, e.g. ("blocks/0/attn/qkv/w", array)."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    out = []
    for key, value in items:
        path = f"{prefix}/{key}" if prefix else str(key)
        out += leaves(value, path) if isinstance(value, (dict, list)) else [(path, value)]
    return out


def adamw_init(params):
    """AdamW's state for params: the step count and zero first and second moments, one pair per array."""
    arrays = leaves(params)
    for path, p in arrays:
        if not (isinstance(p, np.ndarray) and p.dtype == np.float32 and p.flags.c_contiguous and p.flags.writeable):
            raise ValueError(f"params[{path!r}] must be a writable, contiguous float32 array (the loader's arrays "
                             "are read-only memory maps): train a copy from training.init_classifier")
    return {"step": 0, "m": [np.zeros_like(p) for _, p in arrays], "v": [np.zeros_like(p) for _, p in arrays],
            "rows": [np.zeros(len(p), bool) if path.startswith(TABLES) and p.ndim == 2 else None
                     for path, p in arrays]}


def adamw_step(params, grads, state, lr, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8):
    """One AdamW step, params updated in place, as torch.optim.AdamW: p *= 1 - lr * weight_decay (not for
    biases and LayerNorm), m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, and
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) at step t = 1, 2, ... An lr of 0 still
    advances the moments and the step count."""
    params_leaves, grads_leaves = leaves(params), leaves(grads)
    if [path for path, _ in params_leaves] != [path for path, _ in grads_leaves]:
        raise ValueError("grads must have the layout of params (one array per array of params)")
    for (path, p), (_, g) in zip(params_leaves, grads_leaves):
        if np.shape(g) != p.shape:
            raise ValueError(f"grads[{path!r}] has shape {np.shape(g)}, params[{path!r}] has {p.shape}")
    if [m.shape for m in state["m"]] != [p.shape for _, p in params_leaves]:
        raise ValueError("state was made for other params: call adamw_init(params)")
    b1, b2 = betas
    state["step"] += 1
    t = state["step"]
    settings = dict(b1=np.float32(b1), b2=np.float32(b2), rbc2=np.float32(1 / math.sqrt(1 - b2 ** t)),
                    eps=np.float32(eps), step_size=np.float32(-lr / (1 - b1 ** t)))
    work, tables = [], []
    for (path, p), (_, g), m, v, rows in zip(params_leaves, grads_leaves, state["m"], state["v"], state["rows"]):
        decay = np.float32(1 - lr * (0 if path.rsplit("/", 1)[-1] in NO_DECAY else weight_decay))
        g = np.ascontiguousarray(g, dtype=np.float32)
        if rows is not None:  # a row that never had a gradient has m = v = 0: its update is the decay alone
            rows |= g.any(axis=1)
            seen = np.flatnonzero(rows)
            if decay != 1:
                p *= decay
            table, (p, g, m, v), decay = (p, m, v), (p[seen], g[seen], m[seen], v[seen]), np.float32(1)
            tables.append((table, seen, (p, m, v)))  # the seen rows are updated as copies, then put back
        flat = [a.reshape(-1) for a in (p, g, m, v)]
        work += [[a[i:i + CHUNK] for a in flat] + [decay] for i in range(0, p.size, CHUNK)]
    run_split(lambda part: _update(part, **settings), work)
    for table, seen, updated in tables:
        for whole, rows in zip(table, updated):
            whole[seen] = rows


def _update(chunks, b1, b2, rbc2, eps, step_size):
    scratch = np.empty(CHUNK, np.float32)
    for p, g, m, v, decay in chunks:
        s = scratch[:len(p)]
        if decay != 1:
            p *= decay
        np.multiply(g, 1 - b1, out=s)  # m = b1 m + (1 - b1) g
        m *= b1
        m += s
        np.multiply(g, g, out=s)  # v = b2 v + (1 - b2) g^2
        s *= 1 - b2
        v *= b2
        v += s
        np.sqrt(v, out=s)  # denominator sqrt(v) / sqrt(1 - b2^t) + eps
        s *= rbc2
        s += eps
        np.divide(m, s, out=s)
        s *= step_size
        p += s


def threads():
    """How many threads elementwise work is split over: as many as OpenBLAS uses (OPENBLAS_NUM_THREADS, else
    OMP_NUM_THREADS, else the CPUs this process may run on)."""
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_split(function, work):
    """[function(part) for each part] of the list `work` cut into one contiguous part per thread, the parts run
    at once (NumPy releases the GIL inside each operation). The threads are the call's own: a pool kept
    between calls could hold a thread that Ctrl-C interrupted as it was being started, one nothing would ever
    wake, and the interpreter would wait for it forever at exit."""
    n = min(threads(), len(work))
    if n <= 1:
        return [function(work)]
    sizes = [len(work) * i // n for i in range(n + 1)]
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(function, [work[a:b] for a, b in zip(sizes, sizes[1:])]))


def linear_schedule(step, total_steps, warmup_steps, lr):
    """The learning rate of optimizer step `step` (counting from 0), as transformers'
    get_linear_schedule_with_warmup: lr * step / warmup_steps during warmup (0 at the first step), then down
    linearly to 0 at step total_steps."""
    if step < warmup_steps:
        return lr * step / max(1, warmup_steps)
    return lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def warmup_steps(total_steps, warmup_ratio):
    """Trainer's count of warmup steps: ceil(total_steps * warmup_ratio)."""
    if not 0 <= warmup_ratio <= 1:
        raise ValueError(f"warmup_ratio must be in [0, 1], got {warmup_ratio}")
    return math.ceil(total_steps * warmup_ratio)


def clip_grad_norm(grads, max_norm=1.0):
    """Scale grads in place so that their global L2 norm is at most max_norm (as
    torch.nn.utils.clip_grad_norm_: by max_norm / (norm + 1e-6) when that is below 1); returns the norm
    before clipping."""
    arrays = [g for _, g in leaves(grads)]
    norm = math.sqrt(sum(float(np.dot(a.reshape(-1), a.reshape(-1))) for a in arrays))
    scale = max_norm / (norm + 1e-6)
    if scale < 1:
        for a in arrays:
            a *= np.float32(scale)
    return norm
