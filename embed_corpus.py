"""Embed a corpus into a folder of Parquet shards: streamed, on every core or a Ray cluster, resumable.

    python embed_corpus.py reviews/*.csv --output vectors --model_name sentence-transformers/all-MiniLM-L6-v2 \\
        --pooling mean --normalize
    python embed_corpus.py corpus.parquet --output vectors --model_name M --engine ray --address auto
    python embed_corpus.py corpus.parquet --output bits --model_name M --truncate_dim 256 --precision ubinary

INPUT: .csv, .tsv, .jsonl (or JSON-lines .json) and .parquet files or globs, or a hub dataset (its train split).
The output folder gets part-00000.parquet, ... (shard k = rows [k R, (k+1) R) of the inputs taken in the
order given, R = --rows_per_shard), each with the id column (or `row`, the row number), `n_tokens` and
`embedding` (fixed-size list of float32; of int8 / uint8 with --precision), and _manifest.json.
pandas.read_parquet(DIR) reads it as one table. Run the same command again after a crash or Ctrl-C: complete
shards are kept, the rest is computed. Rows with an empty text are left out and counted.
"""
import argparse
import dataclasses
import os
import sys

from tqdm import tqdm

import cli
import corpus
import shards
from pipelines import POOLINGS, check_pooling, embedding_dimension
from quantization import PRECISIONS
from utils import __version__, load_tokenizer_hparams_and_params


CALIBRATION_ROWS = 1000  # int8 / uint8: the texts whose embeddings set each dimension's range, by default


