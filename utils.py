"""Download, cache and load BERT checkpoints with NumPy alone (no torch, no TensorFlow, no code run from files),
and run BERT over many texts in batches."""
import collections
import contextlib
import hashlib
import json
import math
import mmap
import os
import pathlib
import pickle
import re
import shutil
import struct
import time
import zipfile

import numpy as np
import requests
from tqdm import tqdm

import tokenization
from bert import bert, check_model

# --- Model names and where their files are

SHORT_NAMES = {
    "bert-tiny-uncased": "google/bert_uncased_L-2_H-128_A-2",
    "bert-mini-uncased": "google/bert_uncased_L-4_H-256_A-4",
    "bert-small-uncased": "google/bert_uncased_L-4_H-512_A-8",
    "bert-medium-uncased": "google/bert_uncased_L-8_H-512_A-8",
    "bert-base-uncased": "google-bert/bert-base-uncased",
    "bert-base-cased": "google-bert/bert-base-cased",
    "bert-large-uncased": "google-bert/bert-large-uncased-whole-word-masking",
    "bert-large-cased": "google-bert/bert-large-cased-whole-word-masking",
    "bert-base-multilingual-cased": "google-bert/bert-base-multilingual-cased",
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in order of preference
CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings")  # what bert.py needs from config.json
REPO_ID = re.compile(r"^\w[\w.-]*/\w[\w.-]*$")
OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # environment variables, as huggingface_hub reads them
RETRIES, RETRY_DELAY = 4, 0.5  # tries in a row without progress; the first delay in seconds, then doubled


def load_tokenizer_hparams_and_params(model_name, models_dir="models"):
    """A short name, a hub id owner/name, or a local directory -> (tokenizer, config dict, params)."""
    folder = model_folder(model_name, models_dir)
    hparams = read_config(os.path.join(folder, "config.json"))
    tokenizer_config = pathlib.Path(folder, "tokenizer_config.json")
    tokenizer_config = json.loads(tokenizer_config.read_text(encoding="utf-8")) if tokenizer_config.is_file() else {}
    name = os.path.basename(os.path.normpath(model_name)).lower()
    lower = tokenizer_config.get("do_lower_case", "uncased" in name or "cased" not in name)
    tokenizer = tokenization.FullTokenizer(os.path.join(folder, "vocab.txt"), do_lower_case=bool(lower))
    weights = next(os.path.join(folder, w) for w in WEIGHT_FILES if os.path.isfile(os.path.join(folder, w)))
    state = read_safetensors(weights) if weights.endswith(".safetensors") else read_torch_checkpoint(weights)
    return tokenizer, hparams, to_params(state, hparams["num_hidden_layers"])


def read_config(path):
    """config.json as a dict, or a ValueError naming the file and what is wrong with it."""
    try:
        hparams = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    missing = [key for key in CONFIG_KEYS if not isinstance(hparams, dict) or type(hparams.get(key)) is not int]
    if missing:
        raise ValueError(f"{path} is not a BERT config: no integer {', '.join(missing)}")
    return hparams


def model_folder(model_name, models_dir="models"):
    """The folder holding the model's files: a local directory, a cached copy, or a fresh download."""
    model_name = os.fspath(model_name)
    if os.path.isdir(model_name):
        if not _is_complete(model_name):
            raise FileNotFoundError(f"{model_name} needs config.json, vocab.txt and {' or '.join(WEIGHT_FILES)}")
        return model_name
    repo = SHORT_NAMES.get(model_name, model_name)
    if not REPO_ID.match(repo):
        if model_name.startswith((".", "~", os.sep)) or model_name.count("/") > 1:
            raise FileNotFoundError(f"no model directory {model_name}")
        raise ValueError(f"unknown model {model_name!r}: use a hub id owner/name, a local directory, or one of "
                         + ", ".join(SHORT_NAMES))
    target = os.path.join(models_dir, *model_name.split("/"))
    for folder in [target] + _hf_cache_snapshots(repo):
        if _is_complete(folder):
            return folder
    if any(os.environ.get(flag, "").strip().upper() in ("1", "ON", "YES", "TRUE") for flag in OFFLINE_FLAGS):
        raise FileNotFoundError(f"{model_name} is not cached (looked in {target} and the Hugging Face cache "
                                f"{_hf_hub_cache()}) and HF_HUB_OFFLINE is set: unset it or pass a local directory")
    download_model(repo, target)
    return target


def _is_complete(folder):
    return all(os.path.isfile(os.path.join(folder, name)) for name in ("config.json", "vocab.txt")) and any(
        os.path.isfile(os.path.join(folder, name)) for name in WEIGHT_FILES)


def _hf_hub_cache():
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub")


def _hf_cache_snapshots(repo):
    """The HF cache's snapshot folders that refs/main points at, for repo and its pre-2024 alias."""
    folders = []
    for alias in dict.fromkeys([repo, repo.removeprefix("google-bert/")]):
        root = os.path.join(_hf_hub_cache(), "models--" + alias.replace("/", "--"))
        if os.path.isfile(os.path.join(root, "refs", "main")):
            with open(os.path.join(root, "refs", "main"), encoding="utf-8") as f:
                folders.append(os.path.join(root, "snapshots", f.read().strip()))
    return folders


# --- Download: streamed, resumed with HTTP Range, retried with backoff, verified, renamed into place

def download_model(repo, folder):
    """Fetch config.json, vocab.txt, tokenizer_config.json (if any) and the weights of a hub repository.
    A folder this call creates is removed again if the download fails."""
    created = os.path.abspath(folder)  # the outermost folder this call creates, if any
    while not os.path.isdir(os.path.dirname(created)):
        created = os.path.dirname(created)
    created = None if os.path.isdir(created) else created
    os.makedirs(folder, exist_ok=True)
    try:
        _download_files(repo, folder)
    except BaseException:
        if created:
            shutil.rmtree(created, ignore_errors=True)
        raise


def _download_files(repo, folder):
    with requests.Session() as session:
        session.headers.update({"User-Agent": "numpy-bert", "Accept-Encoding": "identity"})  # Range needs identity
        if os.environ.get("HF_TOKEN"):  # requests drops it on a redirect to another host
            session.headers["Authorization"] = f"Bearer {os.environ['HF_TOKEN']}"
        for name in ("config.json", "vocab.txt"):
            download_file(session, repo, name, folder)
        with contextlib.suppress(FileNotFoundError):  # optional: without it the name decides do_lower_case
            download_file(session, repo, "tokenizer_config.json", folder)
        for name in WEIGHT_FILES:
            with contextlib.suppress(FileNotFoundError):
                return download_file(session, repo, name, folder)
    raise FileNotFoundError(f"{repo} has neither {' nor '.join(WEIGHT_FILES)}")


def _endpoint():
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def download_file(session, repo, filename, folder):
    """Download to <file>.part, check size and sha256, then rename; the .part never outlives the call."""
    path = os.path.join(folder, filename)
    try:
        with open(path + ".part", "wb") as f, tqdm(desc=filename, unit="B", unit_scale=True, unit_divisor=1024) as bar:
            sha256, size, digest = _fetch(session, f"{_endpoint()}/{repo}/resolve/main/{filename}", f, bar)
        if size not in (None, bar.n) or sha256 not in (None, digest):
            raise ValueError(f"download of {repo}/{filename} has {bar.n} bytes with sha256 {digest}, the hub "
                             f"announced {size} bytes with sha256 {sha256}: refused (corrupted in transit?)")
        os.replace(path + ".part", path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + ".part")


def _fetch(session, url, f, bar):
    """Stream url into f, resuming after a cut. Returns (announced sha256, announced size, actual sha256)."""
    hasher, announced, failures = hashlib.sha256(), None, 0
    while True:
        start = bar.n
        try:
            with _get(session, url, start) as r:
                if start and r.status_code == 200:  # the server ignored Range: start over
                    f.seek(0), f.truncate(), bar.reset()
                    hasher, start = hashlib.sha256(), 0
                elif start and not r.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
                    raise ValueError(f"{url} answered a Range request with the wrong range: refused")
                announced = announced or _announced(r)
                bar.total = announced[1]
                for chunk in r.iter_content(chunk_size=1 << 16):
                    f.write(chunk), hasher.update(chunk), bar.update(len(chunk))
            return announced + (hasher.hexdigest(),)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
            failures = 1 if bar.n > start else failures + 1
            if failures > RETRIES:
                raise ConnectionError(f"could not download {url} ({e}): check the network, or set HF_HUB_OFFLINE=1 "
                                      "and use a cached model or a local directory") from None
            time.sleep(RETRY_DELAY * 2 ** (failures - 1))


def _get(session, url, start):
    r = session.get(url, headers={"Range": f"bytes={start}-"} if start else {}, stream=True, timeout=(10, 60))
    if r.status_code in (200, 206):
        return r
    r.close()
    repo_file, code = url.split("/", 3)[-1].replace("/resolve/main/", "/"), r.headers.get("X-Error-Code", "")
    if r.status_code == 429 or r.status_code >= 500:
        raise requests.ConnectionError(f"HTTP {r.status_code}")  # busy or failing: worth retrying
    if r.status_code == 404:
        what = "no such repository" if code == "RepoNotFound" else "no such file"
        raise FileNotFoundError(f"{repo_file}: {what} on {_endpoint()} (HTTP 404)")
    if r.status_code in (401, 403):
        raise PermissionError(f"{repo_file}: HTTP {r.status_code} {code}. The repository does not exist, or it is "
                              "private or gated: check the name, accept its terms on the hub, and set HF_TOKEN")
    raise ConnectionError(f"{repo_file}: unexpected HTTP {r.status_code} from {_endpoint()}")


def _announced(r):
    """(sha256, size) from the X-Linked-* headers of the hub's redirect to an LFS file, else (None, None).

    Other files are small and come straight from the hub; requests refuses a body short of its Content-Length."""
    for hop in r.history + [r]:
        if "X-Linked-Etag" in hop.headers:
            etag, size = hop.headers["X-Linked-Etag"].removeprefix("W/").strip('"'), hop.headers.get("X-Linked-Size")
            return (etag if re.fullmatch(r"[0-9a-f]{64}", etag) else None), (int(size) if size else None)
    return None, None


# --- Reading checkpoint files: safetensors, and torch's pickle formats through a restricted unpickler

DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8"}  # safetensors' names; BF16 read as raw bits
TORCH_STORAGES = {"FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16", "LongStorage": "I64"}
TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # starts the pre-1.6 (non-zip) torch.save format


def _map(path):
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(f.fileno()).st_size else b""


def _array(buf, dtype, shape, offset, strides=None):
    """A read-only view of buf; F16 and BF16 become float32 copies, and so does misaligned data (a file whose
    header length is not a multiple of 4), which NumPy would otherwise copy at every matrix product."""
    a = np.ndarray(shape, DTYPES[dtype], buf, offset, strides)
    if dtype == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32) if dtype == "F16" or not a.flags.aligned else a


