"""sentence-transformers folders: their settings in hparams["sentence_transformers"] (both layouts: the hub's
classic one and sentence-transformers 6's), folders with tokenizer.json alone, and embed with the model's own
settings against SentenceTransformer.encode (tests/golden/pipelines/embeddings.npz, make_golden_pipelines.py)."""
import json
import os
import shutil

import numpy as np
import pytest

import task_models as tm
from model_folder import load_model_folder
from pipelines import embed, embedding_settings
from task_models import model_folders  # noqa: F401  (the session fixture)

GOLDEN = np.load(os.path.join(tm.GOLDEN, "embeddings.npz"))
PLAIN = {"prompts": {}, "default_prompt_name": None, "include_prompt": True, "dense": []}  # no prompts, no Dense
SETTINGS = {
    "bge-classic": {"pooling": "cls", "normalize": True, "max_seq_length": 64, "do_lower_case": False, **PLAIN},
    "bge-st6": {"pooling": "cls", "normalize": True, "max_seq_length": 48, "do_lower_case": False, **PLAIN},
    "lowercase-max": {"pooling": "max", "normalize": False, "max_seq_length": 40, "do_lower_case": True,
                      **PLAIN},
    "sqrt-len": {"pooling": "mean_sqrt_len", "normalize": True, "max_seq_length": 512, "do_lower_case": False,
                 **PLAIN},
    "prompted": {"pooling": "mean", "normalize": True, "max_seq_length": 64, "do_lower_case": False,
                 "prompts": {"query": "query: ", "passage": "passage: ", "empty": ""}, "default_prompt_name": "query",
                 "include_prompt": True, "dense": []},
    "instructed-mean": {"pooling": "mean", "normalize": False, "max_seq_length": 40, "do_lower_case": False,
                        "prompts": tm.ST_PROMPTS["instructed-mean"][0], "default_prompt_name": None,
                        "include_prompt": False, "dense": []},
    "instructed-cls": {"pooling": "cls", "normalize": False, "max_seq_length": 48, "do_lower_case": False,
                       "prompts": tm.ST_PROMPTS["instructed-cls"][0], "default_prompt_name": "query",
                       "include_prompt": False, "dense": []},
    "labse-like": {"pooling": "cls", "normalize": True, "max_seq_length": 64, "do_lower_case": False, **PLAIN,
                   "dense": [{"activation": "torch.nn.modules.activation.Tanh", "residual": False}]},
    "projected": {"pooling": "mean", "normalize": False, "max_seq_length": 64, "do_lower_case": False, **PLAIN,
                  "dense": [{"activation": activation, "residual": residual} for _, activation, residual in
                            tm.ST_DENSE["projected"]]},
}