def parse_args(argv):
    parser = cli.ArgumentParser(description=__doc__)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="data files, globs or a hub dataset name")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the shards (created if needed)")
    parser.add_argument("--model_name", required=True, help="short name, hub id (owner/name) or local folder")
    parser.add_argument("--models_dir", default="models", help="download cache (default: %(default)s)")
    parser.add_argument("--text_column", default="text", help="column with the texts (default: %(default)s)")
    parser.add_argument("--id_column", help="column to keep beside each embedding (default: the row number)")
    parser.add_argument("--pooling", choices=POOLINGS, help="sentence vector (default: the model's own, as embed: "
                                                            "a sentence-transformers folder's, else pooler)")
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction,
                        help="scale each embedding to length 1 (default: the model's own)")
    parser.add_argument("--max_length", type=int, help="tokens per text at most, [CLS] and [SEP] included "
                                                       "(default: the model's own, else 512)")
    prompts = parser.add_mutually_exclusive_group()
    prompts.add_argument("--prompt", metavar="TEXT", help="a text put before every text, e.g. 'query: ', or '' for "
                                                          "none (default: the model's default prompt, if any)")
    prompts.add_argument("--prompt_name", metavar="NAME", help="one of the model's prompts, by name "
                                                               "(config_sentence_transformers.json)")
    parser.add_argument("--truncate_dim", type=int, metavar="N", help="keep each embedding's first N values "
                                                                       "(Matryoshka models; default: all)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="store the embeddings quantized, as sentence-transformers' quantize_embeddings: int8 / "
                             "uint8 (a byte a value, each dimension's range from the first --calibration_rows texts), "
                             "binary / ubinary (a bit a value, packed) (default: %(default)s)")
    parser.add_argument("--calibration_rows", type=int, metavar="N",
                        help=f"int8 / uint8: the ranges come from the first N texts (default: {CALIBRATION_ROWS})")
    parser.add_argument("--batch_size", type=int, default=32, help="texts per forward pass (default: %(default)s)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: threads on this machine; ray: a pool of Ray actors (default: %(default)s)")
    parser.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--workers", type=int, help="threads (local) or actors (ray) (default: one per CPU)")
    parser.add_argument("--rows_per_shard", type=int, default=10_000, help="input rows per shard (default: 10000)")
    parser.add_argument("--max_shards", type=int, help="stop after writing this many shards (run again to go on)")
    args = parser.parse_intermixed_args(argv)  # INPUTs may come before and after the options
    for name in ("max_length", "truncate_dim", "batch_size", "workers", "rows_per_shard", "max_shards"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1, got {value}")
    ranged = args.precision in ("int8", "uint8")
    if args.calibration_rows is not None and not ranged:
        parser.error("--calibration_rows is for --precision int8 or uint8")
    if ranged:
        args.calibration_rows = CALIBRATION_ROWS if args.calibration_rows is None else args.calibration_rows
        if args.calibration_rows < 2:
            parser.error(f"--calibration_rows must be at least 2 (a range needs two values), got "
                         f"{args.calibration_rows}")
    if args.address and args.engine != "ray":
        parser.error("--address is for --engine ray")
    return args


def load_engine(name):
    """The function that turns parts into results: corpus.embed_local, or corpus_ray.embed_ray when Ray is there."""
    if name == "local":
        return corpus.embed_local
    try:
        import corpus_ray
    except ModuleNotFoundError as err:
        if err.name != "ray" and not (err.name or "").startswith("ray."):
            raise
        sys.exit("error: --engine ray needs Ray: pip install -r requirements-ray.txt (ray[data]==2.60.0)")
    return corpus_ray


def make_manifest(args, names, params, hparams, settings):
    """The manifest's settings part: what a resumed run must share with the first."""
    model = os.path.realpath(args.model_name) if os.path.isdir(args.model_name) else args.model_name
    return {"model": model, "config_sha256": corpus.config_sha256(hparams),
            "dimension": embedding_dimension(params, args.truncate_dim),
            "pooling": settings.pooling, "normalize": settings.normalize, "max_length": settings.max_length,
            "prompt": settings.prompt, "truncate_dim": args.truncate_dim, "precision": args.precision,
            "calibration_rows": args.calibration_rows, "text_column": args.text_column, "id_column": args.id_column,
            "rows_per_shard": args.rows_per_shard, "inputs": [corpus.describe(name) for name in names],
            "numpy_bert_version": __version__}


def run(args):
    engine = load_engine(args.engine)
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise ValueError(f"--output {args.output} is a file: give a folder (it is created if needed)")
    names = corpus.resolve_inputs(args.inputs)
    model = load_tokenizer_hparams_and_params(args.model_name, args.models_dir)
    hparams = model[1]
    settings = corpus.model_settings(hparams, args.pooling, args.normalize, args.max_length, args.batch_size,
                                     args.prompt_name, args.prompt, args.truncate_dim, args.precision)
    check_pooling(settings.pooling, model[2])
    manifest = make_manifest(args, names, model[2], hparams, settings)
    previous = shards.check_folder(args.output, manifest) or {}  # a mismatch is refused before the inputs are read
    found = corpus.scan(names, args.text_column, args.id_column, args.rows_per_shard)
    expected = found.expected_rows
    manifest.update(key=found.key, key_type=str(found.key_type), rows=found.rows,
                    rows_skipped=int(found.empty_per_shard.sum()), shards=len(expected))
    if args.calibration_rows:
        ranges = run_ranges(args, previous, found, model, settings)
        settings = dataclasses.replace(settings, ranges=ranges)
        manifest.update(ranges=ranges)
    with shards.OutputFolder(args.output, manifest, expected, found.key_type) as output:
        done_before = len(output.done)
        with tqdm(total=int(expected.sum()), initial=int(expected[output.done].sum()), unit="row",
                  desc="embed", smoothing=0.1) as bar:
            assembler = shards.Assembler(output, args.rows_per_shard, bar.update)
            assembler.start()
            results = embeddings(engine, args, found, output.done, model, settings)
            for result in results:
                assembler.add(result)
                if args.max_shards and len(output.done) - done_before >= args.max_shards:
                    results.close()
                    break
            else:
                assembler.finish()
    report(args, found, output, done_before)


def run_ranges(args, previous, found, model, settings):
    """int8 / uint8's ranges: those of the run this one resumes (previous: its manifest), else from the first
    --calibration_rows texts."""
    if "ranges" in previous:
        return tuple(map(tuple, previous["ranges"]))
    return corpus.calibration_ranges(found, model, settings, args.calibration_rows, local_workers(args))


def local_workers(args):
    """Threads on this machine: --workers for the local engine (default: one per CPU); the Ray engine's --workers
    count actors, so its local work (int8 / uint8 calibration) takes one per CPU."""
    return (args.workers if args.engine == "local" else None) or os.cpu_count() or 1


def embeddings(engine, args, found, done, model, settings):
    """Result tables for the pending shards, from the chosen engine."""
    if engine is corpus.embed_local:
        return engine(corpus.read_parts(found, set(done)), model, settings, local_workers(args))
    engine.connect(args.address)
    return engine.embed_ray(found, set(done), model, settings, args.workers or int(engine.cluster_cpus()))


def report(args, found, output, done_before):
    """The closing lines on stderr: what was written, what was left out, what is left to do."""
    manifest = output.manifest
    if found.empty_per_shard.sum():
        print(f"note: left out {manifest['rows_skipped']} of {found.rows} rows with an empty or missing "
              f"{args.text_column!r} (rows {', '.join(map(str, found.empty_examples))}"
              f"{' ...' if manifest['rows_skipped'] > len(found.empty_examples) else ''})", file=sys.stderr)
    written = len(output.done) - done_before
    print(f"{args.output}: {manifest['shards_written']} of {manifest['shards']} shards, {manifest['rows_written']} "
          f"rows ({written} shards written now, {done_before} kept from before)", file=sys.stderr)
    if not manifest["complete"]:
        print("note: stopped early: run the same command again to finish", file=sys.stderr)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        print(f"interrupted: the complete shards are in {args.output}; run the same command again to finish",
              file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