def read_safetensors(path):
    """{name: array} from a .safetensors file, memory-mapped, every offset checked before it is used."""
    def bad(reason):
        return ValueError(f"invalid safetensors file: {reason} ({path})")
    buf = _map(path)
    if len(buf) < 8:
        raise bad("shorter than its 8-byte header length")
    n = int.from_bytes(buf[:8], "little")
    data_len = len(buf) - 8 - n
    if data_len < 0:
        raise bad(f"header length {n} exceeds the file size {len(buf)}")
    try:
        header = json.loads(bytes(buf[8:8 + n]))
    except ValueError:  # includes UnicodeDecodeError
        raise bad("the header is not valid JSON") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    header.pop("__metadata__", None)
    tensors = {}
    for name, info in header.items():
        info = info if isinstance(info, dict) else {}
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPES:
            raise bad(f"{name} has unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise bad(f"{name} has shape {shape!r}, not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_len):
            raise bad(f"{name} has data_offsets {offsets!r}, outside the {data_len} data bytes")
        nbytes = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise bad(f"{name} has {offsets[1] - offsets[0]} bytes, its {dtype} shape {shape} needs {nbytes}")
        tensors[name] = _array(buf, dtype, shape, 8 + n + offsets[0])
    return tensors


_Storage = collections.namedtuple("_Storage", "key dtype numel")
_Tensor = collections.namedtuple("_Tensor", "storage offset shape stride")


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a plain state_dict and nothing else: any other global is refused, so no code runs."""
    ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): lambda storage, offset, shape, stride, *_: _Tensor(
                   storage, offset, tuple(shape), tuple(stride)),
               ("torch._utils", "_rebuild_parameter"): lambda tensor, *_: tensor}

    def find_class(self, module, name):
        if module == "torch" and name in TORCH_STORAGES:
            return TORCH_STORAGES[name]  # a storage type stands for its dtype
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a plain state_dict never needs it, "
                                         "so this checkpoint is unsafe or unsupported")
        return self.ALLOWED[module, name]

    def persistent_load(self, pid):  # ("storage", dtype, key, location, numel[, view]) names raw bytes
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[1] in DTYPES and pid[5:] in ((), (None,))):
            raise pickle.UnpicklingError(f"unsupported storage reference {pid!r}")
        return _Storage(str(pid[2]), pid[1], int(pid[4]))


def read_torch_checkpoint(path):
    """{name: array} from a torch.save'd state_dict (zip or pre-1.6 format), without torch."""
    buf = _map(path)
    try:
        state, extents = (_zip_checkpoint if bytes(buf[:4]) == b"PK\x03\x04" else _legacy_checkpoint)(path, buf)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, struct.error, KeyError) as e:
        raise ValueError(f"cannot read {path} as a torch state_dict: {e}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state_dict")
    return {name: _tensor(t, extents, buf, path) for name, t in state.items() if isinstance(t, _Tensor)}


