"""Model names -> a folder on disk: a local directory, a cached copy (models_dir, the Hugging Face cache), or a
download from the hub, streamed, resumed with HTTP Range, retried with backoff, verified, renamed into place.
The only module that touches the network."""
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import socket
import time

import requests
from tqdm import tqdm

from checkpoint import WEIGHT_FILES
from model_folder import is_complete
from st_modules import module_files

SHORT_NAMES = {
    "bert-tiny-uncased": "google/bert_uncased_L-2_H-128_A-2",
    "bert-mini-uncased": "google/bert_uncased_L-4_H-256_A-4",
    "bert-small-uncased": "google/bert_uncased_L-4_H-512_A-8",
    "bert-medium-uncased": "google/bert_uncased_L-8_H-512_A-8",
    "bert-base-uncased": "google-bert/bert-base-uncased",
    "bert-base-cased": "google-bert/bert-base-cased",
    "bert-large-uncased": "google-bert/bert-large-uncased",
    "bert-large-cased": "google-bert/bert-large-cased",
    "bert-large-uncased-whole-word-masking": "google-bert/bert-large-uncased-whole-word-masking",
    "bert-large-cased-whole-word-masking": "google-bert/bert-large-cased-whole-word-masking",
    "bert-base-multilingual-cased": "google-bert/bert-base-multilingual-cased",
    "distilbert-base-uncased": "distilbert/distilbert-base-uncased",
    "distilbert-base-cased": "distilbert/distilbert-base-cased",
    "distilbert-base-uncased-finetuned-sst-2-english": "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    "distilbert-base-cased-distilled-squad": "distilbert/distilbert-base-cased-distilled-squad",
}
REPO_ID = re.compile(r"^\w[\w.-]*/\w[\w.-]*$")
OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # environment variables, as huggingface_hub reads them
RETRIES, RETRY_DELAY = 4, 0.5  # tries in a row without progress; the first delay in seconds, then doubled
TIMEOUT = (10, 60)  # seconds to connect, and to wait for each piece of the answer


def find_model(model_name, models_dir="models"):
    """The folder holding the model's files: a local directory, a cached copy, or a fresh download."""
    model_name = os.fspath(model_name)
    if os.path.isdir(os.path.expanduser(model_name)):  # model_folder.load_model_folder says what a folder lacks
        return os.path.expanduser(model_name)
    repo = SHORT_NAMES.get(model_name, model_name)
    if not REPO_ID.match(repo):
        if model_name.startswith((".", "~", os.sep)) or model_name.count("/") > 1:
            raise FileNotFoundError(f"no model directory {model_name}")
        raise ValueError(f"unknown model {model_name!r}: use a hub id owner/name, a local directory, or one of "
                         + ", ".join(SHORT_NAMES))
    target = os.path.join(models_dir, *model_name.split("/"))
    for folder in [target] + _hf_cache_snapshots(repo):
        if is_complete(folder):
            return folder
    offline = [flag for flag in OFFLINE_FLAGS if os.environ.get(flag, "").strip().upper() in ("1", "ON", "YES", "TRUE")]
    if offline:
        raise FileNotFoundError(f"{model_name} is not cached (looked in {target} and the Hugging Face cache "
                                f"{_hf_hub_cache()}) and {' and '.join(offline)} {'is' if len(offline) == 1 else 'are'}"
                                " set: unset it to download, or pass a local directory")
    download_model(repo, target)
    return target


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


def download_model(repo, folder):
    """Fetch config.json, the vocabulary (vocab.txt, else tokenizer.json), tokenizer_config.json (if any), the
    weights and, for a sentence-transformers repository, modules.json and the files it names (the Pooling
    config, sentence_bert_config.json) and config_sentence_transformers.json (its prompts). A folder this call
    creates is removed again if the download fails."""
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
        download_file(session, repo, "config.json", folder)
        if not _download_first(session, repo, ("vocab.txt", "tokenizer.json"), folder):  # sentence-transformers 6
            raise FileNotFoundError(f"{repo} has neither vocab.txt nor tokenizer.json")  # saves tokenizer.json alone
        for name in ("tokenizer_config.json", "modules.json"):  # optional: without them the defaults hold
            with contextlib.suppress(FileNotFoundError):
                download_file(session, repo, name, folder)
        required, optional = module_files(folder)
        for names in required:  # one of each
            if not _download_first(session, repo, names, folder):
                raise FileNotFoundError(f"{repo} has no {' nor '.join(names)}, which its modules.json needs")
        for name in optional:
            with contextlib.suppress(FileNotFoundError):
                download_file(session, repo, name, folder)
        if not _download_first(session, repo, WEIGHT_FILES, folder):
            raise FileNotFoundError(f"{repo} has neither {' nor '.join(WEIGHT_FILES)}")