def test_real_minilm_equals_sentence_transformers_encode(minilm):
    tokenizer, hparams, params = load_model_folder(minilm)
    assert hparams["sentence_transformers"] == {"pooling": "mean", "normalize": True, "max_seq_length": 256,
                                                "do_lower_case": False, **PLAIN}
    texts = tm.embedding_texts() + tm.reviews([0])  # the golden file also has reviews([3])
    features = embed(texts, tokenizer, params, hparams, batch_size=5, progress=False)
    assert max(len(tokenizer.tokenize(t)) for t in texts) > 256  # the long review is cut at 256 tokens
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, rtol=0, atol=1e-6)
    np.testing.assert_allclose(features, GOLDEN["minilm"][:len(texts)], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", tm.ST_MODELS)
def test_random_models_equal_sentence_transformers_encode(name, model_folders):
    tokenizer, hparams, params = load_model_folder(model_folders[name])
    assert hparams["sentence_transformers"] == SETTINGS[name]
    features = embed(tm.embedding_texts(), tokenizer, params, hparams, batch_size=3, progress=False)
    np.testing.assert_allclose(features, GOLDEN[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", tm.PROMPT_CASES)
def test_prompts_given_at_the_call_equal_sentence_transformers_encode(case, model_folders):
    """A prompt by name or as text, as encode's prompt_name / prompt: put before each text, and with the
    Pooling's include_prompt False left out of the mean or the cls vector (the first token after it)."""
    tokenizer, hparams, params = load_model_folder(model_folders[case.split("/")[0]])
    features = embed(tm.embedding_texts(), tokenizer, params, hparams, batch_size=3, progress=False,
                     **tm.PROMPT_CASES[case])
    np.testing.assert_allclose(features, GOLDEN[case], rtol=0, atol=1e-5)


def test_the_prompt_changes_the_features_and_is_counted_in_n_tokens(model_folders):
    tokenizer, hparams, params = load_model_folder(model_folders["prompted"])
    texts = tm.embedding_texts()[:3]
    default, n_default = embed(texts, tokenizer, params, hparams, progress=False, return_n_tokens=True)
    plain, n_plain = embed(texts, tokenizer, params, hparams, progress=False, return_n_tokens=True, prompt="")
    np.testing.assert_array_equal(default, embed(texts, tokenizer, params, hparams, prompt_name="query",
                                                 progress=False))
    np.testing.assert_array_equal(plain, embed(texts, tokenizer, params, hparams, prompt_name="empty",
                                               progress=False))
    assert np.abs(default - plain).max() > 0.1
    np.testing.assert_array_equal(n_default - n_plain, len(tokenizer.tokenize("query: ")))


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt_name": "passage"}, r"prompt_name 'passage' is not one of the model's prompts \('query'\)"),
    ({"prompt_name": "query", "prompt": "q: "}, "give prompt or prompt_name, not both"),
    ({"prompt": 3}, "prompt must be a str, got int"),
])
def test_prompt_mistakes_are_named(kwargs, message, model_folders):
    tokenizer, hparams, params = load_model_folder(model_folders["instructed-cls"])
    with pytest.raises(ValueError, match=message):
        embed(["a text"], tokenizer, params, hparams, progress=False, **kwargs)
    tokenizer, hparams, params = load_model_folder(model_folders["bge-classic"])
    with pytest.raises(ValueError, match="it has none"):
        embed(["a text"], tokenizer, params, hparams, progress=False, prompt_name="query")


@pytest.mark.parametrize("config, message", [
    ({"prompts": {"query": "q: "}, "default_prompt_name": "passage"},
     r"default_prompt_name 'passage' is not one of its prompts \('query'\)"),
    ({"prompts": ["q: "]}, "prompts must map names to texts"),
])
def test_a_folders_prompt_mistakes_are_named(config, message, model_folders, tmp_path):
    folder = copy_folder(model_folders, "prompted", tmp_path)
    tm.write_json(str(folder / "config_sentence_transformers.json"), config)
    with pytest.raises(ValueError, match=r"config_sentence_transformers.json: " + message):
        load_model_folder(folder)


def test_both_layouts_of_one_model_embed_alike(model_folders):
    """The sentence-transformers 6 folder (tokenizer.json, no vocab.txt) tokenizes as the classic one."""
    assert not os.path.exists(os.path.join(model_folders["bge-st6"], "vocab.txt"))
    classic, st6 = load_model_folder(model_folders["bge-classic"]), load_model_folder(model_folders["bge-st6"])
    assert classic[0].vocab == st6[0].vocab and st6[0].do_lower_case
    texts = tm.embedding_texts()
    assert [classic[0].tokenize(t) for t in texts] == [st6[0].tokenize(t) for t in texts]
    np.testing.assert_array_equal(embed(texts, classic[0], classic[2], classic[1], max_length=48, progress=False),
                                  embed(texts, st6[0], st6[2], st6[1], progress=False))


def test_explicit_arguments_override_the_models_settings(model_folders):
    tokenizer, hparams, params = load_model_folder(model_folders["bge-classic"])
    assert embedding_settings(hparams) == ("cls", True, 64, False)
    assert embedding_settings(hparams, "mean", False, 128) == ("mean", False, 128, False)
    assert embedding_settings({"hidden_size": 8}) == ("pooler", False, 512, False)  # plain BERT: today's defaults
    texts = tm.embedding_texts()[:4]
    raw = embed(texts, tokenizer, params, hparams, normalize=False, progress=False)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), GOLDEN["bge-classic"][:4],
                               rtol=0, atol=1e-5)
    pooled = embed(texts, tokenizer, params, hparams, pooling="pooler", progress=False)
    assert not np.allclose(pooled, GOLDEN["bge-classic"][:4], atol=0.1)


def test_do_lower_case_lowercases_without_stripping_accents(model_folders):
    """sentence_bert_config.json's do_lower_case lowercases the text (each character alone, as HF's tokenizers
    do: no final sigma) before a tokenizer that keeps case and accents."""
    tokenizer, hparams, params = load_model_folder(model_folders["lowercase-max"])
    assert not tokenizer.do_lower_case
    upper, lower = ["CAFÉ ΟΔΟΣ Zürich"], ["café οδοσ zürich"]
    np.testing.assert_array_equal(embed(upper, tokenizer, params, hparams, progress=False),
                                  embed(lower, tokenizer, params, hparams, progress=False))


