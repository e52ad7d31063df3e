"""Fine-tune a whole BERT model for extractive question answering (as on SQuAD), in NumPy: the encoder and a new
start/end head (BertForQuestionAnswering) are trained with AdamW (linear warmup and decay, gradient clipping at
1.0, dropout as the config says) on the features transformers' run_qa.py trains on: each context cut into
windows of max_length tokens that overlap by doc_stride tokens, each window labelled with the answer's first
and last tokens, or with [CLS] when it does not hold the whole answer. After each epoch the test questions are
answered by numpy-bert's question_answering pipeline and scored with SQuAD's exact match and F1 (percentages).

    python finetune_qa_demo.py dataset_name questions.jsonl N 2000 model_name bert-base-uncased
    python finetune_qa_demo.py --dataset_name rajpurkar/squad --epochs 2 --save_dir my-qa

Both forms work: bare `key value` pairs and `--key value` flags. The data: a hub dataset or .json/.jsonl/.parquet
file with a question column, a context column and an answers column in SQuAD's format ({"text": [...],
"answer_start": [...]}; empty lists for a question the context does not answer, as in SQuAD v2, and then the
pipeline may answer "" too). The first answer is trained on; every answer counts when scoring. The questions are
shuffled with the seed, N of them kept and split into training and test questions; a question whose answer is
not what its context holds at answer_start is left out, with a note. --save_dir writes a folder that
transformers' BertForQuestionAnswering, numpy-bert's question_answering pipeline and pipeline_demo.py load; an
interrupted run (Ctrl-C) leaves no folder behind.
"""
import sys

import datasets
import numpy as np
import pyarrow as pa
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import cli
from demo_data import add_data_arguments, bare_pairs_to_flags, check_data_arguments, load_rows
from demo_training import add_training_arguments, check_training_arguments, load_model, run, save, train_and_evaluate
from pipelines import question_answering
from runner import token_limit
from squad import train_features
from squad_metrics import squad_scores
from training import init_question_answering

COLUMNS = (("question_column", "question", "questions"), ("context_column", "context", "contexts"),
           ("answers_column", "answers", 'answers, {"text": [...], "answer_start": [...]} per question'))


def parse_args(argv):
    parser = cli.ArgumentParser(description=__doc__)
    add_data_arguments(parser, "rajpurkar/squad", "a .json/.jsonl/.parquet file", COLUMNS, "bert-base-uncased",
                       "questions")
    add_training_arguments(parser)
    parser.set_defaults(max_length=384, epochs=2)
    parser.add_argument("--doc_stride", type=int, default=128,
                        help="tokens shared by consecutive windows of a long context (default: %(default)s)")
    parser.add_argument("--max_answer_len", type=int, default=30,
                        help="tokens of a predicted answer at most, when testing (default: %(default)s)")
    args = parser.parse_args(bare_pairs_to_flags(argv, parser))
    check_data_arguments(args, ["question_column", "context_column"], min_rows=2)  # a training and a test question
    check_training_arguments(args)
    if args.doc_stride < 0 or args.max_answer_len < 1:
        sys.exit(f"error: doc_stride must be 0 or more and max_answer_len at least 1, got {args.doc_stride} and "
                 f"{args.max_answer_len}")
    return args


def read_questions(args):
    """(questions, contexts, answers) of the kept rows; exits with one line on a data mistake."""
    datasets.disable_progress_bars()
    columns = {f"--{option}": getattr(args, option) for option, _, _ in COLUMNS}
    dataset = load_rows(args, columns, text_options=("--question_column", "--context_column"))
    kind = dataset.features.arrow_schema.field(args.answers_column).type
    if not (pa.types.is_struct(kind) and {"text", "answer_start"} <= {field.name for field in kind}):
        sys.exit(f"error: the column {args.answers_column!r} must hold SQuAD's answers, {{\"text\": [...], "
                 f"\"answer_start\": [...]}} per question, but it holds {kind} values: choose it with --answers_column")
    return dataset[args.question_column], dataset[args.context_column], dataset[args.answers_column]


