"""Checkpoint files <-> {name: float32 array}, with NumPy and the standard library alone (copy it beside bert.py).

read_safetensors memory-maps a .safetensors file and checks every header field before using it;
write_safetensors writes one atomically; read_torch_checkpoint reads torch.save'd state_dicts (zip and
pre-1.6 formats) through an unpickler that accepts only what a plain state_dict contains, so a malicious
checkpoint cannot run code.
"""
import collections
import json
import math
import mmap
import os
import pickle
import struct
import tempfile
import zipfile

import numpy as np

DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8"}  # safetensors' names; BF16 read as raw bits
TORCH_STORAGES = {"FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16", "LongStorage": "I64"}
TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # starts the pre-1.6 (non-zip) torch.save format


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # a folder's weights, in order of preference


def first_file(folder, names):
    """The path of the first of names that is a file in folder, or None."""
    return next((os.path.join(folder, name) for name in names if os.path.isfile(os.path.join(folder, name))), None)


def read_weights(path):
    """{name: array} of a .safetensors file (read_safetensors), else of a torch.save'd one (read_torch_checkpoint)."""
    return read_safetensors(path) if path.endswith(".safetensors") else read_torch_checkpoint(path)


def _map(path):
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(f.fileno()).st_size else b""


def _array(buf, dtype, shape, offset, strides=None):
    """A read-only view of buf; F16 and BF16 become float32 copies, and so does misaligned data (a file whose
    header length is not a multiple of 4), which NumPy would otherwise copy at every matrix product."""
    a = np.ndarray(shape, DTYPES[dtype], buf, offset, strides)
    if dtype == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32) if dtype == "F16" or not a.flags.aligned else a


def read_safetensors(path):
    """{name: array} from a .safetensors file, memory-mapped, every offset checked before it is used."""
    def bad(reason):
        return ValueError(f"invalid safetensors file: {reason} ({path})")
    buf = _map(path)
    if len(buf) < 8:
        raise bad("shorter than its 8-byte header length")
    n = int.from_bytes(buf[:8], "little")
    data_len = len(buf) - 8 - n
    if data_len < 0:
        raise bad(f"header length {n} exceeds the file size {len(buf)}")
    try:
        header = json.loads(bytes(buf[8:8 + n]))
    except ValueError:  # includes UnicodeDecodeError
        raise bad("the header is not valid JSON") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    header.pop("__metadata__", None)
    tensors = {}
    for name, info in header.items():
        info = info if isinstance(info, dict) else {}
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPES:
            raise bad(f"{name} has unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise bad(f"{name} has shape {shape!r}, not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_len):
            raise bad(f"{name} has data_offsets {offsets!r}, outside the {data_len} data bytes")
        nbytes = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise bad(f"{name} has {offsets[1] - offsets[0]} bytes, its {dtype} shape {shape} needs {nbytes}")
        tensors[name] = _array(buf, dtype, shape, 8 + n + offsets[0])
    return tensors


_Storage = collections.namedtuple("_Storage", "key dtype numel")
_Tensor = collections.namedtuple("_Tensor", "storage offset shape stride")


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a plain state_dict and nothing else: any other global is refused, so no code runs."""
    ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): lambda storage, offset, shape, stride, *_: _Tensor(
                   storage, offset, tuple(shape), tuple(stride)),
               ("torch._utils", "_rebuild_parameter"): lambda tensor, *_: tensor}

    def find_class(self, module, name):
        if module == "torch" and name in TORCH_STORAGES:
            return TORCH_STORAGES[name]  # a storage type stands for its dtype
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a plain state_dict never needs it, "
                                         "so this checkpoint is unsafe or unsupported")
        return self.ALLOWED[module, name]

    def persistent_load(self, pid):  # ("storage", dtype, key, location, numel[, view]) names raw bytes
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[1] in DTYPES and pid[5:] in ((), (None,))):
            raise pickle.UnpicklingError(f"unsupported storage reference {pid!r}")
        return _Storage(str(pid[2]), pid[1], int(pid[4]))


def read_torch_checkpoint(path):
    """{name: array} from a torch.save'd state_dict (zip or pre-1.6 format), without torch."""
    buf = _map(path)
    try:
        state, extents = (_zip_checkpoint if bytes(buf[:4]) == b"PK\x03\x04" else _legacy_checkpoint)(path, buf)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, struct.error, KeyError) as e:
        raise ValueError(f"cannot read {path} as a torch state_dict: {e}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state_dict")
    return {name: _tensor(t, extents, buf, path) for name, t in state.items() if isinstance(t, _Tensor)}