def _zip_checkpoint(path, buf):
    """The state_dict and {storage key: (offset, size)} of the archive's uncompressed data/ entries."""
    with zipfile.ZipFile(path) as z:
        pkl = next((name for name in z.namelist() if name.endswith("data.pkl")), "")
        order = pkl.replace("data.pkl", "byteorder")  # absent before torch 1.13: little-endian
        if not pkl or order in z.namelist() and z.read(order) != b"little":
            raise zipfile.BadZipFile("no data.pkl, or big-endian storages")
        with z.open(pkl) as f:
            state = _StateDictUnpickler(f).load()
        extents = {}
        for info in z.infolist():
            if info.filename.startswith(pkl.replace("data.pkl", "data/")) and info.compress_type == zipfile.ZIP_STORED:
                name_len, extra_len = struct.unpack("<HH", buf[info.header_offset + 26:info.header_offset + 30])
                extents[info.filename.rsplit("/", 1)[1]] = (info.header_offset + 30 + name_len + extra_len,
                                                            info.file_size)
    return state, extents


def _legacy_checkpoint(path, buf):
    """Pre-1.6 format: pickles of magic, version, sys info, the state_dict, storage keys; then raw storages."""
    with open(path, "rb") as f:
        magic, _version, sys_info, state, keys = (_StateDictUnpickler(f).load() for _ in range(5))
        offset = f.tell()
    if magic != TORCH_MAGIC or not isinstance(sys_info, dict) or not sys_info.get("little_endian"):
        raise pickle.UnpicklingError("not a little-endian torch checkpoint")
    dtypes = {t.storage.key: t.storage.dtype for t in state.values() if isinstance(t, _Tensor)}
    extents = {}
    for key in map(str, keys):  # each storage: its int64 element count, then the elements
        size = struct.unpack("<q", buf[offset:offset + 8])[0] * np.dtype(DTYPES[dtypes[key]]).itemsize
        extents[key], offset = (offset + 8, size), offset + 8 + size
    return state, extents


