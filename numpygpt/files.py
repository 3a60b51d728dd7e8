"""Files on disk: atomic writes, safetensors files, JSON files and plain state_dict files.

Every array file numpygpt writes is a safetensors file: a little-endian
header length, a JSON header naming each array's dtype, shape and byte range,
then the raw bytes. Reading one reads numbers and text and never runs code
(numpygpt never uses pickle). `checkpoint.py` (training checkpoints) and
`hf.py` (Hugging Face directories) build on the helpers here.

| function | does |
|---|---|
| `atomic_write` | writes a file under a temporary name, fsyncs it, renames it over the target |
| `write_safetensors`, `read_safetensors` | name -> array and text metadata, with clear errors |
| `write_json`, `read_json` | a JSON file, written atomically / read with clear errors |
| `save_state_dict`, `load_state_dict_file` | a plain name -> array dict (any safetensors reader opens it) |

Writes are atomic: the file is written under a temporary name in the target's
directory, flushed to disk with `os.fsync`, and only then renamed over the
target (`os.replace`), so a write that fails or is killed midway leaves the
previous file as it was. The new file keeps the old one's permissions. The
temporary name is ".<name>.<pid>.<8 random characters>.tmp"; a process killed
mid-write (SIGKILL) leaves one behind, and the next write to the same target
removes it once it is over a minute old and process <pid> is gone
(`remove_stale_temporaries`; nothing else in the directory is touched).

Reading never trusts a file's sizes: safetensors checks that the header's byte
ranges cover the file exactly, so the arrays read are at most the file's size;
dtypes NumPy lacks (float8) are a ValueError naming the tensor; JSON (configs,
checkpoint metadata) may nest at most `MAX_NESTING` levels, checked without
recursion. The size budget that ties a stored config to the stored tensors is
checked by the loaders that read a config (`checkpoint.py`, `hf.py`, see
`hf.check_budget`); a plain state_dict file has no config and is only read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import struct
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError, safe_open

from ._parallel import map_in_threads
from .tensor import Tensor

__all__ = [
    "PathLike",
    "atomic_write",
    "write_safetensors",
    "read_safetensors",
    "write_json",
    "read_json",
    "loads_json",
    "check_nesting",
    "check_regular_file",
    "remove_stale_temporaries",
    "corrupt_file_error",
    "as_array",
    "stored_dtype",
    "save_state_dict",
    "load_state_dict_file",
]

PathLike = str | os.PathLike

# ----------------------------------------------------------------------------- atomic writes


def _new_file_mode(path: str) -> int:
    """Permissions for the file about to replace `path`: the old file's, or the umask's default."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` to write a temporary file next to `path`, fsync it, rename it onto `path`.

    If `write` raises (or the process dies), `path` is untouched; the temporary
    file is removed when an exception passes through here.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: the directory {directory} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    mode = _new_file_mode(path)
    remove_stale_temporaries(path)
    # ".<name>.<pid>.<random>.tmp": the writer's pid tells a later write whether the writer is gone
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())       # the bytes are on disk before the rename makes them visible
        os.chmod(tmp, mode)
        os.replace(tmp, path)          # atomic on POSIX and Windows
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


# A temporary file is stale when it is older than this and its writer is no longer running.
STALE_AFTER_SECONDS = 60.0


