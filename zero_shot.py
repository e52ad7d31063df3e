"""Zero-shot classification, as transformers' zero-shot-classification pipeline: an NLI model (a
BertForSequenceClassification trained on MNLI-style premise / hypothesis pairs) scores labels chosen at the
call, each turned into a hypothesis ("This example is {}.") that the text may entail.

    zero_shot_classification(["Fix my phone today!"], ["urgent", "phone", "tablet"], tokenizer, params, hparams)
    # [{"sequence": ..., "labels": [best first], "scores": [...]}]
"""
import numpy as np

from bert import classifier_head, softmax
from checks import check_texts
from pipelines import task_labels
from runner import run_model, token_limit


def zero_shot_classification(texts, candidate_labels, tokenizer, params, hparams,
                             hypothesis_template="This example is {}.", multi_label=False, batch_size=32,
                             progress=False):
    """One {"sequence", "labels", "scores"} per text, labels best first, as transformers' pipeline.

    Each (text, hypothesis_template.format(label)) pair runs through the model; with one label, or multi_label,
    a label's score is the softmax of its (contradiction, entailment) logits, so labels are independent; else
    the entailment logits of all labels are one softmax, and the scores sum to 1. The entailment label is the
    first of config.json's id2label names that starts with "entail"; contradiction is label 0 (the last one when
    entailment is 0). candidate_labels: a list, or one string of comma-separated labels. A text too long for
    the model is cut, never the hypothesis."""
    texts = check_texts(texts)
    labels = [label.strip() for label in candidate_labels.split(",") if label.strip()] if isinstance(
        candidate_labels, str) else check_texts(candidate_labels, "candidate_labels")
    if not labels:
        raise ValueError("candidate_labels has no label: give at least one")
    try:
        unchanged = hypothesis_template.format(labels[0]) == hypothesis_template
    except (AttributeError, LookupError, ValueError):  # not a str, or fields other than one {}
        unchanged = True
    if unchanged:
        raise ValueError(f"hypothesis_template {hypothesis_template!r} has no {{}} where the label should go, "
                         "e.g. 'This example is {}.'")
    entailment = next((i for i, name in enumerate(task_labels(params, hparams, "text"))
                       if name.lower().startswith("entail")), None)
    if entailment is None:
        raise ValueError("no label of this model starts with 'entail' (config.json's id2label): zero-shot "
                         "classification needs an NLI model")
    limit = token_limit(hparams)
    hypotheses = [tokenizer.tokenize(hypothesis_template.format(label)) for label in labels]
    if max(map(len, hypotheses)) + 3 > limit:
        raise ValueError(f"a hypothesis has more than the model's {limit - 3} tokens: use shorter labels or "
                         "hypothesis_template")
    premises = [tokenizer.tokenize(text) for text in texts]
    logits = run_model(tokenizer, params, hparams, lambda seq, pooled, batch: classifier_head(pooled, params),
                       [premise[:limit - 3 - len(hypothesis)] for premise in premises for hypothesis in hypotheses],
                       hypotheses * len(texts), limit, batch_size, progress, desc="zero-shot-classification",
                       cls_only=True)
    logits = np.array(logits, dtype=np.float32).reshape(len(texts), len(labels), -1)
    if multi_label or len(labels) == 1:
        scores = softmax(logits[..., [-1 if entailment == 0 else 0, entailment]])[..., 1]
    else:
        scores = softmax(logits[..., entailment])
    return [{"sequence": text, "labels": [labels[i] for i in order], "scores": [float(row[i]) for i in order]}
            for text, row, order in ((text, row, np.argsort(row)[::-1]) for text, row in zip(texts, scores))]
