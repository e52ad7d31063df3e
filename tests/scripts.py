"""Run the repository's command-line scripts as a user would: a fresh Python process, offline."""
import json
import os
import shutil
import signal
import subprocess
import sys

from conftest import ROOT


def run_script(script, *args, env=None):
    """CompletedProcess of `python <script> <args>` in the repository root (text stdout/stderr)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=600)


def interruptible(command, **kwargs):
    """subprocess.Popen(command) that a SIGINT stops as Ctrl-C does in a terminal, even when the test suite was
    started in the background: a shell starts background jobs with SIGINT ignored, children inherit that, and
    then Python installs no KeyboardInterrupt handler."""
    return subprocess.Popen(command, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def assert_one_line_error(result, *fragments):
    """A clean failure: non-zero exit, one line on stderr mentioning every fragment, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_usage_error(result, *fragments):
    """A refused command line (cli.ArgumentParser): exit 2, nothing on stdout, one `error:` line mentioning
    every fragment and pointing to --help, no usage block, no traceback."""
    assert result.returncode == 2, result.stdout
    assert result.stdout == "", result.stdout
    assert_one_line_error(result, "error: ", "--help)", *fragments)


def copy_without_tensors(src, dst, prefix):
    """A copy of the checkpoint folder whose model.safetensors header no longer lists tensors named
    prefix*; their bytes stay in place, unreferenced."""
    shutil.copytree(src, dst)
    path = dst / "model.safetensors"
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = {k: v for k, v in json.loads(raw[8:8 + n]).items() if not k.startswith(prefix)}
    new_header = json.dumps(header).encode()
    path.write_bytes(len(new_header).to_bytes(8, "little") + new_header + raw[8 + n:])
    return str(dst)