def copy_folder(model_folders, name, tmp_path):
    return shutil.copytree(model_folders[name], tmp_path / name)


def edit_json(path, change):
    """Apply change (which edits in place) to the JSON in path."""
    with open(path, encoding="utf-8") as f:
        value = json.load(f)
    change(value)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.insert(2, {"idx": 2, "path": "2_LayerNorm", "type": "sentence_transformers.models.LayerNorm"}),
     "module sentence_transformers.models.LayerNorm is not supported: numpy-bert runs sentence-transformers' "
     "Transformer, Pooling, Dense and Normalize modules"),
    (lambda m: m.reverse(), "modules Normalize -> Pooling -> Transformer are not supported"),
    (lambda m: m.insert(2, dict(m[2])), "modules Transformer -> Pooling -> Normalize -> Normalize are not supported: "
                                         "numpy-bert runs Transformer -> Pooling, then Dense modules and Normalize"),
    (lambda m: m[0].update(path="0_BERT"), r"the model in a subfolder \(0_BERT\) is not supported"),
])
def test_modules_numpy_bert_cannot_run_are_named(change, message, model_folders, tmp_path):
    folder = copy_folder(model_folders, "bge-classic", tmp_path)
    edit_json(folder / "modules.json", change)
    with pytest.raises(ValueError, match=message):
        load_model_folder(folder)


@pytest.mark.parametrize("pooling, message", [
    ({"pooling_mode": "weightedmean"}, "pooling 'weightedmean' is not supported; numpy-bert has cls, mean, max, "
                                       "mean_sqrt_len_tokens"),
    ({"pooling_mode": ["cls", "mean"]}, r"several poolings at once \(cls, mean\) are not supported"),
    ({"pooling_mode_cls_token": True, "pooling_mode_max_tokens": True}, "several poolings at once"),
])
def test_poolings_numpy_bert_lacks_are_named(pooling, message, model_folders, tmp_path):
    folder = copy_folder(model_folders, "bge-classic", tmp_path)
    tm.write_json(str(folder / "1_Pooling" / "config.json"), pooling)
    with pytest.raises(ValueError, match=message):
        load_model_folder(folder)


def test_pooling_config_without_a_mode_is_mean_as_in_sentence_transformers(model_folders, tmp_path):
    folder = copy_folder(model_folders, "bge-classic", tmp_path)
    tm.write_json(str(folder / "1_Pooling" / "config.json"), {"word_embedding_dimension": 32})
    assert load_model_folder(folder)[1]["sentence_transformers"]["pooling"] == "mean"


@pytest.mark.parametrize("name, missing, message", [
    ("bge-classic", "1_Pooling/config.json", r"bge-classic needs config.json, vocab.txt or tokenizer.json and "
                                             r"model.safetensors or pytorch_model.bin, 1_Pooling/config.json"),
    ("labse-like", "2_Dense/model.safetensors", r"1_Pooling/config.json, 2_Dense/config.json, "
                                                r"2_Dense/model.safetensors or 2_Dense/pytorch_model.bin$"),
])
def test_a_missing_module_file_is_named(name, missing, message, model_folders, tmp_path):
    folder = copy_folder(model_folders, name, tmp_path)
    os.remove(folder / missing)
    with pytest.raises(FileNotFoundError, match=message):
        load_model_folder(folder)


def test_dense_modules_are_read_as_sentence_transformers_saves_them(model_folders):
    tokenizer, hparams, params = load_model_folder(model_folders["projected"])
    layers = params["sentence_dense"]
    assert [layer["w"].shape for layer in layers] == [(32, 24), (24, 24), (24, 16)]
    assert [sorted(layer) for layer in layers] == [["b", "residual", "w"], ["b", "w"], ["b", "w"]]  # 24 -> 24: x
    features = embed(["a fine film"], tokenizer, params, hparams, progress=False)
    without = embed(["a fine film"], tokenizer, {k: v for k, v in params.items() if k != "sentence_dense"}, hparams,
                    progress=False)
    assert features.shape == (1, 16) and without.shape == (1, 32) and (features >= 0).all()  # ReLU last
    assert embed([], tokenizer, params, hparams, progress=False).shape == (0, 16)


