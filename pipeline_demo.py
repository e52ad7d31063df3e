"""Run a task pipeline (pipelines.py) from the command line: texts in, one JSON result per line out.

    python pipeline_demo.py text-classification --model_name path/to/classifier --text "A gripping film."
    python pipeline_demo.py question-answering --model_name path/to/qa --question "Who?" --context "Ann did."
    python pipeline_demo.py feature-extraction --model_name sentence-transformers/all-MiniLM-L6-v2 --input texts.jsonl
    python pipeline_demo.py zero-shot-classification --model_name path/to/nli --text "Fix my phone!" \
        --candidate_labels "urgent, phone, tablet"
    python pipeline_demo.py rerank --model_name path/to/cross-encoder --query "Who directed it?" \
        --document "Fritz Lang directed it." --document "The music is loud." --top_k 1

Inputs come from flags (--text, repeated; --text_pair; --question with --context; --query with --document,
repeated) or from a JSON-lines file (--input, "-" for stdin): one input per line, either a JSON string (a
text) or an object with the fields of the flags: {"text": ..., "text_pair": ...} (text_pair optional),
{"question": ..., "context": ...} or {"query": ..., "documents": [...]}. Each result is printed as one line of
JSON, in input order: what the pipeline returns for that input (feature-extraction: embed's vector, with the
model's own pooling and normalization unless --pooling / --no-normalize say otherwise; rerank:
cross_encoder.rank's documents, best first).
"""
import argparse
import json
import sys

import cli
import pipelines
from cross_encoder import rank
from quantization import PRECISIONS
from utils import load_tokenizer_hparams_and_params
from zero_shot import zero_shot_classification

TASKS = ("text-classification", "token-classification", "question-answering", "fill-mask", "feature-extraction",
         "zero-shot-classification", "rerank")
# option -> the tasks it applies to
OPTIONS = {
    "text_pair": ("text-classification",),
    "top_k": ("text-classification", "question-answering", "fill-mask", "rerank"), "return_documents": ("rerank",),
    "function_to_apply": ("text-classification",),
    "aggregation_strategy": ("token-classification",), "stride": ("token-classification",),
    "is_split_into_words": ("token-classification",),
    "targets": ("fill-mask",),
    "doc_stride": ("question-answering",), "max_seq_len": ("question-answering",),
    "max_answer_len": ("question-answering",), "handle_impossible_answer": ("question-answering",),
    "align_to_words": ("question-answering",),
    "pooling": ("feature-extraction",), "normalize": ("feature-extraction",), "max_length": ("feature-extraction",),
    "prompt": ("feature-extraction",), "prompt_name": ("feature-extraction",),
    "truncate_dim": ("feature-extraction",), "precision": ("feature-extraction",),
    "candidate_labels": ("zero-shot-classification",), "hypothesis_template": ("zero-shot-classification",),
    "multi_label": ("zero-shot-classification",),
}


def top_k_value(value):
    """--top_k: an integer, or "all" (every label: text-classification's top_k=None)."""
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}: give an integer, or all") from None


