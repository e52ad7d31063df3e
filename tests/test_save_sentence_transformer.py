"""model_folder.save_sentence_transformer against sentence-transformers 6.2 (tests/golden/st_save.npz, from
make_golden_st_save.py): the folders it writes for the real all-MiniLM-L6-v2 (with seeded noise added, so that a
folder reloading the original would show), a plain BERT checkpoint and every sentence-transformers folder of
task_models.py (both layouts, every pooling, Dense modules, prompts, lowercasing), reloaded by numpy-bert, embed
as SentenceTransformer(folder).encode does; the files, the heads left out, the refusals, an interrupted save."""
import json
import os

import numpy as np
import pytest

import model_folder
import pipelines
import st_modules
import task_models as tm
from conftest import GOLDEN_DIR, minilm_dir
from optim import leaves
from task_models import model_folders  # noqa: F401  (the session fixture)

GOLDEN = os.path.join(GOLDEN_DIR, "st_save.npz")
TINY = os.path.join(GOLDEN_DIR, "tiny-gelu")  # a plain BERT checkpoint (BertForPreTraining: MLM and NSP heads)
CASES = ["minilm", "plain", *tm.ST_MODELS]
TEXTS = tm.embedding_texts  # real review sentences, two long IMDB reviews (cut), edge cases


def noisy(tree, rng):
    """A copy of a params tree with seeded noise added to every array (0.05 of its standard deviation)."""
    if isinstance(tree, dict):
        return {key: noisy(value, rng) for key, value in tree.items()}
    if isinstance(tree, list):
        return [noisy(value, rng) for value in tree]
    return tree + rng.standard_normal(tree.shape, dtype=np.float32) * (np.float32(0.05) * tree.std())


def source_model(name, folders):
    """(tokenizer, hparams, params) that case `name` saves: MiniLM with noise, the tiny plain BERT, or the
    task_models sentence-transformers folder of that name (folders: {name: folder}, as model_folders)."""
    if name == "minilm":
        tokenizer, hparams, params = model_folder.load_model_folder(minilm_dir())
        return tokenizer, hparams, noisy(params, np.random.default_rng(0))
    return model_folder.load_model_folder(TINY if name == "plain" else folders[name])


def safetensors_names(path):
    raw = open(path, "rb").read()
    return set(json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])) - {"__metadata__"}


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return dict(data)


@pytest.mark.parametrize("name", CASES)
def test_the_saved_folder_embeds_as_sentence_transformers_does(name, golden, model_folders, tmp_path):  # noqa: F811
    tokenizer, hparams, params = source_model(name, model_folders)
    model_folder.save_sentence_transformer(tmp_path / name, tokenizer, params, hparams)
    loaded_tokenizer, loaded_hparams, loaded = model_folder.load_model_folder(tmp_path / name)
    ours = pipelines.embed(TEXTS(), loaded_tokenizer, loaded, loaded_hparams, progress=False)
    assert ours.shape == golden[name].shape
    np.testing.assert_allclose(ours, golden[name], rtol=0, atol=1e-5)
    kept = {key: params[key] for key in ("embeddings", "blocks", "pooler", "sentence_dense") if key in params}
    assert [path for path, _ in leaves(loaded)] == [path for path, _ in leaves(kept)]  # no heads
    for (path, a), (_, b) in zip(leaves(kept), leaves(loaded)):
        np.testing.assert_array_equal(a, b, err_msg=path)
    assert loaded_tokenizer.vocab == tokenizer.vocab and loaded_tokenizer.do_lower_case == tokenizer.do_lower_case
    # the folder's settings survive; a plain BERT gets what SentenceTransformer makes of one (the golden's check)
    expected = hparams.get("sentence_transformers", {**st_modules.ST_PLAIN, "max_seq_length": 64})
    assert loaded_hparams["sentence_transformers"] == expected
    if name == "minilm":  # the noise shows: the golden is not the original MiniLM's
        tokenizer, hparams, params = model_folder.load_model_folder(minilm_dir())
        original = pipelines.embed(TEXTS(), tokenizer, params, hparams, progress=False)
        assert np.abs(original - golden[name]).max(axis=1).min() > 1e-3


def test_the_golden_cases_cover_the_settings(golden, model_folders):  # noqa: F811
    assert sorted(golden) == sorted(CASES)
    settings = [model_folder.load_model_folder(model_folders[name])[1]["sentence_transformers"]
                for name in tm.ST_MODELS]
    assert {s["pooling"] for s in settings} == {"cls", "mean", "max", "mean_sqrt_len"}
    assert {s["normalize"] for s in settings} == {s["include_prompt"] for s in settings} == {True, False}
    assert any(s["do_lower_case"] for s in settings) and any(s["default_prompt_name"] for s in settings)
    assert {d["residual"] for s in settings for d in s["dense"]} == {True, False}


