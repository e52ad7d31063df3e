"""Tasks made from the real reviews for the fine-tuning tests, benchmarks and README runs, where no real NER
or pair dataset is at hand: sentences tagged by a rule (as a CoNLL file), and each IMDB review cut into its
first sentence and the rest (as a CSV of pairs)."""
import csv
import re


def tagged(words):
    """A rule a model can learn: a determiner and the word after it are a DET entity (B-DET, I-DET),
    punctuation a PUNCT one (B-PUNCT), other words O."""
    tags = []
    for i, word in enumerate(words):
        if not word[0].isalnum():
            tags.append("B-PUNCT")
        elif word in ("the", "a", "an"):
            tags.append("B-DET")
        else:
            tags.append("I-DET" if i and tags[-1] == "B-DET" else "O")
    return tags


def write_tagged_conll(source, path, n):
    """path: a CoNLL file of the first n sentences of source (a CSV with a text column, e.g.
    rt_polarity_sample.csv) split on spaces and tagged, with a -DOCSTART- line and filler POS and chunk fields
    as CoNLL-2003 has them."""
    with open(source, encoding="utf-8", newline="") as f:
        sentences = [row["text"].split() for row in csv.DictReader(f)][:n]
    lines = ["-DOCSTART- -X- -X- O", ""]
    for words in sentences:
        lines += [f"{word} NN I-NP {tag}" for word, tag in zip(words, tagged(words))] + [""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def first_sentence_pairs(source, path):
    """path: a CSV of (first_sentence, rest) pairs cut from the reviews of source (a CSV with a text column,
    e.g. imdb_sample.csv; <br /> markup read as spaces), for reviews whose first sentence has 20 characters or
    more and 100 more after it. Returns the number of pairs."""
    with open(source, encoding="utf-8", newline="") as f:
        texts = [re.sub(r"\s+", " ", re.sub(r"<br\s*/?>", " ", row["text"])).strip() for row in csv.DictReader(f)]
    pairs = []
    for text in texts:
        cut = re.search(r"(?<=[.!?])\s+", text)
        if cut and cut.start() >= 20 and len(text) - cut.end() >= 100:
            pairs.append((text[:cut.start()], text[cut.end():]))
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["first_sentence", "rest"])
        writer.writerows(pairs)
    return len(pairs)
