"""The command lines' traps: no prefix matching, misspelt or wrong-case keys and options named with the close
one, a value without its key, `--text-a` for `--text_a`, --top_k beyond the vocabulary, one-line errors."""
import os
import re

import pytest

import classify_demo
import pretrain_demo
from conftest import GOLDEN_DIR
from scripts import assert_usage_error, run_script

TINY = os.path.join(GOLDEN_DIR, "tiny-gelu")
CLASSIFY_KEYS = ("The keys are dataset_name, text_column, label_column, N, test_ratio, model_name, models_dir, "
                 "seed, pooling, batch_size, num_proc")


def refusal(parse, argv, capsys):
    """The one line that parse(argv) prints before exiting with status 2."""
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "usage:" not in err, err
    return err


@pytest.mark.parametrize("argv, message", [
    (["n", "200"], "unknown key n: did you mean N? " + CLASSIFY_KEYS + " (see"),  # was --num_proc 200 (prefix)
    (["--n", "200"], "unknown option --n: did you mean --N? The options are --dataset_name, --text_column"),
    (["--num", "2"], "unknown option --num: did you mean --num_proc?"),  # no prefix matching
    (["test_Ratio", "0.5"], "unknown key test_Ratio: did you mean test_ratio?"),
    (["data.csv"], "data.csv is a value without its key: write dataset_name data.csv"),
    (["N", "10", "200"], "200 is a value without its key: write its key in front of it (N, test_ratio, "
                         "seed, batch_size, num_proc)"),
    (["mean"], "mean is a value without its key: write pooling mean"),
    ([TINY], f"{TINY} is a value without its key: write model_name {TINY}"),
    (["imdb"], "unknown key imdb. " + CLASSIFY_KEYS + "; a value needs its key in front of it, as in "
                                                      "dataset_name imdb"),
    (["--N", "many"], "argument --N: invalid int value: 'many'"),
])
def test_classify_demo_refuses_keys_it_does_not_have(argv, message, capsys):
    assert message in refusal(classify_demo.parse_args, argv, capsys)


def test_hyphens_are_read_as_underscores():
    args = classify_demo.parse_args(["dataset-name", "x.csv", "--text-column", "review", "--label-column=stars"])
    assert (args.dataset_name, args.text_column, args.label_column) == ("x.csv", "review", "stars")
    args = pretrain_demo.parse_args(["--text-a", "one", "--text-b", "two", "--mask-prob", "0.5", "--top-k", "3"])
    assert (args.text_a, args.text_b, args.mask_prob, args.top_k) == ("one", "two", 0.5, 3)


@pytest.mark.parametrize("argv, message", [
    (["--text_a", "hi", "--top", "3"], "unknown option --top: did you mean --top_k?"),
    (["--text_a", "hi", "--Top_K", "3"], "unknown option --Top_K: did you mean --top_k?"),
    (["--text", "hi"], "unknown option --text: did you mean --text_a or --text_b?"),
    (["--txet_a", "hi"], "unknown option --txet_a: did you mean --text_a?"),
    ([], "the following arguments are required: --text_a"),
])
def test_pretrain_demo_refuses_options_it_does_not_have(argv, message, capsys):
    assert message in refusal(pretrain_demo.parse_args, argv, capsys)


def test_help_still_shows_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        classify_demo.parse_args(["--help"])
    assert exit_info.value.code == 0 and "--num_proc NUM_PROC" in capsys.readouterr().out


@pytest.mark.parametrize("script, argv, message", [
    ("classify_demo.py", ["n", "200"], "unknown key n: did you mean N?"),
    ("pretrain_demo.py", ["--text-a", "hi", "--n", "3"], "unknown option --n. The options are --text_a"),
])
def test_a_refused_command_line_is_one_line(script, argv, message):
    assert_usage_error(run_script(script, *argv), message, f"(see {script} --help)")


def test_top_k_is_capped_at_the_vocabulary_size():
    result = run_script("pretrain_demo.py", "--model_name", TINY, "--text_a", "the cat sat", "--top_k", 100000,
                        "--verbose")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "note: --top_k 100000 is more than the 2506 tokens of the vocabulary: showing all 2506\n"
    positions = [line.partition(" top-2506: ") for line in result.stdout.splitlines() if line.startswith("position ")]
    assert positions and all(len(re.findall(r"\S+ [01]\.\d{4}(?=, |$)", top)) == 2506 for _, _, top in positions)