def test_the_files_are_sentence_transformers_6s(model_folders, tmp_path):  # noqa: F811
    tokenizer, hparams, params = source_model("labse-like", model_folders)  # cls, Dense, Normalize
    folder = tmp_path / "labse"
    model_folder.save_sentence_transformer(folder, tokenizer, params, hparams)
    assert os.listdir(tmp_path) == ["labse"]  # no temporary folder left
    files = sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, names in os.walk(folder) for f in names)
    assert files == ["1_Pooling/config.json", "2_Dense/config.json", "2_Dense/model.safetensors",
                     "3_Normalize/config.json", "config.json", "config_sentence_transformers.json", "model.safetensors",
                     "modules.json", "sentence_bert_config.json", "tokenizer_config.json", "vocab.txt"]
    read = lambda name: json.loads((folder / name).read_text())  # noqa: E731
    assert [(m["path"], m["type"].rsplit(".", 1)[-1]) for m in read("modules.json")] == [
        ("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Dense", "Dense"), ("3_Normalize", "Normalize")]
    assert all(m["type"] == model_folder.ST6_MODULES[m["type"].rsplit(".", 1)[-1]] for m in read("modules.json"))
    assert read("1_Pooling/config.json") == {"embedding_dimension": 32, "pooling_mode": "cls", "include_prompt": True}
    assert read("2_Dense/config.json") == {
        "in_features": 32, "out_features": 32, "bias": True, "activation_function": "torch.nn.modules.activation.Tanh",
        "module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"}
    assert safetensors_names(folder / "2_Dense" / "model.safetensors") == {"linear.weight", "linear.bias"}
    assert read("config.json")["architectures"] == ["BertModel"] and "sentence_transformers" not in read("config.json")
    assert read("tokenizer_config.json")["model_max_length"] == 64  # its sentence_bert_config's max_seq_length
    assert read("sentence_bert_config.json")["transformer_task"] == "feature-extraction"
    assert read("config_sentence_transformers.json") == {"model_type": "SentenceTransformer", "prompts": {},
                                                         "default_prompt_name": None}


def test_task_heads_are_left_out(tmp_path):
    tokenizer, hparams, params = model_folder.load_model_folder(TINY)  # with MLM and NSP heads
    head = {"w": np.ones((64, 2), np.float32), "b": np.zeros(2, np.float32)}
    model_folder.save_sentence_transformer(tmp_path / "with-pooler", tokenizer, {**params, "classifier": head,
                                                                                "qa": head}, hparams)
    names = safetensors_names(tmp_path / "with-pooler" / "model.safetensors")
    assert {name.split(".")[0] for name in names} == {"embeddings", "encoder", "pooler"}  # BertModel's, no "bert."
    assert len(names) == 5 + 16 * 2 + 2
    encoder = {key: params[key] for key in ("embeddings", "blocks")}
    model_folder.save_sentence_transformer(tmp_path / "no-pooler", tokenizer, encoder, hparams)
    assert not [n for n in safetensors_names(tmp_path / "no-pooler" / "model.safetensors") if n.startswith("pooler")]
    assert "pooler" not in model_folder.load_model_folder(tmp_path / "no-pooler")[2]


def test_bad_settings_are_refused(model_folders, tmp_path):  # noqa: F811
    tokenizer, hparams, params = source_model("projected", model_folders)  # three Dense modules
    save = model_folder.save_sentence_transformer
    with pytest.raises(ValueError, match="3 Dense modules but params\\[\"sentence_dense\"\\] 2"):
        save(tmp_path / "a", tokenizer, {**params, "sentence_dense": params["sentence_dense"][:2]}, hparams)
    st = {**hparams["sentence_transformers"], "pooling": "pooler"}
    with pytest.raises(ValueError, match="pooling 'pooler' has no sentence-transformers Pooling"):
        save(tmp_path / "b", tokenizer, params, {**hparams, "sentence_transformers": st})
    with pytest.raises(ValueError, match="writes BERT checkpoints, not distilbert"):
        save(tmp_path / "c", tokenizer, params, {**hparams, "model_type": "distilbert"})
    assert os.listdir(tmp_path) == []


def test_never_overwrites_and_leaves_nothing_when_interrupted(model_folders, tmp_path, monkeypatch):  # noqa: F811
    tokenizer, hparams, params = source_model("projected", model_folders)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        model_folder.save_sentence_transformer(tmp_path / "taken", tokenizer, params, hparams)
    (tmp_path / "empty").mkdir()
    model_folder.save_sentence_transformer(tmp_path / "empty", tokenizer, params, hparams)  # an empty folder is fine
    assert model_folder.is_complete(tmp_path / "empty")
    written = []

    def interrupt(folder, settings, layer):  # the last Dense module: everything else is written by then
        written.append(folder)
        if len(written) == 3:
            raise KeyboardInterrupt
        real_write_dense(folder, settings, layer)

    real_write_dense = model_folder.write_dense
    monkeypatch.setattr(model_folder, "write_dense", interrupt)
    with pytest.raises(KeyboardInterrupt):
        model_folder.save_sentence_transformer(tmp_path / "cut", tokenizer, params, hparams)
    assert len(written) == 3 and sorted(os.listdir(tmp_path)) == ["empty", "taken"]