def _zip_checkpoint(path, buf):
    """The state_dict and {storage key: (offset, size)} of the archive's uncompressed data/ entries."""
    with zipfile.ZipFile(path) as z:
        pkl = next((name for name in z.namelist() if name.endswith("data.pkl")), "")
        order = pkl.replace("data.pkl", "byteorder")  # absent before torch 1.13: little-endian
        if not pkl or order in z.namelist() and z.read(order) != b"little":
            raise zipfile.BadZipFile("no data.pkl, or big-endian storages")
        with z.open(pkl) as f:
            state = _StateDictUnpickler(f).load()
        extents = {}
        for info in z.infolist():
            if info.filename.startswith(pkl.replace("data.pkl", "data/")) and info.compress_type == zipfile.ZIP_STORED:
                name_len, extra_len = struct.unpack("<HH", buf[info.header_offset + 26:info.header_offset + 30])
                extents[info.filename.rsplit("/", 1)[1]] = (info.header_offset + 30 + name_len + extra_len,
                                                            info.file_size)
    return state, extents


def _legacy_checkpoint(path, buf):
    """Pre-1.6 format: pickles of magic, version, sys info, the state_dict, storage keys; then raw storages."""
    with open(path, "rb") as f:
        magic, _version, sys_info, state, keys = (_StateDictUnpickler(f).load() for _ in range(5))
        offset = f.tell()
    if magic != TORCH_MAGIC or not isinstance(sys_info, dict) or not sys_info.get("little_endian"):
        raise pickle.UnpicklingError("not a little-endian torch checkpoint")
    dtypes = {t.storage.key: t.storage.dtype for t in state.values() if isinstance(t, _Tensor)}
    extents = {}
    for key in map(str, keys):  # each storage: its int64 element count, then the elements
        size = struct.unpack("<q", buf[offset:offset + 8])[0] * np.dtype(DTYPES[dtypes[key]]).itemsize
        extents[key], offset = (offset + 8, size), offset + 8 + size
    return state, extents


def _tensor(t, extents, buf, path):
    """The array a _Tensor describes, after checking that it lies within its storage and the file."""
    itemsize = np.dtype(DTYPES[t.storage.dtype]).itemsize
    start, size = extents.get(t.storage.key, (0, -1))
    extent = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride)) if all(t.shape) else 0
    if (size < t.storage.numel * itemsize or start + size > len(buf) or t.offset < 0
            or min(t.stride, default=0) < 0 or t.offset + extent > t.storage.numel):
        raise ValueError(f"{path}: a tensor lies outside its storage {t.storage.key} (corrupt checkpoint?)")
    return _array(buf, t.storage.dtype, t.shape, start + t.offset * itemsize, [s * itemsize for s in t.stride])


def write_safetensors(path, tensors, metadata=None):
    """Write {name: array} as a .safetensors file (float32 as F32, int64 as I64), the header padded with
    spaces to a multiple of 8 bytes as the safetensors library writes it. The file appears complete or not
    at all: it is written under a hidden temporary name in the same folder, then renamed."""
    names = {np.dtype(v): k for k, v in DTYPES.items() if k != "BF16"}
    header, offset, arrays = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        if a.dtype not in names:
            raise ValueError(f"{name} has dtype {a.dtype}; safetensors files here hold float32, float16 or int64")
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    folder, base = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{base}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(head).to_bytes(8, "little") + head)
            for a in arrays:
                f.write(a.data)
        ordinary_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def ordinary_mode(path):
    """Give a file or folder that mkstemp / mkdtemp made (private to its owner) the mode an ordinary one gets."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)
