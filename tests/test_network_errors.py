"""Network failures and offline mode are one short line naming the endpoint (or the variable that is set) and
what to do, after the retries, with no progress bar left hanging; short names reach the right repositories."""
import os
import socket

import pytest

import hub as hub_module
import utils
from scripts import assert_one_line_error, run_script
from test_download import hub  # noqa: F401 (the loopback fake hub fixture)

INTERNALS = ("urllib3", "HTTPConnectionPool", "Max retries", "Caused by", "Errno", "object at 0x")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """No hub at all: HF_ENDPOINT set per test, an empty HF cache, the retries' sleeps recorded, not slept."""
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.chdir(tmp_path)
    sleeps = []
    monkeypatch.setattr(hub_module.time, "sleep", sleeps.append)
    return sleeps


def closed_port():
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_one_short_line(message, *fragments):
    assert "\n" not in message and len(message) < 300, message
    assert not [word for word in INTERNALS if word in message], message
    for fragment in fragments:
        assert fragment in message, message


def test_connection_refused(offline_hub, monkeypatch, capsys):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(ConnectionError) as info:
        utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    assert_one_short_line(str(info.value), f"could not download {endpoint}/test-org/tiny-bert/resolve/main/config.json "
                          "(connection refused, 5 tries): check the network (and HF_ENDPOINT, if set), or set "
                          "HF_HUB_OFFLINE=1")
    assert offline_hub == [0.5, 1, 2, 4]  # the retries, with backoff
    assert capsys.readouterr().err == ""  # no progress bar for a download that never started
    assert not os.path.exists("models")


def test_a_host_that_does_not_resolve(offline_hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://no-such-host.invalid")
    with pytest.raises(ConnectionError) as info:
        utils.load_tokenizer_hparams_and_params("bert-base-uncased")
    assert_one_short_line(str(info.value), "could not download http://no-such-host.invalid/google-bert/"
                          "bert-base-uncased/resolve/main/config.json (cannot resolve the host name, 5 tries)")


def test_a_server_that_never_answers(offline_hub, monkeypatch):
    with socket.socket() as silent:  # listens, so connections succeed, but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(hub_module, "TIMEOUT", (5, 0.1))
        with pytest.raises(ConnectionError) as info:
            utils.load_tokenizer_hparams_and_params("test-org/tiny-bert")
    assert_one_short_line(str(info.value), "config.json (no answer within 0.1 s, 5 tries)")


@pytest.mark.parametrize("flags, says", [
    (["TRANSFORMERS_OFFLINE"], "and TRANSFORMERS_OFFLINE is set: unset it to download, or pass a local directory"),
    (["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"], "and HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE are set"),
])
def test_offline_names_the_variable_that_is_set(offline_hub, monkeypatch, flags, says):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    for flag in flags:
        monkeypatch.setenv(flag, "1")
    with pytest.raises(FileNotFoundError) as info:
        utils.load_tokenizer_hparams_and_params("bert-base-uncased")
    assert_one_short_line(str(info.value), "bert-base-uncased is not cached", says)
    assert offline_hub == [] and ("HF_HUB_OFFLINE" in str(info.value)) == ("HF_HUB_OFFLINE" in flags)


def test_the_default_model_without_network_is_one_line_from_the_demo(tmp_path):
    """The demo as a user runs it: the default model, no network; four retries (7.5 s), then one line."""
    result = run_script("pretrain_demo.py", "--text_a", "hello", "--models_dir", tmp_path / "models", env={
        "HF_HUB_OFFLINE": "", "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "HF_HOME": str(tmp_path)})
    assert_one_line_error(result, "error: could not download http://127.0.0.1:", "/google-bert/bert-base-uncased/"
                          "resolve/main/config.json (connection refused, 5 tries)")
    assert_one_short_line(result.stderr.strip())


@pytest.mark.parametrize("name, repo", [
    ("bert-large-uncased", "google-bert/bert-large-uncased"),
    ("bert-large-cased", "google-bert/bert-large-cased"),
    ("bert-large-uncased-whole-word-masking", "google-bert/bert-large-uncased-whole-word-masking"),
    ("bert-large-cased-whole-word-masking", "google-bert/bert-large-cased-whole-word-masking"),
])
def test_large_short_names(hub, name, repo):  # noqa: F811 (the fixture imported above)
    with pytest.raises(PermissionError):  # the fake hub does not have them
        utils.load_tokenizer_hparams_and_params(name)
    assert hub.paths() == [f"/{repo}/resolve/main/config.json"]
