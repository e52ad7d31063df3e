"""embed_corpus.py end to end on real movie reviews: the Parquet folder it writes, resuming, refusing to mix
settings, bad inputs, and the Ray engine on a local Ray instance."""
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import task_models
from conftest import GOLDEN_DIR, ROOT
from corpus_runs import TINY, embeddings, expected_embeddings, read_folder, read_manifest, read_reviews, run
from scripts import interruptible

@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """datasets' cache for local data files and dataset folders, per test."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))


@pytest.fixture(scope="module")
def sentences():
    return read_reviews("rt_polarity_sample.csv", 300)


@pytest.fixture(scope="module")
def long_reviews(tmp_path_factory):
    """300 real IMDb reviews (long: the tiny model cuts them at 64 tokens), no id column."""
    path = tmp_path_factory.mktemp("imdb") / "imdb.csv"
    pd.DataFrame({"text": read_reviews("imdb_sample.csv", 300)}).to_csv(path, index=False)
    return str(path)


def test_real_model_on_real_sentences_keeps_ids_and_order(tmp_path, sentences, minilm, capsys):
    """all-MiniLM-L6-v2, mean pooling, normalized; two inputs (csv + jsonl), string ids, three empty texts."""
    texts = sentences[:60] + ["", "   "] + sentences[60:120] + [None]
    ids = [f"rt-{i:04d}" for i in range(len(texts))]
    pd.DataFrame({"id": ids[:100], "text": texts[:100]}).to_csv(tmp_path / "a.csv", index=False)
    with open(tmp_path / "b.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t, "id": i}) + "\n" for i, t in zip(ids[100:], texts[100:]))
    out = tmp_path / "vectors"
    code, _ = run(tmp_path / "*.csv", tmp_path / "b.jsonl", "--output", out, "--model_name", minilm,
                  "--id_column", "id", "--pooling", "mean", "--normalize", "--rows_per_shard", 50)
    assert code == 0
    assert sorted(os.listdir(out)) == ["_manifest.json", "part-00000.parquet", "part-00001.parquet",
                                       "part-00002.parquet"]
    table = read_folder(out)
    assert table.schema == pa.schema([("id", pa.string()), ("n_tokens", pa.int32()),
                                      ("embedding", pa.list_(pa.float32(), 384))])
    kept = [i for i, t in enumerate(texts) if t and t.strip()]
    assert table["id"].to_pylist() == [ids[i] for i in kept]
    features, n_tokens = expected_embeddings(minilm, [texts[i] for i in kept], "mean", True)
    assert np.abs(embeddings(table) - features).max() < 1e-5
    assert table["n_tokens"].to_pylist() == n_tokens.tolist()
    assert pd.read_parquet(out).shape == (120, 3)
    manifest = read_manifest(out)
    assert manifest["inputs"][0]["name"] == str(tmp_path / "a.csv") and manifest["inputs"][0]["bytes"] > 0
    assert {k: manifest[k] for k in ("pooling", "normalize", "max_length", "dimension", "rows", "rows_skipped",
                                     "rows_written", "shards", "complete", "key", "rows_per_shard")} == {
        "pooling": "mean", "normalize": True, "max_length": 256, "dimension": 384, "rows": 123, "rows_skipped": 3,
        "rows_written": 120, "shards": 3, "complete": True, "key": "id", "rows_per_shard": 50}
    err = capsys.readouterr().err
    assert "note: left out 3 of 123 rows with an empty or missing 'text' (rows 60, 61, 122)" in err
    assert "120/120" in err  # one progress bar over all rows


def test_row_numbers_integer_ids_and_parquet_input(tmp_path, sentences):
    """Without --id_column the key is the row number over all inputs; an integer id column stays int64."""
    pq.write_table(pa.table({"text": sentences[:50], "n": pa.array(range(50), pa.int64())}), tmp_path / "a.parquet")
    pd.DataFrame({"text": sentences[50:80], "n": range(50, 80)}).to_csv(tmp_path / "b.csv", index=False)
    inputs = [tmp_path / "a.parquet", tmp_path / "b.csv"]
    assert run(*inputs, "--output", tmp_path / "rows", "--model_name", TINY)[0] == 0
    assert read_folder(tmp_path / "rows")["row"].to_pylist() == list(range(80))
    assert run(*inputs, "--output", tmp_path / "ids", "--model_name", TINY, "--id_column", "n")[0] == 0
    by_id = read_folder(tmp_path / "ids")
    assert by_id.schema.field("n").type == pa.int64() and by_id["n"].to_pylist() == list(range(80))
    features, _ = expected_embeddings(TINY, sentences[:80], "pooler", False)
    assert np.abs(embeddings(by_id) - features).max() < 1e-5


def test_a_dataset_folder_read_by_datasets(tmp_path, sentences):
    """A name that is not a file goes to datasets.load_dataset (a hub dataset, or a local dataset folder)."""
    os.makedirs(tmp_path / "reviews")
    pd.DataFrame({"text": sentences[:40], "n": range(40)}).to_csv(tmp_path / "reviews" / "train.csv", index=False)
    assert run(tmp_path / "reviews", "--output", tmp_path / "out", "--model_name", TINY, "--id_column", "n")[0] == 0
    table = read_folder(tmp_path / "out")
    assert table["n"].to_pylist() == list(range(40))
    assert np.abs(embeddings(table) - expected_embeddings(TINY, sentences[:40], "pooler", False)[0]).max() < 1e-5
    inputs = read_manifest(tmp_path / "out")["inputs"]
    assert inputs[0]["name"] == str(tmp_path / "reviews") and len(inputs[0]["fingerprint"]) == 16


def test_resume_after_max_shards_gives_the_rows_of_an_uninterrupted_run(tmp_path, long_reviews, capsys):
    args = [long_reviews, "--model_name", TINY, "--rows_per_shard", 50, "--pooling", "cls"]
    assert run(*args, "--output", tmp_path / "whole")[0] == 0
    assert run(*args, "--output", tmp_path / "part", "--max_shards", 2)[0] == 0
    assert sorted(os.listdir(tmp_path / "part")) == ["_manifest.json", "part-00000.parquet", "part-00001.parquet"]
    manifest = read_manifest(tmp_path / "part")
    assert (manifest["shards_written"], manifest["rows_written"], manifest["complete"]) == (2, 100, False)
    assert "note: stopped early: run the same command again to finish" in capsys.readouterr().err
    kept = os.stat(tmp_path / "part" / "part-00000.parquet").st_mtime_ns
    assert run(*args, "--output", tmp_path / "part")[0] == 0
    assert "6 of 6 shards, 300 rows (4 shards written now, 2 kept from before)" in capsys.readouterr().err
    assert os.stat(tmp_path / "part" / "part-00000.parquet").st_mtime_ns == kept  # not recomputed
    assert read_folder(tmp_path / "part").equals(read_folder(tmp_path / "whole"))
    assert read_manifest(tmp_path / "part")["complete"]


def test_interrupted_run_leaves_complete_shards_and_resumes(tmp_path, long_reviews):
    """Ctrl-C (SIGINT) in the middle: exit 130, complete shards and the manifest only; a killed run's
    temporary file is removed by the next run, which finishes with exactly the rows of an uninterrupted run."""
    args = [long_reviews, "--model_name", TINY, "--rows_per_shard", 10, "--workers", 1]
    out = tmp_path / "out"
    process = interruptible([sys.executable, os.path.join(ROOT, "embed_corpus.py"), *map(str, args),
                             "--output", str(out)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    while not (out / "part-00002.parquet").exists() and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: the complete shards are in")
    left = sorted(os.listdir(out))
    assert "_manifest.json" in left and 3 <= len(left) - 1 < 30 and not [n for n in left if n.startswith(".")]
    for name in left[1:]:
        assert pq.read_metadata(out / name).num_rows == 10
    (out / ".part-00029.parquet.tmp").write_bytes(b"half a shard")  # as a killed run leaves it
    assert run(*args, "--output", out)[0] == 0
    assert not [n for n in os.listdir(out) if n.startswith(".")]
    assert run(*args, "--output", tmp_path / "whole")[0] == 0
    assert read_folder(out).equals(read_folder(tmp_path / "whole"))


@pytest.mark.parametrize("change, difference", [
    (["--pooling", "cls"], "pooling was 'pooler', now 'cls'"),
    (["--normalize"], "normalize was False, now True"),
    (["--max_length", 32], "max_length was 64, now 32"),
    (["--prompt", "Summary: "], "prompt was '', now 'Summary: '"),
    (["--truncate_dim", 16], "truncate_dim was None, now 16"),
    (["--precision", "ubinary"], "precision was 'float32', now 'ubinary'"),
    (["--rows_per_shard", 50], "rows_per_shard was 100, now 50"),
    (["--text_column", "other"], "text_column was 'text', now 'other'"),
    (["--model_name", os.path.join(GOLDEN_DIR, "tiny-gelu-new")], "model was"),
    (["extra"], "input {tmp}/more.csv was not among the inputs"),
    (["touched"], "input {tmp}/data.csv changed since (size or modification time)"),
])
def test_other_settings_are_refused(tmp_path, sentences, change, difference):
    data = tmp_path / "data.csv"
    pd.DataFrame({"text": sentences[:150], "other": sentences[150:]}).to_csv(data, index=False)
    args = [data, "--output", tmp_path / "out", "--model_name", TINY, "--rows_per_shard", 100]
    assert run(*args)[0] == 0
    before = {n: os.stat(tmp_path / "out" / n).st_mtime_ns for n in os.listdir(tmp_path / "out")}
    if change == ["extra"]:
        pd.DataFrame({"text": ["one more"]}).to_csv(tmp_path / "more.csv", index=False)
        change = [tmp_path / "more.csv"]
    elif change == ["touched"]:
        with open(data, "a", encoding="utf-8") as f:
            f.write("one more\n")
        change = []
    code, lines = run(*args, *change)
    assert code.startswith("error: ") and len(lines) == 1
    assert f"{tmp_path / 'out'} holds a run with other settings ({difference.format(tmp=tmp_path)}" in code
    assert "use another --output folder, or delete" in code
    assert {n: os.stat(tmp_path / "out" / n).st_mtime_ns for n in os.listdir(tmp_path / "out")} == before


@pytest.fixture(scope="module")
def prompted(tmp_path_factory):
    """sentence-transformers folders with prompts: "prompted" (default_prompt_name "query"; prompts query,
    passage), "instructed-mean" (include_prompt false: mean pooling leaves the prompt's tokens out)."""
    root = tmp_path_factory.mktemp("prompted")
    return {name: task_models.write_st_model(str(root / name), name) for name in ("prompted", "instructed-mean")}


@pytest.mark.parametrize("model, options, prompt, text", [
    ("prompted", ["--prompt_name", "passage"], {"prompt_name": "passage"}, "passage: "),
    ("prompted", ["--prompt", "Summary: "], {"prompt": "Summary: "}, "Summary: "),
    ("prompted", [], {}, "query: "),  # the folder's default_prompt_name
    ("prompted", ["--prompt", ""], {"prompt": ""}, ""),  # no prompt, not the default
    ("instructed-mean", ["--prompt_name", "query"], {"prompt_name": "query"},
     "Represent this review for finding similar ones: "),
])
def test_prompts_are_embeds_and_recorded(tmp_path, sentences, prompted, model, options, prompt, text):
    args = [tmp_path / "a.csv", "--output", tmp_path / "out", "--model_name", prompted[model], "--rows_per_shard", 8]
    pd.DataFrame({"text": sentences[:20]}).to_csv(tmp_path / "a.csv", index=False)
    assert run(*args, *options)[0] == 0
    table = read_folder(tmp_path / "out")
    features, n_tokens = expected_embeddings(prompted[model], sentences[:20], None, None, **prompt)
    assert np.abs(embeddings(table) - features).max() <= 1e-6
    assert table["n_tokens"].to_pylist() == n_tokens.tolist()  # the prompt's tokens included, as embed counts
    assert read_manifest(tmp_path / "out")["prompt"] == text
    unprompted, _ = expected_embeddings(prompted[model], sentences[:20], None, None, prompt="")
    assert (np.abs(features - unprompted).max() > 1e-3) == bool(text)


def test_a_model_with_dense_modules_gives_their_size(tmp_path, sentences):
    """The "projected" folder's Dense modules end at 16 features (its hidden size is 32)."""
    folder = task_models.write_st_model(str(tmp_path / "projected"), "projected")
    pd.DataFrame({"text": sentences[:10]}).to_csv(tmp_path / "a.csv", index=False)
    assert run(tmp_path / "a.csv", "--output", tmp_path / "out", "--model_name", folder)[0] == 0
    features, _ = expected_embeddings(folder, sentences[:10], None, None)
    assert features.shape == (10, 16) and np.abs(embeddings(read_folder(tmp_path / "out")) - features).max() <= 1e-6
    assert read_manifest(tmp_path / "out")["dimension"] == 16


def test_a_resumed_run_needs_the_same_prompt_text(tmp_path, sentences, prompted):
    pd.DataFrame({"text": sentences[:20]}).to_csv(tmp_path / "a.csv", index=False)
    out = tmp_path / "out"
    args = [tmp_path / "a.csv", "--output", out, "--model_name", prompted["prompted"], "--rows_per_shard", 8]
    assert run(*args, "--prompt_name", "passage", "--max_shards", 1)[0] == 0
    for options, now in ([], "query: "), (["--prompt", "Summary: "], "Summary: "):
        code, lines = run(*args, *options)
        assert code == (f"error: {out} holds a run with other settings (prompt was 'passage: ', now {now!r}): use "
                        f"another --output folder, or delete {out} to start over") and len(lines) == 1
    assert sorted(os.listdir(out)) == ["_manifest.json", "part-00000.parquet"]
    assert run(*args, "--prompt", "passage: ")[0] == 0  # the same text as the name's
    features, _ = expected_embeddings(prompted["prompted"], sentences[:20], None, None, prompt_name="passage")
    assert np.abs(embeddings(read_folder(out)) - features).max() <= 1e-6


def test_a_bad_prompt_name_is_one_line_and_writes_nothing(tmp_path, sentences, prompted, capsys):
    pd.DataFrame({"text": sentences[:10]}).to_csv(tmp_path / "a.csv", index=False)
    args = [tmp_path / "a.csv", "--output", tmp_path / "out", "--model_name", prompted["prompted"]]
    code, lines = run(*args, "--prompt_name", "document")
    assert code == "error: prompt_name 'document' is not one of the model's prompts ('query', 'passage', 'empty')"
    assert len(lines) == 1 and not (tmp_path / "out").exists()
    assert run(*args, "--prompt", "query: ", "--prompt_name", "query")[0] == 2  # argparse: one or the other
    assert capsys.readouterr().err.startswith("error: argument --prompt_name: not allowed with argument --prompt")
    assert not (tmp_path / "out").exists()


def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, sentences):
    good = tmp_path / "good.csv"
    pd.DataFrame({"text": sentences[:10]}).to_csv(good, index=False)
    pd.DataFrame({"review": sentences[:10]}).to_csv(tmp_path / "other.csv", index=False)
    pd.DataFrame({"text": ["", None, " "]}).to_csv(tmp_path / "blank.csv", index=False)
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "out"
    cases = [
        ([tmp_path / "missing.csv"], "dataset file not found: " + str(tmp_path / "missing.csv")),
        ([tmp_path / "nothing*.csv"], f"no file matches {tmp_path}/nothing*.csv"),
        ([tmp_path / "other.csv"], "has no column 'text' (it has review): choose with --text_column"),
        ([good, "--id_column", "id"], "has no column 'id' (it has text): choose with --text_column / --id_column"),
        ([tmp_path / "blank.csv"], "every one of the 3 rows has an empty 'text': nothing to embed"),
        ([good, good], f"{good} is given twice among the inputs"),
        ([good, "--model_name", tmp_path / "no-model"], "no-model"),
    ]
    for args, message in cases:
        code, lines = run(*args, "--output", out, *([] if "--model_name" in args else ["--model_name", TINY]))
        assert code.startswith("error: ") and message in code and len(lines) == 1, (args, code)
        assert not out.exists()
    code, _ = run(good, "--output", tmp_path / "file", "--model_name", TINY)
    assert code == f"error: --output {tmp_path / 'file'} is a file: give a folder (it is created if needed)"
    os.makedirs(out)
    held = os.open(out, os.O_RDONLY)  # a run in progress holds the folder's lock
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _ = run(good, "--output", out, "--model_name", TINY)
    finally:
        os.close(held)
    assert code == f"error: another run is writing into {out}: wait for it to finish"
    (out / "notes.txt").write_text("mine")
    code, _ = run(good, "--output", out, "--model_name", TINY)
    assert code == f"error: --output {out} is not empty and has no _manifest.json: choose a new or empty folder"
    assert os.listdir(out) == ["notes.txt"]


