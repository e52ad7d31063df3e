"""The repository's structure: one concern per module, imports that point one way, copyable modules that need
NumPy and the standard library alone."""
import ast
import glob
import os
import sys

import pytest

from conftest import ROOT

SCRIPTS = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "*_demo.py"))} | {"embed_corpus"}
LIBRARY = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "*.py"))
                 if os.path.basename(p)[:-3] not in SCRIPTS)
COPYABLE = ("bert", "tokenization", "bert_normalizer", "checkpoint", "convert", "model_folder", "st_modules", "layers",
            "training", "task_heads", "mlm_data", "optim", "embedding_training", "ner_metrics",
            "squad_metrics")  # NumPy + the standard library
NETWORK = {"requests", "urllib3", "http", "urllib", "socket", "tqdm"}
# Names whose import means "builds params from files" and "runs the model": no module may do both.
BUILDS_PARAMS = {"to_params", "read_safetensors", "read_torch_checkpoint", "read_weights", "load_model_folder"}
RUNS_MODEL = {"bert"}


def imports(module):
    """{imported top-level module: the names taken from it}."""
    tree = ast.parse(open(os.path.join(ROOT, module + ".py"), encoding="utf-8").read())
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name.split(".")[0], set())
        elif isinstance(node, ast.ImportFrom):
            found.setdefault(node.module.split(".")[0], set()).update(alias.name for alias in node.names)
    return found


def python_files():
    return [p for p in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True)
            if "/tests/" not in p and "/." not in p.removeprefix(ROOT)]


def test_library_modules_import_each_other_without_cycles():
    graph = {m: {i for i in imports(m) if i in LIBRARY} for m in LIBRARY}
    done, path = set(), []

    def visit(m):
        assert m not in path, "import cycle: " + " -> ".join(path[path.index(m):] + [m])
        if m not in done:
            path.append(m)
            for dependency in graph[m]:
                visit(dependency)
            path.pop()
            done.add(m)
    for module in LIBRARY:
        visit(module)


@pytest.mark.parametrize("module", LIBRARY)
def test_no_library_module_imports_a_script(module):
    assert not set(imports(module)) & SCRIPTS


@pytest.mark.parametrize("module", COPYABLE)
def test_copyable_modules_need_numpy_and_the_standard_library_alone(module):
    outside = {m for m in imports(module) if m not in sys.stdlib_module_names and m != "numpy" and m not in LIBRARY}
    assert not outside, outside
    assert not {m for m in imports(module) if m in LIBRARY} - set(COPYABLE)  # and only each other
    assert not set(imports(module)) & NETWORK


@pytest.mark.parametrize("module", LIBRARY)
def test_only_hub_touches_the_network(module):
    if module != "hub":
        assert not set(imports(module)) & (NETWORK - {"tqdm"})


@pytest.mark.parametrize("module", LIBRARY)
def test_no_module_both_builds_params_and_runs_the_model(module):
    names = {name for taken in imports(module).values() for name in taken}
    assert not (names & BUILDS_PARAMS and names & RUNS_MODEL), module


@pytest.mark.parametrize("path", python_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_file_is_short_and_says_its_concern(path):
    source = open(path, encoding="utf-8").read()
    assert source.count("\n") <= 400
    assert ast.get_docstring(ast.parse(source)), "no opening docstring"
