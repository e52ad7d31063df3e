"""Downloading from a loopback stand-in for the hub: redirects, integrity, resume, errors, cache, offline."""
import hashlib
import os
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import hub as hub_module
import utils
from conftest import GOLDEN_DIR, flat
from model_folder import load_model_folder
from pipelines import embed
from distilbert_models import distilbert_folders  # noqa: F401  (the session fixture)
from task_models import model_folders  # noqa: F401  (the session fixture)

LFS_SUFFIXES = (".safetensors", ".bin")


class FakeHub(ThreadingHTTPServer):
    """Serves root/<owner>/<name>/<file> like the hub: resolve URLs, 302 + X-Linked-* for LFS files, Range.

    faults maps a file name to "cut" (first body cut half-way), "corrupt" (a flipped byte), "short" (10 bytes
    missing) or "busy" (one 503);
    gated repos answer 403 unless the request carries `Authorization: Bearer good-token`.
    """
    daemon_threads = True

    def __init__(self, root):
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.root, self.faults, self.gated, self.log = root, {}, set(), []
        self.rendezvous = None  # a threading.Barrier: LFS bodies wait for each other, then trickle out

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def paths(self):
        return [path for path, _ in self.log]


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        hub = self.server
        hub.log.append((self.path, self.headers.get("Range")))
        cdn = self.path.startswith("/cdn/")
        repo, _, filename = self.path.removeprefix("/cdn/" if cdn else "/").partition("/resolve/main/")
        if cdn:
            repo, filename = self.path.removeprefix("/cdn/").rsplit("/", 1)
        path = os.path.join(hub.root, repo, filename)
        if repo in hub.gated and self.headers.get("Authorization") != "Bearer good-token":
            return self.answer(403, headers={"X-Error-Code": "GatedRepo"})
        if not os.path.isdir(os.path.join(hub.root, repo)):
            return self.answer(401, headers={"X-Error-Code": "RepoNotFound"})  # what the hub says to strangers
        if not os.path.isfile(path):
            return self.answer(404, headers={"X-Error-Code": "EntryNotFound"})
        with open(path, "rb") as f:
            body = f.read()
        if filename.endswith(LFS_SUFFIXES) and not cdn:
            return self.answer(302, headers={"Location": f"/cdn/{repo}/{filename}",
                                             "X-Linked-Etag": f'"{hashlib.sha256(body).hexdigest()}"',
                                             "X-Linked-Size": str(len(body))})
        self.serve(body, hub.faults.pop(filename, None) if cdn or not filename.endswith(LFS_SUFFIXES) else None)

    def serve(self, body, fault):
        if fault == "busy":
            return self.answer(503)
        if fault == "corrupt":
            body = body[:100] + bytes([body[100] ^ 1]) + body[101:]
        if fault == "short":  # a well-formed answer that lacks the last 10 bytes
            body = body[:-10]
        start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-")) if self.headers["Range"] else 0
        headers = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"} if start else {}
        self.answer(206 if start else 200, body[start:], headers,
                    cut=len(body) // 2 if fault == "cut" else None, together=self.server.rendezvous)

    def answer(self, status, body=b"", headers=None, cut=None, together=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if together:  # both downloads are under way before either gets its body, in two slow halves
            together.wait(timeout=10)
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            time.sleep(0.3)
            body = body[len(body) // 2:]
        self.wfile.write(body[:cut])
        if cut is not None:  # drop the connection mid-body
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True


@pytest.fixture
def hub(tmp_path, monkeypatch):
    root = tmp_path / "hub-files"
    shutil.copytree(os.path.join(GOLDEN_DIR, "tiny-gelu"), root / "test-org" / "tiny-bert",
                    ignore=shutil.ignore_patterns("expected.npz"))
    server = FakeHub(str(root))
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(hub_module, "RETRY_DELAY", 0.0)
    monkeypatch.chdir(tmp_path)
    yield server
    server.shutdown()
    server.server_close()


def golden_params():
    return utils.load_tokenizer_hparams_and_params(os.path.join(GOLDEN_DIR, "tiny-gelu"))[2]


def assert_same_params(a, b):
    a, b = flat(a), flat(b)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def files_in(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_download_follows_the_redirect_and_verifies(hub):
    tokenizer, hparams, params = utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    assert files_in("models/test-org/tiny-bert") == ["config.json", "model.safetensors", "tokenizer_config.json",
                                                     "vocab.txt"]
    assert hparams["hidden_size"] == 64 and tokenizer.do_lower_case
    assert_same_params(params, golden_params())
    assert hub.paths()[-2:] == ["/test-org/tiny-bert/resolve/main/model.safetensors",
                                "/cdn/test-org/tiny-bert/model.safetensors"]


def test_a_second_load_sends_no_request(hub):
    utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    hub.log.clear()
    utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    assert hub.log == []


def test_a_cut_connection_is_resumed_with_a_range_request(hub):
    hub.faults["model.safetensors"] = "cut"
    params = utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")[2]
    assert_same_params(params, golden_params())
    size = os.path.getsize(os.path.join(GOLDEN_DIR, "tiny-gelu", "model.safetensors"))
    ranges = [r for path, r in hub.log if path.endswith("model.safetensors") and r]
    assert len(ranges) == 2 and ranges[0] == ranges[1]  # the 302 hop and the CDN each see the Range
    assert 0 < int(ranges[0].removeprefix("bytes=").rstrip("-")) <= size // 2  # resumed, not restarted


def test_a_busy_server_is_retried(hub):
    hub.faults["config.json"] = "busy"
    utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    assert hub.paths()[:2] == ["/test-org/tiny-bert/resolve/main/config.json"] * 2


def test_a_corrupted_download_is_refused_and_nothing_is_left(hub):
    hub.faults["model.safetensors"] = "corrupt"
    with pytest.raises(ValueError, match=r"tiny-bert/model.safetensors has (\d+) bytes with sha256 [0-9a-f]{64}, the "
                                         r"hub announced \1 bytes with sha256 [0-9a-f]{64}: refused"):
        utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    assert not os.path.exists("models")  # no corrupt file, no .part, no half-filled folder


def test_a_short_download_is_refused_and_nothing_is_left(hub):
    hub.faults["model.safetensors"] = "short"
    with pytest.raises(ValueError, match=r"model.safetensors has 975958 bytes .* the hub announced 975968 bytes"):
        utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    assert not os.path.exists("models")  # no corrupt file, no .part, no half-filled folder


def test_missing_safetensors_falls_back_to_pytorch_model_bin(hub):
    shutil.copytree(os.path.join(GOLDEN_DIR, "tiny-gelu-legacy"), os.path.join(hub.root, "old-org", "old-bert"))
    params = utils.load_tokenizer_hparams_and_params("old-org/old-bert")[2]
    assert_same_params(params, golden_params())
    assert files_in("models/old-org/old-bert") == ["config.json", "pytorch_model.bin", "vocab.txt"]
    assert "/old-org/old-bert/resolve/main/model.safetensors" in hub.paths()


def test_a_repository_without_weights(hub):
    os.remove(os.path.join(hub.root, "test-org", "tiny-bert", "model.safetensors"))
    with pytest.raises(FileNotFoundError, match="test-org/tiny-bert has neither model.safetensors nor pytorch"):
        utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    assert not os.path.exists("models")  # the half-fetched folder is gone


def test_a_missing_file_is_named(hub):
    os.remove(os.path.join(hub.root, "test-org", "tiny-bert", "config.json"))
    with pytest.raises(FileNotFoundError, match="test-org/tiny-bert/config.json: no such file on http://127"):
        utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    assert not os.path.exists("models")


def test_a_repository_without_vocabulary(hub):
    os.remove(os.path.join(hub.root, "test-org", "tiny-bert", "vocab.txt"))
    with pytest.raises(FileNotFoundError, match="test-org/tiny-bert has neither vocab.txt nor tokenizer.json"):
        utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    assert not os.path.exists("models")


def test_an_unknown_repository_says_so(hub):
    with pytest.raises(PermissionError, match="nobody/nothing/config.json: HTTP 401 RepoNotFound. The repository"):
        utils.load_tokenizer_hparams_and_params("nobody/nothing")
    assert not os.path.exists("models")


def test_a_failed_download_keeps_folders_it_did_not_create(hub):
    os.makedirs("models/nobody/keep")
    with pytest.raises(PermissionError):
        utils.load_tokenizer_hparams_and_params("nobody/nothing")
    assert os.listdir("models/nobody") == ["keep"]


def test_a_gated_repository_needs_hf_token(hub, monkeypatch):
    hub.gated.add("test-org/tiny-bert")
    with pytest.raises(PermissionError, match="HTTP 403 GatedRepo.*set HF_TOKEN"):
        utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    monkeypatch.setenv("HF_TOKEN", "good-token")
    utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")


def test_short_names_map_to_hub_repositories_and_casing(hub):
    shutil.copytree(os.path.join(GOLDEN_DIR, "tiny-gelu-legacy"),
                    os.path.join(hub.root, "google-bert", "bert-base-cased"))
    tokenizer, _, params = utils.load_tokenizer_hparams_and_params("bert-base-cased")
    assert not tokenizer.do_lower_case  # no tokenizer_config.json: the name decides
    assert files_in("models/bert-base-cased") == ["config.json", "pytorch_model.bin", "vocab.txt"]
    assert hub.paths()[0] == "/google-bert/bert-base-cased/resolve/main/config.json"


def test_the_default_sentiment_model_of_transformers_by_its_short_name(hub, distilbert_folders):
    """distilbert-base-uncased-finetuned-sst-2-english: a DistilBERT checkpoint, downloaded and read as BERT."""
    shutil.copytree(distilbert_folders["distil-sentiment"],
                    os.path.join(hub.root, "distilbert", "distilbert-base-uncased-finetuned-sst-2-english"))
    tokenizer, hparams, params = utils.load_tokenizer_hparams_and_params(
        "distilbert-base-uncased-finetuned-sst-2-english")
    assert hparams["model_type"] == "distilbert" and tokenizer.do_lower_case
    local_tokenizer, local_hparams, local_params = load_model_folder(distilbert_folders["distil-sentiment"])
    np.testing.assert_array_equal(embed(["a fine film"], tokenizer, params, hparams, progress=False),
                                  embed(["a fine film"], local_tokenizer, local_params, local_hparams, progress=False))


def test_an_unknown_short_name_lists_the_known_ones(hub):
    with pytest.raises(ValueError, match="unknown model 'bert-huge'.*bert-tiny-uncased.*multilingual-cased"):
        utils.load_tokenizer_hparams_and_params("bert-huge")
    assert hub.log == []


def test_offline_without_a_cache_fails_clearly_and_quietly(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="test-org/tiny-bert is not cached .*HF_HUB_OFFLINE is set"):
        utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    assert hub.log == []


def test_offline_with_a_cache_loads_without_the_network(hub, monkeypatch):
    utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    hub.log.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_same_params(utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")[2], golden_params())
    assert hub.log == []


@pytest.mark.parametrize("repo, cache_name", [("test-org/tiny-bert", "models--test-org--tiny-bert"),
                                              ("bert-base-uncased", "models--bert-base-uncased")])
def test_the_hugging_face_cache_is_reused(hub, tmp_path, repo, cache_name):
    snapshot = tmp_path / "hf-home" / "hub" / cache_name / "snapshots" / "0123abc"
    shutil.copytree(os.path.join(GOLDEN_DIR, "tiny-gelu"), snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abc")
    assert_same_params(utils.load_tokenizer_hparams_and_params(repo)[2], golden_params())
    assert hub.log == [] and not os.path.exists("models")


def test_two_concurrent_downloads_of_one_model_both_succeed(hub):
    """Each download writes its own hidden partial file, so neither truncates or deletes the other's."""
    hub.rendezvous = threading.Barrier(2)
    results, errors = [], []

    def load():
        try:
            results.append(utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")[2])
        except Exception as e:  # reported below, with the other thread's outcome
            errors.append(e)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(results) == 2
    assert hub.paths().count("/cdn/test-org/tiny-bert/model.safetensors") == 2  # they really overlapped
    for params in results:
        assert_same_params(params, golden_params())
    assert files_in("models/test-org/tiny-bert") == ["config.json", "model.safetensors", "tokenizer_config.json",
                                                     "vocab.txt"]


def test_a_sentence_transformers_repository_brings_the_files_its_modules_name(hub, model_folders):
    """The hub's classic layout (as all-MiniLM-L6-v2): modules.json names 2_Normalize, which the repository
    lacks and nothing needs."""
    shutil.copytree(model_folders["bge-classic"], os.path.join(hub.root, "st-org", "bge"))
    _, hparams, _ = utils.load_tokenizer_hparams_and_params("st-org/bge")
    assert files_in("models/st-org/bge") == ["1_Pooling", "config.json", "config_sentence_transformers.json",
                                             "model.safetensors", "modules.json", "sentence_bert_config.json",
                                             "tokenizer_config.json", "vocab.txt"]
    assert files_in("models/st-org/bge/1_Pooling") == ["config.json"]
    assert hparams["sentence_transformers"] == {"pooling": "cls", "normalize": True, "max_seq_length": 64,
                                                "do_lower_case": False, "prompts": {}, "default_prompt_name": None,
                                                "include_prompt": True, "dense": []}
    assert not [path for path in hub.paths() if "Normalize" in path or "tokenizer.json" in path]
    hub.log.clear()
    utils.load_tokenizer_hparams_and_params("st-org/bge")
    assert hub.log == []  # complete on disk: no request


def test_a_sentence_transformers_6_repository_has_tokenizer_json_alone(hub, model_folders):
    shutil.copytree(model_folders["bge-st6"], os.path.join(hub.root, "st-org", "bge6"))
    tokenizer, hparams, _ = utils.load_tokenizer_hparams_and_params("st-org/bge6")
    assert "tokenizer.json" in files_in("models/st-org/bge6") and "vocab.txt" not in files_in("models/st-org/bge6")
    assert hub.paths().index("/st-org/bge6/resolve/main/vocab.txt") < hub.paths().index(
        "/st-org/bge6/resolve/main/tokenizer.json")
    assert len(tokenizer.vocab) == 30522 and hparams["sentence_transformers"]["max_seq_length"] == 48


@pytest.mark.parametrize("name, missing, message", [
    ("bge-classic", "1_Pooling/config.json", "has no 1_Pooling/config.json, which its modules.json needs"),
    ("labse-like", "2_Dense/model.safetensors", "has no 2_Dense/model.safetensors nor 2_Dense/pytorch_model.bin, "
                                                "which its modules.json needs"),
])
def test_a_missing_module_file_fails_the_download_and_leaves_nothing(hub, model_folders, name, missing, message):
    shutil.copytree(model_folders[name], os.path.join(hub.root, "st-org", name))
    os.remove(os.path.join(hub.root, "st-org", name, missing))
    with pytest.raises(FileNotFoundError, match=f"st-org/{name} {message}"):
        utils.load_tokenizer_hparams_and_params(f"st-org/{name}")
    assert not os.path.exists("models")


def test_a_dense_module_brings_its_config_and_one_weights_file(hub, model_folders):
    """As LaBSE: Transformer -> Pooling -> 2_Dense -> 3_Normalize; the first Dense weights file found is taken."""
    shutil.copytree(model_folders["labse-like"], os.path.join(hub.root, "st-org", "labse"))
    tokenizer, hparams, params = utils.load_tokenizer_hparams_and_params("st-org/labse")
    assert files_in("models/st-org/labse/2_Dense") == ["config.json", "model.safetensors"]
    assert not [path for path in hub.paths() if "2_Dense/pytorch_model.bin" in path]  # the first one found
    local_tokenizer, local_hparams, local_params = load_model_folder(model_folders["labse-like"])
    np.testing.assert_array_equal(embed(["a fine film"], tokenizer, params, hparams, progress=False),
                                  embed(["a fine film"], local_tokenizer, local_params, local_hparams, progress=False))
