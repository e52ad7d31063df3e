"""The real movie reviews the tests and benchmarks read: ../shared/data/<name> beside the checkout (as on this
project's machines and CI), else the same kind of sample built once from the public dataset on the Hugging Face
hub through `datasets`, and cached; with neither, a FileNotFoundError that says both ways.

    path = review_data.sample_path("rt_polarity_sample.csv")   # a CSV: text,label; 1,000 rows of each label

A built sample is drawn as ../shared/data/README.md describes: the train split, texts stripped, empty and
repeated texts left out, 1,000 of each label (0 = negative first, then 1 = positive) chosen with
random.Random(0).sample, then shuffled with the same generator. It is written to
<datasets cache>/numpy-bert-samples/ (HF_DATASETS_CACHE, default ~/.cache/huggingface/datasets).
"""
import contextlib
import csv
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
SOURCES = {"rt_polarity_sample.csv": "cornell-movie-review-data/rotten_tomatoes",  # 2,000 review sentences
           "imdb_sample.csv": "stanfordnlp/imdb"}  # 2,000 whole reviews, with their <br /> markup
PER_LABEL = 1000


def sample_path(name, shared=SHARED_DATA, source=None):
    """Path of the CSV `name` (a key of SOURCES): in `shared`, else built from `source` (default: its hub
    dataset; a local folder of data files works too) into the datasets cache, once."""
    path = os.path.join(shared, name)
    if os.path.isfile(path):
        return path
    source = source or SOURCES[name]
    cached = os.path.join(cache_dir(), name)
    if not os.path.isfile(cached):
        try:
            rows = draw_sample(*read_source(source))
        except (OSError, ValueError) as e:  # datasets' ConnectionError and DatasetNotFoundError are OSErrors
            raise FileNotFoundError(
                f"no {name}: it is not in {shared} (where this project's machines keep it), and building it from "
                f"the dataset {source} failed ({first_line(e)}). Put the file there, or run once with access to "
                "the Hugging Face hub (HF_DATASETS_OFFLINE unset) to build and cache it") from None
        write_csv(cached, rows)
    return cached


def cache_dir():
    import datasets.config  # here, so that finding the shared files needs no datasets
    return os.path.join(datasets.config.HF_DATASETS_CACHE, "numpy-bert-samples")


def read_source(source):
    """(texts, labels) of the dataset's train split. A hub dataset is looked up only if the hub answers at all,
    which fails in seconds where datasets would retry for half a minute."""
    import datasets
    if not os.path.isdir(source) and not datasets.config.HF_HUB_OFFLINE:
        import requests
        try:
            requests.head(datasets.config.HF_ENDPOINT, timeout=10)
        except requests.RequestException as e:
            raise ConnectionError(f"{datasets.config.HF_ENDPOINT} does not answer: {type(e).__name__}") from None
    datasets.disable_progress_bars()
    train = datasets.load_dataset(source, split="train")
    return train["text"], train["label"]


def draw_sample(texts, labels, per_label=PER_LABEL):
    """[(text, label), ...]: per_label distinct non-empty texts of each label, negative (0) drawn first, shuffled."""
    rng, by_label, seen = random.Random(0), {0: [], 1: []}, set()
    for text, label in zip(texts, labels):
        text = (text or "").strip()
        if text and text not in seen and label in by_label:
            seen.add(text)
            by_label[label].append(text)
    short = {label: len(found) for label, found in by_label.items() if len(found) < per_label}
    if short:
        raise ValueError(f"too few distinct texts: {short} (label: count), need {per_label} of each")
    rows = [(text, label) for label in (0, 1) for text in rng.sample(by_label[label], per_label)]
    rng.shuffle(rows)
    return rows


def write_csv(path, rows):
    """text,label rows, written to a temporary name and renamed when complete."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part = f"{path}.{os.getpid()}.part"
    try:
        with open(part, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
        os.replace(part, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(part)


def first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