@pytest.mark.parametrize("folder_name, change, message", [
    ("labse-like", lambda c: c.update(activation_function="torch.nn.modules.activation.Softplus"),
     "activation_function 'torch.nn.modules.activation.Softplus' is not supported; numpy-bert has Tanh, Identity"),
    ("labse-like", lambda c: c.update(module_input_name="token_embeddings"),
     "module_input_name 'token_embeddings' is not supported: numpy-bert's Dense modules act on the sentence"),
    ("labse-like", lambda c: c.update(out_features=16), r"2_Dense/model.safetensors does not match .*2_Dense/config"
                                                        r".json: it holds \{'linear.weight': \(32, 32\)"),
    ("projected", lambda c: c.update(use_residual=False), r"it holds .*'residual.weight': \(24, 32\).* the config "
                                                          r"gives \{'linear.weight': \(24, 32\), 'linear.bias': \(24,"),
])
def test_dense_modules_numpy_bert_cannot_run_are_named(folder_name, change, message, model_folders, tmp_path):
    folder = copy_folder(model_folders, folder_name, tmp_path)
    edit_json(folder / "2_Dense" / "config.json", change)
    with pytest.raises(ValueError, match=message):
        load_model_folder(folder)


def test_a_cross_encoder_saved_by_sentence_transformers_6_is_a_plain_classifier(model_folders, tmp_path):
    """sentence-transformers 6 saves a CrossEncoder with a modules.json of one Transformer module."""
    folder = shutil.copytree(model_folders["reranker"], tmp_path / "reranker")
    tm.write_json(str(folder / "modules.json"), [{"idx": 0, "name": "0", "path": "", "type": tm.ST6["Transformer"]}])
    _, hparams, params = load_model_folder(folder)
    assert "sentence_transformers" not in hparams and "classifier" in params


def test_tokenizer_json_alone_gives_vocabulary_and_casing(model_folders, tmp_path):
    """A BERT folder with tokenizer.json but no vocab.txt loads: lowercasing from tokenizer_config.json's
    do_lower_case when it says, else from tokenizer.json's normalizer (as transformers 4 does), and so
    strip_accents and tokenize_chinese_chars (handle_chinese_chars there)."""
    folder = shutil.copytree(model_folders["bge-st6"], tmp_path / "cased")
    for name in ("modules.json", "tokenizer_config.json"):
        os.remove(folder / name)
    edit_json(folder / "tokenizer.json", lambda t: t["normalizer"].update(lowercase=False))
    tokenizer, hparams, _ = load_model_folder(folder)
    assert not tokenizer.do_lower_case and "sentence_transformers" not in hparams
    assert tokenizer.tokenize("Hello") == ["[UNK]"] and len(tokenizer.vocab) == 30522
    tm.write_json(str(folder / "tokenizer_config.json"), {"do_lower_case": True})
    assert load_model_folder(folder)[0].tokenize("Hello") == ["hello"]
    os.remove(folder / "tokenizer_config.json")
    edit_json(folder / "tokenizer.json", lambda t: t["normalizer"].update(
        lowercase=True, strip_accents=False, handle_chinese_chars=False))
    tokenizer = load_model_folder(folder)[0]
    assert (tokenizer.do_lower_case, tokenizer.strip_accents, tokenizer.tokenize_chinese_chars) == (True, False, False)


@pytest.mark.parametrize("change, message", [
    (lambda t: t["model"].update(type="BPE"), "holds no WordPiece vocabulary: it is not a BERT tokenizer"),
    (lambda t: t["normalizer"].update(type="NFC"), "normalizer 'NFC' is not supported"),
    (lambda t: t["normalizer"].update(clean_text=False), "clean_text false is not supported"),
    (lambda t: t["added_tokens"].append({"id": 30522, "content": "covidvax", "special": False}),
     r"added tokens \('covidvax'\) are not supported"),
    (lambda t: t["model"]["vocab"].pop("[SEP]"), r"lacks the special token\(s\) \[SEP\]"),
])
def test_tokenizer_json_that_is_not_berts_is_named(change, message, model_folders, tmp_path):
    folder = shutil.copytree(model_folders["bge-st6"], tmp_path / "odd")
    os.remove(folder / "tokenizer_config.json")
    edit_json(folder / "tokenizer.json", change)
    with pytest.raises(ValueError, match=message):
        load_model_folder(folder)
