"""pretrain_demo.py end to end, as a subprocess, on the tiny checkpoint with both pre-training heads."""
import os
import re

import pytest

import tokenization
from conftest import GOLDEN_DIR
from scripts import assert_one_line_error, assert_usage_error, copy_without_tensors, run_script

TINY = os.path.join(GOLDEN_DIR, "tiny-gelu")
TEXT_A = "The apple doesn't fall far from the tree, as people in the old town used to say."
TEXT_B = "Instead, it falls on Newton's head."
MASKED_LINE = re.compile(r"^position (\d+): actual (\S+)  predicted (\S+)  top-(\d+): (.+)$")


def demo(*args):
    return run_script("pretrain_demo.py", "--model_name", TINY, *args)


def masked_lines(stdout):
    return [m for m in map(MASKED_LINE.match, stdout.splitlines()) if m]


def n_word_pieces(*texts):
    tokenizer = tokenization.FullTokenizer(os.path.join(TINY, "vocab.txt"), do_lower_case=True)
    return sum(len(tokenizer.tokenize(text)) for text in texts)


def test_output_lines_with_and_without_text_b():
    pair = demo("--text_a", TEXT_A, "--text_b", TEXT_B)
    assert pair.returncode == 0, pair.stderr
    assert re.fullmatch(r"mlm_accuracy = [01]\.\d+\nis_next_sentence = (True|False)\n", pair.stdout)

    single = demo("--text_a", TEXT_A)
    assert single.returncode == 0, single.stderr
    assert re.fullmatch(r"mlm_accuracy = [01]\.\d+\n", single.stdout)


@pytest.mark.parametrize("mask_prob", [0.01, 0.15, 0.5, 1.0])
def test_masks_round_mask_prob_times_word_pieces(mask_prob):
    result = demo("--text_a", TEXT_A, "--text_b", TEXT_B, "--mask_prob", mask_prob, "--verbose")
    assert result.returncode == 0, result.stderr
    n_candidates = n_word_pieces(TEXT_A, TEXT_B)
    lines = masked_lines(result.stdout)
    assert len(lines) == max(1, round(mask_prob * n_candidates))

    masked_input = next(line for line in result.stdout.splitlines() if line.startswith("masked input: "))
    tokens = masked_input.split()[2:]
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2  # never masked
    assert [int(m[1]) for m in lines] == [i for i, t in enumerate(tokens) if t == "[MASK]"]
    correct = sum(m[2] == m[3] for m in lines)
    assert f"mlm_accuracy = {correct / len(lines)}" in result.stdout.splitlines()
    assert re.search(r"^P\(text_b follows text_a\) = [01]\.\d{4}$", result.stdout, re.M)


def test_same_seed_same_masks_other_seed_other_masks():
    def positions(seed):
        result = demo("--text_a", TEXT_A, "--mask_prob", 0.3, "--seed", seed, "--verbose")
        assert result.returncode == 0, result.stderr
        return result.stdout, [m[1] for m in masked_lines(result.stdout)]

    first, again, other = positions(7), positions(7), positions(8)
    assert first == again
    assert first[1] != other[1]


def test_verbose_lists_top_k_candidates_in_order():
    result = demo("--text_a", TEXT_A, "--top_k", 3, "--verbose")
    assert result.returncode == 0, result.stderr
    for line in masked_lines(result.stdout):
        assert line[4] == "3"
        candidates = re.findall(r"(\S+) ([01]\.\d{4})", line[5])
        probs = [float(p) for _, p in candidates]
        assert len(candidates) == 3 and probs == sorted(probs, reverse=True)
        assert candidates[0][0] == line[3]  # the prediction is the most likely candidate


def test_fill_mask_predicts_the_literal_masks():
    text_a, text_b = "The cat sat on the [MASK].", "It was [MASK] and warm."
    result = demo("--text_a", text_a, "--text_b", text_b, "--top_k", 4)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    fills = [re.fullmatch(r"\[MASK\] (\d) \(position (\d+)\): (.+)", line) for line in lines[:-1]]
    first, second = n_word_pieces("The cat sat on the"), n_word_pieces(text_a, "It was")
    assert [(m[1], int(m[2])) for m in fills] == [("1", 1 + first), ("2", 2 + second)]  # after [CLS], [SEP]
    for m in fills:
        probs = [float(p) for p in re.findall(r"\S+ ([01]\.\d{4})", m[3])]
        assert len(probs) == 4 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0
    assert re.fullmatch(r"is_next_sentence = (True|False)", lines[-1])
    assert "mlm_accuracy" not in result.stdout  # no ground truth for a literal [MASK]


def test_checkpoint_without_mlm_head_is_one_clear_error(minilm):
    assert_one_line_error(run_script("pretrain_demo.py", "--model_name", minilm, "--text_a", TEXT_A),
                          "no MLM head")


def test_text_b_on_checkpoint_without_nsp_head_is_one_clear_error(tmp_path):
    folder = copy_without_tensors(TINY, tmp_path / "no-nsp", prefix="cls.seq_relationship.")
    assert run_script("pretrain_demo.py", "--model_name", folder, "--text_a", TEXT_A).returncode == 0
    result = run_script("pretrain_demo.py", "--model_name", folder, "--text_a", TEXT_A, "--text_b", TEXT_B)
    assert_one_line_error(result, "no NSP head")
    assert result.stdout == ""


def test_unknown_model_fails_cleanly():
    assert_one_line_error(run_script("pretrain_demo.py", "--model_name", "no-such-bert", "--text_a", "hi"),
                          "unknown model 'no-such-bert'")


@pytest.mark.parametrize("args, message", [
    (["--text_a", TEXT_A, "--mask_prob", 1.5], "--mask_prob must be between 0 and 1, got 1.5"),
    (["--text_a", TEXT_A, "--top_k", 0], "--top_k must be at least 1, got 0"),
    (["--text_a", TEXT_A, "--seed", -1], "--seed must be a non-negative integer, got -1"),
    (["--text_a", ""], "--text_a is empty: give a sentence"),
    (["--text_a", " \t\n ", "--text_b", TEXT_B], "--text_a is empty: give a sentence"),
])
def test_bad_options_are_refused(args, message):
    assert_usage_error(demo(*args), message)


@pytest.mark.parametrize("args", [["--text_a", TEXT_A, "--mask_prob", 0], ["--text_a", "[SEP] [CLS]"]])
def test_nothing_to_mask_is_nan_accuracy(args):
    result = demo(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "mlm_accuracy = nan\n"


def test_long_input_is_cut_to_the_models_limit_with_a_note():
    result = demo("--text_a", "word " * 80, "--mask_prob", 0.5, "--verbose")  # tiny-gelu: 64 positions
    assert result.returncode == 0, result.stderr
    assert result.stderr == "note: the input has 82 tokens, cut to the model's limit of 64\n"
    assert len(masked_lines(result.stdout)) == 31  # 0.5 × the 62 word pieces left