def parse_args(argv):
    parser = cli.ArgumentParser(description=__doc__)
    parser.add_argument("task", choices=TASKS, help="the pipeline to run")
    parser.add_argument("--model_name", required=True, help="short name, hub id (owner/name) or local folder")
    parser.add_argument("--models_dir", default="models", help="download cache (default: %(default)s)")
    parser.add_argument("--input", metavar="FILE", help="JSON-lines file of inputs ('-': standard input)")
    parser.add_argument("--text", action="append", help="a text (repeat for several)")
    parser.add_argument("--text_pair", action="append", help="text-classification: a second text per --text")
    parser.add_argument("--question", action="append", help="question-answering: a question (repeat for several)")
    parser.add_argument("--context", action="append", help="question-answering: the context of each --question "
                                                           "(or one for all of them)")
    parser.add_argument("--query", help="rerank: the query the --document texts are ranked for")
    parser.add_argument("--document", action="append", help="rerank: a document (repeat for several)")
    parser.add_argument("--top_k", type=top_k_value, help="answers per input (text-classification: default 1, "
                                                          "'all' for every label; question-answering 1; fill-mask 5; "
                                                          "rerank: every document)")
    parser.add_argument("--return_documents", action="store_true", default=None,
                        help="rerank: each result has the document's text too")
    parser.add_argument("--function_to_apply", choices=("softmax", "sigmoid", "none"),
                        help="text-classification's scores (default: as transformers chooses for the model)")
    parser.add_argument("--aggregation_strategy", choices=pipelines.entities.STRATEGIES,
                        help="token-classification: how tokens become entities (default: none)")
    parser.add_argument("--stride", type=int, help="token-classification: read a text over the model's limit whole, "
                                                   "in windows sharing this many tokens (needs --aggregation_strategy)")
    parser.add_argument("--is_split_into_words", action="store_true", default=None,
                        help="token-classification: each input is a list of words (a JSON array per --input line; "
                             "--text split at spaces), start and end index into the words joined by spaces")
    parser.add_argument("--target", dest="targets", action="append",
                        help="fill-mask: predict only this word (repeat for several)")
    parser.add_argument("--doc_stride", type=int, help="question-answering: tokens shared by windows (default 128)")
    parser.add_argument("--max_seq_len", type=int, help="question-answering: tokens per window (default 384)")
    parser.add_argument("--max_answer_len", type=int, help="question-answering: tokens per answer (default 15)")
    parser.add_argument("--handle_impossible_answer", action="store_true", default=None,
                        help="question-answering: the empty answer may win")
    parser.add_argument("--align_to_words", action=argparse.BooleanOptionalAction,
                        help="question-answering: widen answers to whole words (default: yes)")
    parser.add_argument("--pooling", choices=pipelines.POOLINGS,
                        help="feature-extraction: pooling (default: the model's own)")
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction,
                        help="feature-extraction: unit-length vectors (default: the model's own)")
    parser.add_argument("--max_length", type=int, help="feature-extraction: tokens per text (default: the model's)")
    parser.add_argument("--prompt", help="feature-extraction: a text put before every text, e.g. 'query: ' "
                                         "(default: the model's default prompt, if it has one)")
    parser.add_argument("--prompt_name", help="feature-extraction: one of the model's prompts, by name")
    parser.add_argument("--truncate_dim", type=int, help="feature-extraction: keep each vector's first values "
                                                         "(Matryoshka models)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="feature-extraction: the vectors quantized (default: float32)")
    parser.add_argument("--candidate_labels", metavar="LABELS",
                        help="zero-shot-classification: the labels, comma-separated, e.g. 'urgent, phone, tablet'")
    parser.add_argument("--hypothesis_template", help="zero-shot-classification: the hypothesis each label goes "
                                                      "into (default: 'This example is {}.')")
    parser.add_argument("--multi_label", action="store_true", default=None,
                        help="zero-shot-classification: score each label on its own (they need not sum to 1)")
    parser.add_argument("--batch_size", type=int, default=32, help="inputs per forward pass (default: %(default)s)")
    args = parser.parse_args(argv)
    for option, tasks in OPTIONS.items():
        if getattr(args, option) is not None and args.task not in tasks:
            parser.error(f"--{option} applies to {' and '.join(tasks)}, not to {args.task}")
    flags = [f"--{name}" for name in ("text", "question", "context", "query", "document") if getattr(args, name)]
    if args.input and flags:
        parser.error(f"give the inputs with --input or with {', '.join(flags)}, not both")
    if args.task == "question-answering" and args.text:
        parser.error("question-answering takes --question and --context, not --text")
    if args.task != "question-answering" and (args.question or args.context):
        parser.error(f"--question and --context are for question-answering; {args.task} takes "
                     + ("--query and --document" if args.task == "rerank" else "--text"))
    if args.task == "rerank" and args.text:
        parser.error("rerank takes --query and --document, not --text")
    if args.task == "rerank" and not args.input and (args.query is None or not args.document):
        parser.error("rerank needs --query and at least one --document (or --input FILE)")
    if args.task != "rerank" and (args.query is not None or args.document):
        parser.error(f"--query and --document are for rerank, not {args.task}")
    if not args.input and not (args.text or args.question or args.task == "rerank"):
        parser.error("no input: give --text (--question and --context for question-answering) or --input FILE")
    if args.task == "zero-shot-classification" and args.candidate_labels is None:
        parser.error("zero-shot-classification needs --candidate_labels, e.g. --candidate_labels 'urgent, phone'")
    return args


def read_inputs(args):
    """The inputs as {"text", "text_pair"}, {"question", "context"} or {"query", "documents"} dicts; exits with one
    line if malformed."""
    if not args.input:
        if args.task == "rerank":
            return [{"query": args.query, "documents": args.document}]
        if args.task == "question-answering":
            contexts = args.context or []
            if len(contexts) == 1:
                contexts = contexts * len(args.question)
            if len(contexts) != len(args.question):
                sys.exit(f"error: {len(args.question)} --question but {len(args.context or [])} --context: give one "
                         "context per question, or one for all of them")
            return [{"question": q, "context": c} for q, c in zip(args.question, contexts)]
        pairs = args.text_pair or [None] * len(args.text)
        if len(pairs) != len(args.text):
            sys.exit(f"error: {len(args.text)} --text but {len(pairs)} --text_pair: give one pair per text")
        return [{"text": text.split() if args.is_split_into_words else text, "text_pair": pair}
                for text, pair in zip(args.text, pairs)]
    fields = {"question-answering": ("question", "context"), "rerank": ("query", "documents")}.get(args.task, ("text",))
    allowed = fields + (("text_pair",) if args.task == "text-classification" else ())
    try:
        with (sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")) as f:
            lines = f.read().splitlines()
    except OSError as err:
        sys.exit(f"error: cannot read --input {args.input}: {err.strerror}")
    inputs = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as err:
            sys.exit(f"error: {args.input} line {n} is not JSON ({err})")
        item = {"text": item} if isinstance(item, (str, list)) and fields == ("text",) else item
        if not (isinstance(item, dict) and set(fields) <= set(item) <= set(allowed)
                and all(is_words(value) if args.is_split_into_words or key == "documents" else isinstance(value, str)
                        for key, value in item.items())):
            sys.exit(f"error: {args.input} line {n}: expected "
                     + ("a JSON array of words" if args.is_split_into_words else describe(fields, allowed)))
        inputs.append(item)
    if not inputs:
        sys.exit(f"error: {args.input} holds no input")
    return inputs


def is_words(value):
    return isinstance(value, list) and all(isinstance(word, str) for word in value)


def describe(fields, allowed):
    keys = ", ".join(f'"{k}": ' + ("[...]" if k == "documents" else "...") for k in fields)
    extra = [k for k in allowed if k not in fields]
    return ("a JSON string or " if fields == ("text",) else "") + "an object {" + keys + "}" + (
        f" (optionally with {', '.join(repr(k) for k in extra)})" if extra else "")


def run(args, inputs, tokenizer, params, hparams):
    """The pipeline's result for each input."""
    model = (tokenizer, params, hparams)
    options = {k: getattr(args, k) for k, tasks in OPTIONS.items()
               if args.task in tasks and getattr(args, k) is not None and k != "text_pair"}
    if options.get("top_k") == "all":
        options["top_k"] = None
    progress, batch_size = sys.stderr.isatty(), args.batch_size
    if args.task == "question-answering":
        return pipelines.question_answering([i["question"] for i in inputs], [i["context"] for i in inputs], *model,
                                            batch_size=batch_size, progress=progress, **options)
    if args.task == "rerank":
        return [rank(i["query"], i["documents"], *model, batch_size=batch_size, progress=progress, **options)
                for i in inputs]
    texts = [i["text"] for i in inputs]
    if args.task == "feature-extraction":
        return pipelines.embed(texts, *model, batch_size=batch_size, progress=progress, **options).tolist()
    if args.task == "zero-shot-classification":
        return zero_shot_classification(texts, options.pop("candidate_labels"), *model, batch_size=batch_size,
                                        progress=progress, **options)
    if args.task == "text-classification":
        pairs = [i.get("text_pair") for i in inputs]  # an input without one: "", no second text
        options["text_pairs"] = [p or "" for p in pairs] if any(p is not None for p in pairs) else None
    run_task = {"text-classification": pipelines.text_classification, "fill-mask": pipelines.fill_mask,
                "token-classification": pipelines.token_classification}[args.task]
    return run_task(texts, *model, batch_size=batch_size, progress=progress, **options)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    inputs = read_inputs(args)
    try:
        tokenizer, hparams, params = load_tokenizer_hparams_and_params(args.model_name, args.models_dir)
        results = run(args, inputs, tokenizer, params, hparams)
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    for result in results:
        print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