def _tensor(t, extents, buf, path):
    """The array a _Tensor describes, after checking that it lies within its storage and the file."""
    itemsize = np.dtype(DTYPES[t.storage.dtype]).itemsize
    start, size = extents.get(t.storage.key, (0, -1))
    extent = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride)) if all(t.shape) else 0
    if (size < t.storage.numel * itemsize or start + size > len(buf) or t.offset < 0
            or min(t.stride, default=0) < 0 or t.offset + extent > t.storage.numel):
        raise ValueError(f"{path}: a tensor lies outside its storage {t.storage.key} (corrupt checkpoint?)")
    return _array(buf, t.storage.dtype, t.shape, start + t.offset * itemsize, [s * itemsize for s in t.stride])


# --- Checkpoint names -> the params layout of README.md

def to_params(state, n_layers):
    """Map BertModel / BertForPreTraining names (legacy gamma/beta too) to params; weights become (in, out)."""
    legacy = {"gamma": "weight", "beta": "bias"}  # LayerNorm names of 2019-era checkpoints
    sd = {re.sub(r"(?<=LayerNorm\.)(gamma|beta)$", lambda m: legacy[m[0]], name.removeprefix("bert.")): array
          for name, array in state.items()}

    def dense(prefix):
        return {"w": sd[prefix + ".weight"].T, "b": sd[prefix + ".bias"]}

    def ln(prefix):
        return {"g": sd[prefix + ".weight"], "b": sd[prefix + ".bias"]}

    def block(p):
        qkv = [p + f"attention.self.{n}" for n in ("query", "key", "value")]
        return {"attn": {"qkv": {"w": np.concatenate([sd[q + ".weight"] for q in qkv]).T,
                                 "b": np.concatenate([sd[q + ".bias"] for q in qkv])},
                         "proj": dense(p + "attention.output.dense")},
                "ln_1": ln(p + "attention.output.LayerNorm"),
                "ffn": {"fc": dense(p + "intermediate.dense"), "proj": dense(p + "output.dense")},
                "ln_2": ln(p + "output.LayerNorm")}

    try:
        params = {"embeddings": {"word": sd["embeddings.word_embeddings.weight"],
                                 "position": sd["embeddings.position_embeddings.weight"],
                                 "token_type": sd["embeddings.token_type_embeddings.weight"],
                                 "ln": ln("embeddings.LayerNorm")},
                  "blocks": [block(f"encoder.layer.{i}.") for i in range(n_layers)]}
        if "pooler.dense.weight" in sd:
            params["pooler"] = dense("pooler.dense")
        if "cls.predictions.transform.dense.weight" in sd:
            bias = "cls.predictions.bias" if "cls.predictions.bias" in sd else "cls.predictions.decoder.bias"
            params["mlm"] = {"transform": dense("cls.predictions.transform.dense"),
                             "ln": ln("cls.predictions.transform.LayerNorm"), "bias": sd[bias]}
        if "cls.seq_relationship.weight" in sd:
            params["nsp"] = dense("cls.seq_relationship")
    except KeyError as e:
        raise ValueError(f"the checkpoint has no {e.args[0]}: is it a BERT checkpoint?") from None
    return params