def load_data(args, tokenizer, max_length):
    """The questions, contexts and answers kept, each one's training features (squad.train_features) and the
    train and test question indices; a question whose answers do not fit its context is left out, with a note."""
    questions, contexts, answers = read_questions(args)
    kept, features, problems = [], [], []
    for i in tqdm(range(len(questions)), desc="features", unit="question", leave=False, delay=2):
        try:
            features.append(train_features(tokenizer, questions[i], contexts[i], answers[i], max_length,
                                           args.doc_stride))
            kept.append(i)
        except ValueError as err:
            if "doc_stride" in str(err) or "max_seq_len" in str(err):  # the options' mistake, not the data's
                sys.exit(f"error: {str(err).replace('max_seq_len', 'max_length')}")
            problems.append(f"question {i}: {err}")
    if problems:
        print(f"note: left out {len(problems)} of {len(questions)} questions, e.g. {problems[0]}", file=sys.stderr)
    if len(kept) < 2:
        sys.exit(f"error: {len(kept)} usable question(s) in {args.dataset_name}: need at least two")
    train, test = train_test_split(np.arange(len(kept)), test_size=args.test_ratio, random_state=args.seed)
    rows = ([questions[i] for i in kept], [contexts[i] for i in kept], [answers[i] for i in kept])
    return rows, features, train, test


def training_rows(features, train):
    """The training questions' windows as train_epoch takes them: (question tokens, window tokens) pairs and
    their answers' (start, end) positions [N, 2]."""
    windows = [window for i in train for window in features[i]]
    pairs = [(question_tokens, window_tokens) for question_tokens, window_tokens, _, _ in windows]
    return pairs, np.array([(start, end) for _, _, start, end in windows], dtype=np.int64).reshape(-1, 2)


def test_scores(params, hparams, tokenizer, rows, test, args, max_length, unanswerable):
    """SQuAD's exact match and F1 (squad_scores) of the question_answering pipeline's best answer to each test
    question; unanswerable: the pipeline may answer "" (handle_impossible_answer)."""
    questions, contexts, answers = rows
    found = question_answering([questions[i] for i in test], [contexts[i] for i in test], tokenizer, params, hparams,
                               doc_stride=args.doc_stride, max_seq_len=max_length, max_answer_len=args.max_answer_len,
                               handle_impossible_answer=unanswerable, batch_size=args.batch_size)
    return squad_scores([best[0]["answer"] for best in found], [answers[i]["text"] for i in test])


def fine_tune(args, progress=True):
    """Train, print each epoch's test F1 and the final exact match, save; returns each epoch's training seconds
    and test F1 (SQuAD's, in percent)."""
    tokenizer, hparams, _, params = load_model(
        args, lambda params, hparams: init_question_answering(params, hparams, seed=args.seed))
    max_length = token_limit(hparams, args.max_length)
    rows, features, train, test = load_data(args, tokenizer, max_length)
    pairs, positions = training_rows(features, train)
    unanswerable = any(not rows[2][i]["text"] for i in train)  # SQuAD v2: the pipeline may answer "" too
    print(f"{len(train)} training questions ({len(pairs)} windows, {int((positions[:, 0] == 0).sum())} without "
          f"the answer), {len(test)} test questions", flush=True)
    last = {}

    def evaluate(params):
        last["scores"] = test_scores(params, hparams, tokenizer, rows, test, args, max_length, unanswerable)
        return "test F1", last["scores"]["f1"]

    seconds, f1 = train_and_evaluate(args, (tokenizer, params, hparams), (pairs, positions),
                                     [len(q) + len(w) + 3 for q, w in pairs], np.arange(len(pairs)), evaluate,
                                     progress=progress)
    print(f"test exact match {last['scores']['exact_match']:.2f}, F1 {last['scores']['f1']:.2f}")
    save(args, (tokenizer, params, hparams))
    return {"epoch_seconds": seconds, "test_f1": f1, "test_exact_match": last["scores"]["exact_match"]}


def main(argv=None):
    run(fine_tune, parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
