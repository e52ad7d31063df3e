"""review_data.sample_path: ../shared/data when it is there, else a sample built from the public dataset (here a
local stand-in: the hub is unreachable) and cached, else one error that says both ways."""
import csv
import os

import datasets.config
import pytest

import review_data
from test_network_errors import closed_port


@pytest.fixture
def no_shared(tmp_path, monkeypatch):
    """An empty ../shared/data and an empty datasets cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    (tmp_path / "shared").mkdir()
    return str(tmp_path / "shared")


def stand_in(folder, n_negative=1100, n_positive=1300):
    """A dataset folder as the hub serves it (train.csv; text, label), with blanks, repeats and padding to drop."""
    folder.mkdir()
    with open(folder / "train.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([(f" review {i} of label {label}\n", label) for label, n in ((0, n_negative), (1, n_positive))
                          for i in range(n)])
        writer.writerows([("review 7 of label 1", 1), ("   ", 0), ("", 1)])
    return str(folder)


def read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_the_shared_file_comes_first(tmp_path, no_shared):
    (tmp_path / "shared" / "imdb_sample.csv").write_text("text,label\n")
    assert review_data.sample_path("imdb_sample.csv", shared=no_shared) == os.path.join(no_shared, "imdb_sample.csv")


def test_a_sample_is_built_from_the_dataset_once(tmp_path, no_shared):
    source = stand_in(tmp_path / "rotten_tomatoes")
    path = review_data.sample_path("rt_polarity_sample.csv", shared=no_shared, source=source)
    assert path == str(tmp_path / "datasets-cache" / "numpy-bert-samples" / "rt_polarity_sample.csv")
    header, *rows = read(path)
    assert header == ["text", "label"] and len(rows) == 2000 and len({text for text, _ in rows}) == 2000
    assert sorted(label for _, label in rows).count("0") == 1000
    assert all(text == text.strip() and text.startswith("review ") and text.endswith(f"label {label}")
               for text, label in rows)
    assert [label for _, label in rows[:20]] != sorted(label for _, label in rows[:20])  # shuffled
    os.rename(source, source + "-gone")  # a second call reads the cached file, not the dataset
    assert review_data.sample_path("rt_polarity_sample.csv", shared=no_shared, source=source) == path
    assert os.listdir(os.path.dirname(path)) == ["rt_polarity_sample.csv"]  # nothing half-written


def test_the_sample_is_the_same_on_every_machine():
    texts = [f"text {i}" for i in range(3000)]
    labels = [i % 2 for i in range(3000)]
    sample = review_data.draw_sample(texts, labels)
    assert sample == review_data.draw_sample(texts, labels)
    assert sample[:3] == [("text 2293", 1), ("text 203", 1), ("text 800", 0)]  # random.Random(0), as documented


def test_too_few_texts_of_a_label(tmp_path, no_shared):
    source = stand_in(tmp_path / "small", n_positive=999)
    with pytest.raises(FileNotFoundError, match=r"from the dataset .*small failed \(too few distinct texts: "
                                                r"\{1: 999\} \(label: count\), need 1000 of each\)"):
        review_data.sample_path("rt_polarity_sample.csv", shared=no_shared, source=source)


def test_neither_the_shared_file_nor_the_hub_is_one_error_saying_both_ways(no_shared, monkeypatch):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", endpoint)
    with pytest.raises(FileNotFoundError) as info:
        review_data.sample_path("imdb_sample.csv", shared=no_shared)
    assert str(info.value) == (
        f"no imdb_sample.csv: it is not in {no_shared} (where this project's machines keep it), and building it "
        f"from the dataset stanfordnlp/imdb failed ({endpoint} does not answer: ConnectionError). Put the file "
        "there, or run once with access to the Hugging Face hub (HF_DATASETS_OFFLINE unset) to build and cache it")