# --- Batching: sentence features for many texts

POOLINGS = ("pooler", "cls", "mean")


def check_pooling(pooling, params):
    """Raise ValueError unless `pooling` is one of POOLINGS and the checkpoint supports it."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}: use one of {', '.join(POOLINGS)}")
    if pooling == "pooler" and "pooler" not in params:
        raise ValueError("this checkpoint has no pooler: use pooling 'cls' or 'mean'")


def token_limit(hparams, max_length=512):
    """The most tokens, [CLS] and [SEP] included, that one input may have: max_length, or the model's
    max_position_embeddings when that is smaller."""
    return min(max_length, hparams["max_position_embeddings"])


def embed(texts, tokenizer, params, hparams, batch_size=32, pooling="pooler", max_length=512, progress=True):
    """One float32 feature row per text, (N, H), in input order.

    pooling: "pooler" (BERT's pooled output), "cls" (the final [CLS] vector) or "mean" (the final token
    vectors averaged over the attention mask, as sentence-transformers does). Texts are sorted by token
    length into batches of at most batch_size (length_batches), so little padding is computed; a text
    longer than token_limit(hparams, max_length) tokens is cut, keeping the final [SEP]."""
    check_model(params, hparams)
    check_pooling(pooling, params)
    for name, value in (("batch_size", batch_size), ("max_length", max_length)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    max_length = token_limit(hparams, max_length)
    if isinstance(texts, str):
        raise TypeError("embed takes a list of texts; wrap a single text in a list")
    texts = list(texts)
    lengths = [min(len(tokenizer.tokenize(text)) + 2, max_length) for text in texts]
    features = np.empty((len(texts), params["embeddings"]["word"].shape[1]), dtype=np.float32)
    with tqdm(total=len(texts), desc="embed", unit="text", disable=not progress) as bar:
        for rows in length_batches(lengths, batch_size, hparams["hidden_size"]):
            batch = tokenizer.batch_encode([texts[i] for i in rows], max_length=max_length)
            seq_output, pooled_output = bert(batch["input_ids"], batch["segment_ids"], params, hparams,
                                             attention_mask=batch["attention_mask"])
            features[rows] = _pool(pooling, seq_output, pooled_output, batch["attention_mask"])
            bar.update(len(rows))
    return features


def length_batches(lengths, batch_size, hidden_size, overhead=64):
    """Indices of texts in batches of at most batch_size, sorted by length and cut where it saves the most
    work: the cuts minimize the sum over batches of rows x L x (1 + L / 6H) (the encoder's FLOPs for L padded
    tokens, attention included) plus `overhead` tokens' worth per forward pass (dynamic programming)."""
    order = np.argsort(lengths, kind="stable")
    longest = np.asarray(lengths, dtype=np.float64)[order]
    cost = np.zeros(len(order) + 1)  # cost[end]: the least work for the first `end` texts
    cut = np.zeros(len(order) + 1, dtype=int)  # cut[end]: where the last of those batches starts
    for end in range(1, len(order) + 1):
        starts = np.arange(max(0, end - batch_size), end)
        L = longest[end - 1]
        total = cost[starts] + (end - starts) * L * (1 + L / (6 * hidden_size)) + overhead
        cut[end], cost[end] = starts[total.argmin()], total.min()
    batches, end = [], len(order)
    while end:
        batches.append(order[cut[end]:end])
        end = cut[end]
    return batches[::-1]


def _pool(pooling, seq_output, pooled_output, attention_mask):
    """(B, H) sentence features from the encoder's outputs."""
    if pooling == "pooler":
        return pooled_output
    if pooling == "cls":
        return seq_output[:, 0]
    weights = attention_mask[:, :, None].astype(np.float32)
    return (seq_output * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1e-9))
