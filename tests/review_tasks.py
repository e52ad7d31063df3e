"""Tasks made from the real reviews for the fine-tuning tests, benchmarks and README runs, where no real NER,
pair or question-answering dataset is at hand: sentences tagged by a rule (as a CoNLL file), each IMDB review
cut into its first sentence and the rest (as a CSV of pairs), and questions whose answers a rule finds in the
IMDB reviews (as a SQuAD-style JSON Lines file)."""
import csv
import json
import re

# question-answering: (question, pattern); a review asks the question when the pattern matches once in it, and
# the match (its group 1, if any) is the answer
QUESTIONS = [("What score out of 10 does the reviewer give?", r"\b\d{1,2}(?:\.\d)?(?: ?/ ?| out of )10\b"),
             ("Which year does the review mention?", r"\b(?:19[1-9]\d|20[012]\d)\b"),
             ("Who directed the film?", r"\bdirected by ([A-Z][a-z]+(?: [A-Z][a-z]+)+)")]


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


def first_sentences(source):
    """(first_sentence, rest) pairs cut from the reviews of source (a CSV with a text column, e.g.
    imdb_sample.csv; <br /> markup read as spaces), for reviews whose first sentence has 20 characters or more and
    100 more after it."""
    pairs = []
    for text in plain_reviews(source):
        cut = re.search(r"(?<=[.!?])\s+", text)
        if cut and cut.start() >= 20 and len(text) - cut.end() >= 100:
            pairs.append((text[:cut.start()], text[cut.end():]))
    return pairs


def first_sentence_pairs(source, path):
    """path: a CSV of first_sentences(source), columns first_sentence and rest. Returns the number of pairs."""
    pairs = first_sentences(source)
    write_csv(path, ["first_sentence", "rest"], pairs)
    return len(pairs)


def matched_pairs(source, path):
    """path: a CSV of sentence-pair classification rows made from first_sentences(source): every other review's
    first sentence with its own rest (label "same"), the others with the next review's rest ("other"). Returns
    the number of rows."""
    pairs = first_sentences(source)
    rows = [(first, pairs[(i + i % 2) % len(pairs)][1], ("same", "other")[i % 2]) for i, (first, _) in enumerate(pairs)]
    write_csv(path, ["first_sentence", "rest", "label"], rows)
    return len(rows)


def write_csv(path, header, rows):
    """path: a CSV of the header and rows. Returns path."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def plain_reviews(source):
    """The texts of source (a CSV with a text column), <br /> markup read as a space, runs of spaces as one."""
    with open(source, encoding="utf-8", newline="") as f:
        return [re.sub(r"\s+", " ", re.sub(r"<br\s*/?>", " ", row["text"])).strip() for row in csv.DictReader(f)]


def review_questions(source, path):
    """path: a JSON Lines file of SQuAD-style rows {"id", "question", "context", "answers": {"text": [...],
    "answer_start": [...]}}: each review of source (e.g. imdb_sample.csv, markup read as spaces) asks each of
    QUESTIONS whose pattern it matches once. Returns the number of rows."""
    rows = []
    for i, context in enumerate(plain_reviews(source)):
        for k, (question, pattern) in enumerate(QUESTIONS):
            found = list(re.finditer(pattern, context))
            if len(found) == 1:
                group = 1 if found[0].re.groups else 0
                rows.append({"id": f"{i}-{k}", "question": question, "context": context,
                             "answers": {"text": [found[0].group(group)], "answer_start": [found[0].start(group)]}})
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return len(rows)