def _download_first(session, repo, names, folder):
    """Download the first of names that the repository has; False when it has none of them."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            download_file(session, repo, name, folder)
            return True
    return False


def _endpoint():
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def download_file(session, repo, filename, folder):
    """Download into a hidden temporary file of this call's own (so concurrent downloads of the same model
    never touch each other's), check size and sha256, then rename; the temporary file never outlives the call."""
    path = os.path.join(folder, *filename.split("/"))  # a module's file may lie in a subfolder: 1_Pooling/...
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}-{secrets.token_hex(4)}.part")
    try:
        with open(part, "xb") as f, tqdm(desc=filename, unit="B", unit_scale=True, unit_divisor=1024,
                                         delay=0.5) as bar:  # no bar while nothing arrives, none for small files
            sha256, size, digest = _fetch(session, f"{_endpoint()}/{repo}/resolve/main/{filename}", f, bar)
        if size not in (None, bar.n) or sha256 not in (None, digest):
            raise ValueError(f"download of {repo}/{filename} has {bar.n} bytes with sha256 {digest}, the hub "
                             f"announced {size} bytes with sha256 {sha256}: refused (corrupted in transit?)")
        os.replace(part, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(part)


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
                raise ConnectionError(f"could not download {url} ({_reason(e)}, {failures} tries): check the "
                                      "network (and HF_ENDPOINT, if set), or set HF_HUB_OFFLINE=1 and use a cached "
                                      "model or a local directory") from None
            time.sleep(RETRY_DELAY * 2 ** (failures - 1))


def _reason(error):
    """What went wrong, in a few words, from the chain of exceptions requests and urllib3 raise."""
    if isinstance(error, requests.Timeout):
        return f"no answer within {TIMEOUT[0 if isinstance(error, requests.ConnectTimeout) else 1]} s"
    for kind, words in ((requests.exceptions.ProxyError, "the proxy failed (check HTTPS_PROXY)"),
                        (requests.exceptions.SSLError, "TLS/SSL error"),
                        (requests.exceptions.ChunkedEncodingError, "the connection broke off")):
        if isinstance(error, kind):
            return words
    causes, todo = [], [error]
    while todo:  # requests wraps urllib3's errors, which wrap the socket's
        e = todo.pop()
        if isinstance(e, BaseException) and not any(e is c for c in causes):
            causes.append(e)
            todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
    for kind, words in ((socket.gaierror, "cannot resolve the host name"),
                        (ConnectionRefusedError, "connection refused"), (ConnectionResetError, "connection reset")):
        if any(isinstance(c, kind) for c in causes):
            return words
    return next((a for a in error.args if isinstance(a, str)), "network error")  # e.g. our "HTTP 503 (busy ...)"


def _get(session, url, start):
    r = session.get(url, headers={"Range": f"bytes={start}-"} if start else {}, stream=True, timeout=TIMEOUT)
    if r.status_code in (200, 206):
        return r
    r.close()
    repo_file, code = url.split("/", 3)[-1].replace("/resolve/main/", "/"), r.headers.get("X-Error-Code", "")
    if r.status_code == 429 or r.status_code >= 500:
        raise requests.ConnectionError(f"HTTP {r.status_code} (busy or failing)")  # worth retrying
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


def check_reachable(timeout=5):
    """Raise ConnectionError at once, without retries, when $HF_ENDPOINT cannot be reached (no network, a
    firewall, a wrong HF_ENDPOINT): libraries that retry for half a minute first get a quick answer."""
    try:
        requests.head(_endpoint(), timeout=timeout, allow_redirects=False).close()
    except (requests.ConnectionError, requests.Timeout):
        raise ConnectionError(f"cannot reach {_endpoint()} (no network?): check the connection, or set "
                              "HF_DATASETS_OFFLINE=1 to use the datasets cache, or pass a local file") from None