def _process_is_running(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True        # it exists but belongs to someone else (or the number is not a pid: keep it)
    return True


def remove_stale_temporaries(path: PathLike) -> list[str]:
    """Remove the temporaries `atomic_write` left beside `path` when its process was killed.

    Only names of atomic_write's own pattern for this very target are considered,
    ".<name>.<pid>.<8 random characters>.tmp", and one is removed only if it is
    more than `STALE_AFTER_SECONDS` old (a live writer keeps its file fresh) and
    the process `pid` no longer runs. Anything else in the directory is left
    alone. Returns the paths removed.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(f".{os.path.basename(path)}.") + r"(\d{1,10})\.[a-z0-9_]{8}\.tmp")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or _process_is_running(int(match.group(1))):
            continue
        candidate = os.path.join(directory, name)
        with contextlib.suppress(OSError):  # gone already, or not ours to remove
            info = os.lstat(candidate)
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > STALE_AFTER_SECONDS:
                os.remove(candidate)
                removed.append(candidate)
    return removed


def _fsync_directory(directory: str) -> None:
    """Make a rename in `directory` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_safetensors(path: PathLike, arrays: Mapping[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Atomically write `arrays` and text `metadata` (safetensors stores the raw bytes, so C order)."""
    arrays = {name: np.asarray(a, order="C") for name, a in arrays.items()}  # (ascontiguousarray makes 0-d 1-d)
    atomic_write(path, lambda tmp: safetensors.numpy.save_file(arrays, tmp, metadata=metadata))


def write_json(path: PathLike, obj: Any) -> None:
    """Atomically write `obj` as indented JSON (a temporary file, fsynced, then renamed)."""
    check_nesting(obj, f"the JSON for {os.fspath(path)}")
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


# ----------------------------------------------------------------------------- reading files


def corrupt_file_error(path: PathLike, why: str) -> ValueError:
    """The error for a file that cannot be what it claims: "<path> is truncated or corrupt: <why>"."""
    return ValueError(f"{os.fspath(path)} is truncated or corrupt: {why}")


def check_regular_file(path: PathLike, what: str) -> str:
    """`path` as a string if it is a regular file; otherwise a clear error. A FIFO, a device or a
    socket is refused before it is opened, since reading one can block forever."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device or socket"
        raise ValueError(f"{what} {path} is {kind}, not a regular file; numpygpt reads only regular files")
    return path


# JSON numpygpt reads or writes (configs, checkpoint metadata) may nest lists and dicts this deep.
MAX_NESTING = 100


def check_nesting(value: Any, what: str, limit: int = MAX_NESTING) -> None:
    """ValueError if lists, tuples and dicts inside `value` nest deeper than `limit` levels.

    Walked with an explicit stack, not recursion, so a hostile value cannot exhaust
    Python's stack here; a value that contains itself is reported as too deep.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children = list(item.keys()) + list(item.values())
        elif isinstance(item, (list, tuple)):
            children = list(item)
        else:
            continue
        if depth > limit:
            raise ValueError(f"{what} is nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)


def loads_json(text: str, what: str) -> Any:
    """`json.loads(text)`, with ValueError naming `what` for text that is not JSON or nests too deep."""
    try:
        value = json.loads(text)
    except RecursionError:  # the JSON decoder recurses once per level
        raise ValueError(f"{what} is nested deeper than {MAX_NESTING} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} is not valid JSON: {e}") from None
    check_nesting(value, what)
    return value


def read_json(path: PathLike, what: str) -> Any:
    """The contents of a JSON file; FileNotFoundError naming `what`, ValueError for text that is
    not JSON or nests deeper than `MAX_NESTING` levels."""
    path = Path(check_regular_file(path, what))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    return loads_json(text, str(path))


def _widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values (which NumPy lacks), given as their uint16 bit patterns, widened to float32.

    bfloat16 is the upper half of a float32, so shifting the 16 bits up by 16 is exact.
    """
    return (bits.astype(np.uint32) << 16).view(np.float32)


# safetensors dtypes numpygpt reads: floats (BF16 is widened to float32), integers and booleans
READABLE_DTYPES = ("F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL")


def read_safetensors(path: PathLike, what: str = "file", column_major: Callable[[str], bool] | None = None
                     ) -> tuple[dict[str, str], OrderedDict[str, np.ndarray]]:
    """(metadata, name -> array) from a safetensors file, or a clear error.

    A missing file is FileNotFoundError; a file safetensors cannot parse
    (truncated, garbage, a broken header) is ValueError naming the path.
    The safetensors library checks the header (byte ranges inside the file,
    no overlaps, known dtypes); then each tensor's bytes are read straight
    into a new writable array, one copy from the file, nothing left mapped.
    bfloat16 becomes float32. The tensors are read in threads (see `_parallel`).

    The 2-D tensors whose names `column_major` is true of come back in Fortran order, with
    their stored shape and values: their transposes are then C-contiguous views.
    Hugging Face's Conv1D weights (in, out) are read this way, so the (out, in)
    weights of numpygpt's Linear layers cost no copy beyond the read itself.
    """
    path = check_regular_file(path, what)
    try:
        with safe_open(path, framework="np") as f:
            metadata, names = dict(f.metadata() or {}), list(f.keys())
            for name in names:
                dtype = f.get_slice(name).get_dtype()
                if dtype not in READABLE_DTYPES:  # float8 and the like: NumPy has no such dtype
                    raise ValueError(f"{path}: tensor {name[:80]!r} has dtype {dtype[:20]}; numpygpt reads "
                                     f"{', '.join(READABLE_DTYPES)} tensors")
    except SafetensorError as e:  # a header too short, too long or not JSON; byte ranges not covering the file
        raise corrupt_file_error(path, f"not a readable safetensors file ({e})") from None
    transposed = frozenset(filter(column_major, names)) if column_major else frozenset()
    return metadata, _read_tensors(path, names, transposed)


# safetensors dtype -> NumPy dtype (safetensors stores little-endian); BF16 is read as its
# uint16 bit patterns and widened to float32
_NUMPY_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
                 "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?", "BF16": "<u2"}

# bytes of a tensor read at a time when it is laid out in column-major order: a band of
# rows this size stays in the core's cache while it is copied into its columns
_BAND_BYTES = 256 * 1024


def _read_tensors(path: str, names: list[str], column_major: frozenset[str]) -> OrderedDict[str, np.ndarray]:
    """The tensors `names` of a safetensors file whose header `safe_open` has already checked,
    each read with `readinto` into an array of its own; the largest first, in threads."""
    with open(path, "rb", buffering=0) as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    start = 8 + header_len

    def read(name: str) -> np.ndarray:
        entry = header[name]
        dtype = np.dtype(_NUMPY_DTYPES[entry["dtype"]]).newbyteorder("=")
        shape, (begin, _) = entry["shape"], entry["data_offsets"]
        direct = name in column_major and len(shape) == 2 and sys.byteorder == "little" and entry["dtype"] != "BF16"
        with open(path, "rb", buffering=0) as f:
            f.seek(start + begin)
            if direct:
                return _read_column_major(f, shape, dtype, path, name)
            array = np.empty(shape, dtype=dtype)
            _read_into(f, array, path, name)
        if sys.byteorder != "little":
            array = array.byteswap()
        array = _widen_bfloat16(array) if entry["dtype"] == "BF16" else array
        return np.asfortranarray(array) if name in column_major else array

    by_size = sorted(names, key=lambda name: -_stored_bytes(header[name]))
    arrays = dict(zip(by_size, map_in_threads(read, by_size)))
    return OrderedDict((name, arrays[name]) for name in names)


def _stored_bytes(entry: Mapping[str, Any]) -> int:
    begin, end = entry["data_offsets"]
    return end - begin


def _read_into(f: Any, array: np.ndarray, path: str, name: str) -> None:
    """Fill C-contiguous `array` with the next bytes of file `f` (readinto may return fewer than asked)."""
    view, done = memoryview(array.reshape(-1).view(np.uint8)), 0
    while done < array.nbytes:
        n = f.readinto(view[done:])
        if not n:
            raise corrupt_file_error(path, f"tensor {name[:80]!r} ends past the end of the file")
        done += n


def _read_column_major(f: Any, shape: list[int], dtype: np.dtype, path: str, name: str) -> np.ndarray:
    """The next (rows, cols) tensor of file `f` (stored row by row) as a Fortran-order array.

    Read a band of rows at a time into a small buffer, then copy the band into
    the array: in Fortran order its rows are columns, so this copy is the
    transpose, done while the band is in cache.
    """
    rows, cols = shape
    array = np.empty(shape, dtype=dtype, order="F")
    band = np.empty((max(1, _BAND_BYTES // max(1, cols * dtype.itemsize)), cols), dtype=dtype)
    for i in range(0, rows, len(band)):
        part = band[:rows - i]
        _read_into(f, part, path, name)
        array[i:i + len(part)] = part
    return array


# ----------------------------------------------------------------------------- arrays in files


def as_array(value: Any, key: str) -> np.ndarray:
    """An ndarray from an ndarray, a numpygpt Tensor, or anything `np.asarray` takes (a CPU torch tensor)."""
    data = value.data if isinstance(value, Tensor) else value
    array = np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{key}: expected a numeric array, got dtype {array.dtype}")
    return array


def stored_dtype(arrays: Mapping[str, np.ndarray]) -> np.dtype:
    """The dtype to build a model in for stored weights: float64 if every floating array is
    float64, else float32 (numpygpt's two dtypes; float16 and bfloat16 are widened)."""
    kinds = {a.dtype for a in arrays.values() if a.dtype.kind == "f"}
    return np.dtype(np.float64) if kinds == {np.dtype(np.float64)} else np.dtype(np.float32)


# ----------------------------------------------------------------------------- plain state dicts


def save_state_dict(path: PathLike, state_dict: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> None:
    """Write a name -> array dict to one safetensors file, atomically.

    Values may be ndarrays, Tensors or CPU torch tensors; `metadata` is an
    optional str -> str dict stored in the header. Each name gets its own copy
    of the bytes (a tied weight is written twice), so any safetensors reader,
    e.g. `safetensors.torch.load_file`, loads the file as it is.
    Like `safetensors.numpy.save_file`, but atomic and checked.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of name -> array, got {type(state_dict).__name__}")
    metadata = dict(metadata or {})
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise TypeError(f"metadata must map str to str; offending key(s): {', '.join(map(repr, bad))}")
    arrays: dict[str, np.ndarray] = {}
    seen: set[int] = set()
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r}")
        array = as_array(value, key)
        if id(array) in seen or not array.flags.c_contiguous:
            array = np.array(array, order="C", copy=True)
        seen.add(id(array))
        arrays[key] = array
    write_safetensors(path, arrays, metadata)


def load_state_dict_file(path: PathLike, with_metadata: bool = False) -> Any:
    """Read a safetensors file into an OrderedDict name -> ndarray (dtypes as stored).

    With `with_metadata=True`, returns `(state_dict, metadata)`. A missing file
    raises FileNotFoundError; a truncated or corrupt one ValueError naming it.
    Reads files from `save_state_dict`, `safetensors.*.save_file` and Hugging Face.
    """
    metadata, arrays = read_safetensors(path, "state dict file")
    return (arrays, metadata) if with_metadata else arrays