def test_without_ray_the_ray_engine_says_how_to_install_it(tmp_path, sentences, monkeypatch):
    pd.DataFrame({"text": sentences[:10]}).to_csv(tmp_path / "a.csv", index=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "corpus_ray", raising=False)
    code, _ = run(tmp_path / "a.csv", "--output", tmp_path / "out", "--model_name", TINY, "--engine", "ray")
    assert code == "error: --engine ray needs Ray: pip install -r requirements-ray.txt (ray[data]==2.60.0)"
    assert not (tmp_path / "out").exists()


def test_ray_engine_on_a_local_ray_equals_embed_and_resumes_a_local_run(tmp_path, sentences):
    """ray.init(num_cpus=2) with 2 workers must run (no deadlock over a third CPU); it finishes a folder the
    local engine started, skipping its shards, and gives the same file names, columns and types (and embeds
    with the prompt given)."""
    import ray
    pd.DataFrame({"text": sentences, "id": range(1000, 1300)}).to_csv(tmp_path / "a.csv", index=False)
    args = [tmp_path / "a.csv", "--model_name", TINY, "--id_column", "id", "--rows_per_shard", 64,
            "--pooling", "mean", "--normalize", "--prompt", "Summary: "]
    assert run(*args, "--output", tmp_path / "local")[0] == 0
    assert run(*args, "--output", tmp_path / "ray", "--max_shards", 2)[0] == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert run(*args, "--output", tmp_path / "ray", "--engine", "ray", "--workers", 2)[0] == 0
    finally:
        ray.shutdown()
    assert sorted(os.listdir(tmp_path / "ray")) == sorted(os.listdir(tmp_path / "local"))
    table, local = read_folder(tmp_path / "ray"), read_folder(tmp_path / "local")
    assert table.schema == local.schema and table["id"].equals(local["id"])
    assert table["id"].to_pylist() == list(range(1000, 1300))
    features, n_tokens = expected_embeddings(TINY, sentences, "mean", True, prompt="Summary: ")
    assert np.abs(embeddings(table) - features).max() < 1e-5
    assert table["n_tokens"].to_pylist() == n_tokens.tolist()
