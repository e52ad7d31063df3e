"""checkpoint.read_torch_checkpoint: torch's pickle formats read without torch, and nothing but a state_dict."""
import io
import os
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest

import checkpoint
import utils
from conftest import GOLDEN_DIR, flat


def test_legacy_names_bin_gives_the_same_params_as_its_safetensors_twin():
    _, hparams, params = utils.load_tokenizer_hparams_and_params(os.path.join(GOLDEN_DIR, "tiny-gelu"))
    _, legacy_hparams, legacy = utils.load_tokenizer_hparams_and_params(os.path.join(GOLDEN_DIR, "tiny-gelu-legacy"))
    assert hparams == legacy_hparams
    expected, got = flat(params), flat(legacy)
    assert set(got) == set(expected) and {"pooler/w", "mlm/bias", "nsp/w", "blocks/1/ln_2/g"} <= set(got)
    for name in expected:
        assert got[name].dtype == np.float32 and np.array_equal(got[name], expected[name]), name


def test_transposed_storage_view_is_read_with_its_strides():
    state = checkpoint.read_torch_checkpoint(os.path.join(GOLDEN_DIR, "tiny-gelu-legacy", "pytorch_model.bin"))
    twin = checkpoint.read_safetensors(os.path.join(GOLDEN_DIR, "tiny-gelu", "model.safetensors"))
    pooler = state["pooler.dense.weight"]
    assert pooler.strides == (4, 4 * pooler.shape[0])  # saved as a column-major view
    assert np.array_equal(pooler, twin["bert.pooler.dense.weight"])
    assert np.shares_memory(state["cls.predictions.decoder.weight"], state["embeddings.word_embeddings.weight"])


def test_pre_zip_torch_format_in_float16():
    state = checkpoint.read_torch_checkpoint(os.path.join(GOLDEN_DIR, "tiny-gelu-torch1.5", "pytorch_model.bin"))
    twin = checkpoint.read_safetensors(os.path.join(GOLDEN_DIR, "tiny-gelu", "model.safetensors"))
    assert state.keys() == twin.keys()
    for name, array in twin.items():
        assert state[name].dtype == np.float32
        assert np.array_equal(state[name], array.astype(np.float16).astype(np.float32)), name


# A torch.save writer without torch: stand-in torch modules make pickle emit the same global references.

class _Storage:
    def __init__(self, key, data):
        self.key, self.data = key, data


def _rebuild_tensor_v2(*args):
    raise AssertionError("never called while writing")


class _Tensor:
    def __init__(self, storage, offset, shape, stride):
        self.args = (storage, offset, shape, stride, False, None)

    def __reduce__(self):
        return _rebuild_tensor_v2, self.args


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", FloatStorage, obj.key, "cpu", len(obj.data) // 4) if isinstance(obj, _Storage) else None


class FloatStorage:
    pass


@pytest.fixture
def torch_zip(monkeypatch, tmp_path):
    """write(obj, storages) -> path of a zip laid out like torch.save's."""
    torch, torch_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    torch.FloatStorage, torch_utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    for obj, module in ((FloatStorage, "torch"), (_rebuild_tensor_v2, "torch._utils")):
        monkeypatch.setattr(obj, "__module__", module)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", torch_utils)

    def write(obj, storages=(), byteorder="little"):
        buf = io.BytesIO()
        _TorchPickler(buf, protocol=2).dump(obj)
        path = str(tmp_path / "pytorch_model.bin")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", buf.getvalue())
            if byteorder:
                z.writestr("archive/byteorder", byteorder)
            for storage in storages:
                z.writestr(f"archive/data/{storage.key}", storage.data)
        return path
    return write


@pytest.mark.parametrize("byteorder", ["little", None])  # torch < 1.13 wrote no byteorder record
def test_the_stand_in_writer_produces_what_the_reader_expects(torch_zip, byteorder):
    storage = _Storage("0", np.arange(6, dtype=np.float32).tobytes())
    path = torch_zip({"w": _Tensor(storage, 1, (2, 2), (1, 2))}, [storage], byteorder)
    assert checkpoint.read_torch_checkpoint(path)["w"].tolist() == [[1.0, 3.0], [2.0, 4.0]]


def test_big_endian_storages_are_refused(torch_zip):
    storage = _Storage("0", np.arange(6, dtype=">f4").tobytes())
    path = torch_zip({"w": _Tensor(storage, 0, (6,), (1,))}, [storage], "big")
    with pytest.raises(ValueError, match="big-endian storages"):
        checkpoint.read_torch_checkpoint(path)


@pytest.mark.parametrize("offset, shape, stride, stored", [
    (4, (2, 2), (1, 2), 6),     # runs past the end of the storage
    (-1, (2, 2), (2, 1), 6),    # negative offset
    (0, (2, 2), (-1, 2), 6),    # negative stride
    (0, (2, 2), (2, 1), 5),     # the archive holds fewer elements than the pickle claims (6)
    (0, (2, 2), (2, 1), None),  # the archive has no data/0 at all
])
def test_tensors_outside_their_storage_are_refused(torch_zip, offset, shape, stride, stored):
    written = [] if stored is None else [_Storage("0", bytes(4 * stored))]
    path = torch_zip({"w": _Tensor(_Storage("0", bytes(24)), offset, shape, stride)}, written)
    with pytest.raises(ValueError, match="a tensor lies outside its storage 0"):
        checkpoint.read_torch_checkpoint(path)


class _Hostile:
    """Unpickling this calls fn(*args): what a malicious checkpoint does."""
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("make", [
    lambda path: _Hostile(open, path, "w"),
    lambda path: _Hostile(os.system, f"touch {path}"),
    lambda path: _Hostile(eval, f"open({path!r}, 'w')"),
    lambda path: {"w": _Hostile(os.system, f"touch {path}")},  # inside an otherwise plain dict
])
@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_a_pickle_that_would_create_a_file_is_refused(torch_zip, tmp_path, make, container):
    victim = str(tmp_path / "pwned")
    if container == "zip":
        path = torch_zip(make(victim))
    else:  # a bare pickle stream, as the pre-1.6 format starts
        path = str(tmp_path / "legacy.bin")
        with open(path, "wb") as f:
            pickle.dump(make(victim), f, protocol=2)
    with pytest.raises(ValueError, match="refusing to load .*: a plain state_dict never needs it"):
        checkpoint.read_torch_checkpoint(path)
    assert not os.path.exists(victim)


def test_a_storage_reference_of_an_unknown_kind_is_refused(torch_zip, monkeypatch):
    monkeypatch.setattr(_TorchPickler, "persistent_id", lambda self, obj: ("module", "x") if obj == "m" else None)
    with pytest.raises(ValueError, match="unsupported storage reference"):
        checkpoint.read_torch_checkpoint(torch_zip({"w": "m"}))


def test_not_a_state_dict(torch_zip):
    with pytest.raises(ValueError, match="holds a list, not a state_dict"):
        checkpoint.read_torch_checkpoint(torch_zip([1, 2]))
