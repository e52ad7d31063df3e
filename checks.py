"""The checks of what callers pass the pipelines (pipelines.py, runner.py): a TypeError or ValueError that names
the argument and says what to pass instead."""
import numpy as np


def check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_doc_stride(value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"doc_stride must be an integer >= 0, got {value!r}")


def check_texts(texts, name="texts"):
    """texts as a list of str, or a TypeError / ValueError (empty list) naming `name`."""
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a list of str (wrap a single text in a list), got {type(texts).__name__}")
    if not texts:
        raise ValueError(f"{name} is an empty list: give at least one text")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(text).__name__}")
    return list(texts)


def check_word_lists(texts):
    """texts as a list of lists (of words, checked by the caller), or a TypeError / ValueError (empty list)."""
    if not isinstance(texts, (list, tuple)) or not all(isinstance(words, (list, tuple)) for words in texts):
        raise TypeError('with is_split_into_words, texts must be a list of word lists, e.g. [["Ann", "met", "Bob"]]')
    if not texts:
        raise ValueError("texts is an empty list: give at least one list of words")
    return list(texts)


def check_top_k(top_k, none_means=None):
    if top_k is None and none_means:
        return
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1{f' or None ({none_means})' if none_means else ''}, "
                         f"got {top_k!r}")
