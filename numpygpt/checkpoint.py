"""Saving and loading: training checkpoints, plain weights, and Hugging Face GPT-2.

Every file is a safetensors file: a little-endian header length, a JSON header
naming each array's dtype, shape and byte range, then the raw bytes. Loading
one reads numbers and text and never runs code (numpygpt never uses pickle).
Whatever is not an array goes into the header's text metadata as JSON.

| function | writes / reads |
|---|---|
| `save_checkpoint`, `load_checkpoint` | model + optimizer + step + RNG state + `extra`, to resume training exactly |
| `save_state_dict`, `load_state_dict_file` | a plain name -> array dict (any safetensors reader opens it) |
| `hf_config_to_cfg`, `cfg_to_hf_config` | GPT2Config dict <-> numpygpt config |
| `hf_to_state_dict`, `state_dict_to_hf` | `GPT2LMHeadModel` weights <-> `GPTModel` weights |
| `load_pretrained`, `save_pretrained` | a Hugging Face model directory (config.json + model.safetensors) |

Writes are atomic: the file is written under a temporary name in the target's
directory, flushed to disk with `os.fsync`, and only then renamed over the
target (`os.replace`), so a write that fails or is killed midway leaves the
previous file as it was.

A training checkpoint holds:

    arrays    "model.<key>"  every entry of model.state_dict(); a weight that is
                             shared (tied out_head.weight / tok_emb.weight) is
                             stored once and its other names recorded as aliases
              "optim.<...>"  the optimizer's state arrays (exp_avg, ...)
              "extra.<...>"  arrays inside `extra`, if any
    metadata  format, format_version, cfg, step, rng_state, model_keys, aliases,
              optimizer (class name and state_dict with arrays replaced by
              references), extra, each as JSON; and crc32: CRC-32 checksums
              of the other entries and of each array (dtype, shape and bytes),
              so damage anywhere in the file is reported rather than loaded

JSON alone would turn tuples into lists and integer keys into strings; the
metadata tags those ({"$tuple": [...]}, {"$items": [[key, value], ...]}) and
references arrays as {"$array": name}, so `Optimizer.state_dict()` and `extra`
come back exactly as they were saved.

Hugging Face's GPT-2 keeps its linear layers as `Conv1D` with weight (in, out),
computing x @ W + b, and fuses the query, key and value projections into one
`c_attn` of width 3C; numpygpt's `Linear` keeps weight (out, in) as PyTorch's
`nn.Linear` does. The converters transpose and split (or concatenate). No torch
is needed: the weights are read from safetensors files with NumPy.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import struct
import tempfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError, safe_open

from . import model as _model
from . import random as _random
from .tensor import Tensor, get_default_dtype, set_default_dtype

if TYPE_CHECKING:
    from .model import GPTModel
    from .nn import Module
    from .optim import Optimizer

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "save_state_dict",
    "load_state_dict_file",
    "hf_config_to_cfg",
    "cfg_to_hf_config",
    "hf_to_state_dict",
    "state_dict_to_hf",
    "load_pretrained",
    "save_pretrained",
]

FORMAT = "numpygpt.checkpoint"
FORMAT_VERSION = 1

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


def _atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
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
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
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


def _write_safetensors(path: PathLike, arrays: Mapping[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Atomically write `arrays` and text `metadata` (safetensors stores the raw bytes, so C order)."""
    arrays = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    _atomic_write(path, lambda tmp: safetensors.numpy.save_file(arrays, tmp, metadata=metadata))


def write_json(path: PathLike, obj: Any) -> None:
    """Atomically write `obj` as indented JSON (a temporary file, fsynced, then renamed)."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    _atomic_write(path, write)


# ----------------------------------------------------------------------------- reading safetensors files


def _corrupt(path: PathLike, why: str) -> ValueError:
    return ValueError(f"{os.fspath(path)} is truncated or corrupt: {why}")


def _check_file(path: PathLike, what: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a directory, not a file")
    return path


def _read_bfloat16(path: str, name: str) -> np.ndarray:
    """A bfloat16 tensor (which NumPy lacks) widened to float32, read from the raw bytes.

    bfloat16 is the upper half of a float32, so shifting the 16 bits up by 16 is exact.
    """
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        entry = json.loads(f.read(header_len))[name]
        begin, end = entry["data_offsets"]
        f.seek(8 + header_len + begin)
        raw = f.read(end - begin)
    bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32).reshape(entry["shape"])


def _read_safetensors(path: PathLike, what: str = "file") -> tuple[dict[str, str], OrderedDict[str, np.ndarray]]:
    """(metadata, name -> array) from a safetensors file, or a clear error.

    A missing file is FileNotFoundError; a file safetensors cannot parse
    (truncated, garbage, a broken header) is ValueError naming the path.
    The arrays are writable copies (nothing stays mapped). bfloat16 becomes float32.
    """
    path = _check_file(path, what)
    arrays: OrderedDict[str, np.ndarray] = OrderedDict()
    try:
        with safe_open(path, framework="np") as f:
            metadata = dict(f.metadata() or {})
            for name in f.keys():
                dtype = f.get_slice(name).get_dtype()
                if dtype == "BF16":
                    arrays[name] = _read_bfloat16(path, name)
                    continue
                try:
                    array = f.get_tensor(name)
                except TypeError as e:  # a dtype NumPy does not have (float8, ...)
                    raise ValueError(f"{path}: tensor {name!r} has dtype {dtype}, which numpygpt cannot read") from e
                arrays[name] = array if array.flags.writeable else array.copy()
    except SafetensorError as e:  # a header too short, too long or not JSON; byte ranges not covering the file
        raise _corrupt(path, f"not a readable safetensors file ({e})") from None
    return metadata, arrays


# ----------------------------------------------------------------------------- JSON with arrays, tuples, int keys

def _unique_name(name: str, arrays: Mapping[str, Any]) -> str:
    if name not in arrays:
        return name
    n = 1
    while f"{name}#{n}" in arrays:
        n += 1
    return f"{name}#{n}"


def _to_json(value: Any, name: str, arrays: dict[str, np.ndarray]) -> Any:
    """`value` as JSON, its ndarrays moved into `arrays` (under names starting with `name`)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{name}: cannot store an array of dtype {value.dtype} (numbers and booleans only)")
        key = _unique_name(name, arrays)
        arrays[key] = np.ascontiguousarray(value)
        return {"$array": key}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"$tuple": [_to_json(v, f"{name}.{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_to_json(v, f"{name}.{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _to_json(v, f"{name}.{k}", arrays) for k, v in value.items()}
        return {"$items": [[_to_json(k, f"{name}.key", arrays), _to_json(v, f"{name}.{k}", arrays)]
                           for k, v in value.items()]}
    raise TypeError(
        f"{name}: cannot store a {type(value).__name__} in a checkpoint "
        "(JSON values, tuples, dicts and ndarrays only)"
    )


def _from_json(value: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """Undo `_to_json`, taking referenced arrays from `arrays` (KeyError if one is absent)."""
    if isinstance(value, list):
        return [_from_json(v, arrays) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "$array":
                return arrays[inner]
            if tag == "$tuple":
                return tuple(_from_json(v, arrays) for v in inner)
            if tag == "$items":
                return {_from_json(k, arrays): _from_json(v, arrays) for k, v in inner}
        return {k: _from_json(v, arrays) for k, v in value.items()}
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# ----------------------------------------------------------------------------- plain state dicts


def _as_array(value: Any, key: str) -> np.ndarray:
    """An ndarray from an ndarray, a numpygpt Tensor, or anything `np.asarray` takes (a CPU torch tensor)."""
    data = value.data if isinstance(value, Tensor) else value
    array = np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{key}: expected a numeric array, got dtype {array.dtype}")
    return array


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
        array = _as_array(value, key)
        if id(array) in seen or not array.flags.c_contiguous:
            array = np.array(array, order="C", copy=True)
        seen.add(id(array))
        arrays[key] = array
    _write_safetensors(path, arrays, metadata)


def load_state_dict_file(path: PathLike, with_metadata: bool = False) -> Any:
    """Read a safetensors file into an OrderedDict name -> ndarray (dtypes as stored).

    With `with_metadata=True`, returns `(state_dict, metadata)`. A missing file
    raises FileNotFoundError; a truncated or corrupt one ValueError naming it.
    Reads files from `save_state_dict`, `safetensors.*.save_file` and Hugging Face.
    """
    metadata, arrays = _read_safetensors(path, "state dict file")
    return (arrays, metadata) if with_metadata else arrays


# ----------------------------------------------------------------------------- training checkpoints


def _crc32(array: np.ndarray) -> int:
    """CRC-32 of an array's dtype, shape and bytes."""
    described = zlib.crc32(f"{array.dtype.str}{array.shape}".encode())
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"), described)


def _metadata_crc32(metadata: Mapping[str, str]) -> int:
    """CRC-32 of every metadata entry except "crc32" itself."""
    return zlib.crc32(_dumps(sorted((k, v) for k, v in metadata.items() if k != "crc32")).encode())


def save_checkpoint(
    path: PathLike,
    model: Module,
    optimizer: Optimizer | None = None,
    step: int = 0,
    extra: Mapping[str, Any] | None = None,
    rng_state: Mapping[str, Any] | None = None,
) -> None:
    """Write everything needed to resume training to one safetensors file, atomically.

    Stored: `model.state_dict()` (dtypes kept), `model.cfg` (if the model has
    one), the optimizer's `state_dict()` and class name, `step`, the global
    generator's state (`numpygpt.random.get_rng_state()`, so dropout draws
    continue where they left off; pass `rng_state` to store another one, such
    as the state at the step being saved), and `extra`: a dict of anything JSON can
    hold (tuples and ndarrays too), e.g. a scheduler's `state_dict()` or a
    data loader's position. A weight shared between two names (tied
    embeddings) is stored once. No pickle: see the module docstring for the layout.
    PyTorch has no single counterpart; this replaces `torch.save({...}, path)`.
    """
    if not hasattr(model, "state_dict"):
        raise TypeError(f"model must be a numpygpt Module, got {type(model).__name__}")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")

    arrays: dict[str, np.ndarray] = {}
    model_keys: list[str] = []
    aliases: dict[str, str] = {}
    first_name: dict[int, tuple[str, np.ndarray]] = {}  # id(array) -> (the first key that holds it, array)
    for key, value in model.state_dict().items():
        array = _as_array(value, f"model.{key}")
        model_keys.append(key)
        if id(array) in first_name:
            aliases[key] = first_name[id(array)][0]
            continue
        first_name[id(array)] = (key, array)  # holding the array keeps its id unique
        arrays[f"model.{key}"] = np.ascontiguousarray(array)

    optimizer_meta = None
    if optimizer is not None:
        if not hasattr(optimizer, "state_dict"):
            raise TypeError(f"optimizer must be a numpygpt Optimizer, got {type(optimizer).__name__}")
        optimizer_meta = {"class": type(optimizer).__name__,
                          "state_dict": _to_json(optimizer.state_dict(), "optim", arrays)}
    extra_json = _to_json(dict(extra), "extra", arrays) if extra is not None else None

    cfg = getattr(model, "cfg", None)
    try:
        cfg_json = _dumps(_to_json(dict(cfg), "cfg", {})) if cfg is not None else "null"
    except TypeError as e:
        raise TypeError(f"model.cfg cannot be stored as JSON: {e}") from None
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "cfg": cfg_json,
        "step": str(int(step)),
        "rng_state": _dumps(dict(rng_state) if rng_state is not None else _random.get_rng_state()),
        "model_keys": _dumps(model_keys),
        "aliases": _dumps(aliases),
        "optimizer": _dumps(optimizer_meta),
        "extra": _dumps(extra_json),
    }
    metadata["crc32"] = _dumps({"metadata": _metadata_crc32(metadata),
                                "arrays": {name: _crc32(a) for name, a in arrays.items()}})
    _write_safetensors(path, arrays, metadata)


def _checkpoint_contents(path: str, metadata: Mapping[str, str], arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Parse and check a checkpoint's metadata; ValueError naming the path if anything is off."""
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{path} is a safetensors file but not a numpygpt training checkpoint (no format={FORMAT!r} "
            "in its metadata); for plain weights use load_state_dict_file or load_pretrained"
        )
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise ValueError(f"{path} has checkpoint format version {version!r}; "
                         f"this numpygpt reads version {FORMAT_VERSION}")
    try:
        crc = json.loads(metadata["crc32"])
        crc_metadata, crc_arrays = crc["metadata"], crc["arrays"]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise _corrupt(path, "the checksums are missing or unreadable") from None
    if crc_metadata != _metadata_crc32(metadata):
        raise _corrupt(path, "checksum mismatch in the metadata")
    if not isinstance(crc_arrays, dict) or set(crc_arrays) != set(arrays):
        raise _corrupt(path, "the stored arrays are not the ones the checksums list")
    bad = [name for name, array in arrays.items() if _crc32(array) != crc_arrays[name]]
    if bad:
        raise _corrupt(path, f"checksum mismatch in {', '.join(bad)}")

    fields = {}
    for key in ("cfg", "step", "rng_state", "model_keys", "aliases", "optimizer", "extra"):
        if key not in metadata:
            raise _corrupt(path, f"the metadata has no {key!r} entry")
        try:
            fields[key] = json.loads(metadata[key])
        except json.JSONDecodeError as e:
            raise _corrupt(path, f"the metadata entry {key!r} is not valid JSON ({e})") from None

    step = fields["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise _corrupt(path, f"step is {step!r}, not a non-negative integer")
    keys, aliases = fields["model_keys"], fields["aliases"]
    if (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)
            or not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values())):
        raise _corrupt(path, "model_keys / aliases are malformed")
    state_dict: OrderedDict[str, np.ndarray] = OrderedDict()
    for key in keys:
        stored = f"model.{aliases.get(key, key)}"
        if stored not in arrays:
            raise _corrupt(path, f"the array for {key} ({stored}) is missing")
        state_dict[key] = arrays[stored]
    fields["state_dict"] = state_dict
    try:
        fields["extra"] = _from_json(fields["extra"], arrays)
        optimizer = fields["optimizer"]
        if optimizer is not None:
            optimizer = {"class": optimizer["class"], "state_dict": _from_json(optimizer["state_dict"], arrays)}
        fields["optimizer"] = optimizer
        fields["cfg"] = _from_json(fields["cfg"], arrays)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _corrupt(path, f"the metadata refers to something that is not there ({e!r})") from None
    return fields


@contextlib.contextmanager
def _building(dtype: Any):
    """Build a model in `dtype` without disturbing the global generator or default dtype."""
    state, default = _random.get_rng_state(), get_default_dtype()
    set_default_dtype(dtype)
    try:
        yield
    finally:
        set_default_dtype(default)
        _random.set_rng_state(state)


def _model_dtype(arrays: Mapping[str, np.ndarray]) -> np.dtype:
    """float64 if every floating array is float64, else float32 (numpygpt's two dtypes)."""
    kinds = {a.dtype for a in arrays.values() if a.dtype.kind == "f"}
    return np.dtype(np.float64) if kinds == {np.dtype(np.float64)} else np.dtype(np.float32)


def _build_model(cfg: Mapping[str, Any], dtype: Any) -> GPTModel:
    with _building(dtype):
        return _model.GPTModel(cfg)


def load_checkpoint(
    path: PathLike,
    model: Module | None = None,
    optimizer: Optimizer | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a `save_checkpoint` file into `model` and `optimizer`; return what it holds.

    With `model=None` a `GPTModel` is built from the stored config, in the
    stored dtype (building it leaves the global generator untouched). A given
    model's config must match the stored one except for `drop_rate`; its
    weights are cast to the model's dtype. The optimizer, if given, must be of
    the class that was saved. With `restore_rng` the global generator gets the
    saved state, so dropout continues exactly as in an uninterrupted run.

    Returns a dict: "model", "optimizer" (the given one or None),
    "optimizer_state" (the stored state_dict, for an optimizer built later),
    "step", "extra", "cfg", "rng_state".

    Errors: FileNotFoundError for a missing file; ValueError naming the path
    for a truncated or corrupt file, and naming the keys for a config or
    state_dict that does not fit. Either everything loads or nothing changes.
    """
    path = os.fspath(path)
    metadata, arrays = _read_safetensors(path, "checkpoint")
    contents = _checkpoint_contents(path, metadata, arrays)
    state_dict, stored_cfg = contents["state_dict"], contents["cfg"]

    cfg = None
    if stored_cfg is not None:
        try:
            cfg = _model.validate_config(stored_cfg)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: the stored model config is invalid: {e}") from None
    if model is None:
        if cfg is None:
            raise ValueError(f"{path} stores no model config; pass the model to load into")
        model = _build_model(cfg, _model_dtype(state_dict))
    elif cfg is not None and getattr(model, "cfg", None) is not None:
        differ = [k for k in sorted(set(cfg) | set(model.cfg)) if k != "drop_rate" and cfg.get(k) != model.cfg.get(k)]
        if differ:
            raise ValueError(
                f"{path}: the model's config differs from the checkpoint's in "
                + ", ".join(f"{k} (model {model.cfg.get(k)!r}, checkpoint {cfg.get(k)!r})" for k in differ)
            )

    saved_optimizer = contents["optimizer"]
    if optimizer is not None:
        if saved_optimizer is None:
            raise ValueError(f"{path} holds no optimizer state, but an optimizer was given")
        if saved_optimizer["class"] != type(optimizer).__name__:
            raise ValueError(f"{path} holds {saved_optimizer['class']} state, "
                             f"which cannot be loaded into {type(optimizer).__name__}")

    rng_state = contents["rng_state"]
    if restore_rng:
        try:
            probe = type(_random.default_generator().bit_generator)()
            probe.state = rng_state
        except (TypeError, ValueError, KeyError) as e:
            raise _corrupt(path, f"the stored generator state is invalid ({e})") from None

    previous = OrderedDict(model.state_dict())
    try:
        model.load_state_dict(state_dict)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} does not fit the model: {e}") from None
    if optimizer is not None:
        try:
            optimizer.load_state_dict(saved_optimizer["state_dict"])
        except (TypeError, ValueError, KeyError) as e:
            model.load_state_dict(previous)
            raise ValueError(f"{path}: the optimizer state does not fit the optimizer: {e}") from None
    if restore_rng:
        _random.set_rng_state(rng_state)
    return {
        "model": model,
        "optimizer": optimizer,
        "optimizer_state": None if saved_optimizer is None else saved_optimizer["state_dict"],
        "step": contents["step"],
        "extra": contents["extra"],
        "cfg": cfg,
        "rng_state": rng_state,
    }


# ----------------------------------------------------------------------------- Hugging Face GPT-2: configs

# GPT2Config's defaults for the keys that only change behaviour (the sizes are required).
_HF_DEFAULTS: dict[str, Any] = {
    "activation_function": "gelu_new",
    "n_inner": None,
    "layer_norm_epsilon": 1e-5,
    "scale_attn_weights": True,
    "add_cross_attention": False,
    "reorder_and_upcast_attn": False,
    "scale_attn_by_inverse_layer_idx": False,
    "tie_word_embeddings": True,
}
# Both are the tanh approximation numpygpt's GELU computes.
_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")


def hf_config_to_cfg(hf_config: Mapping[str, Any]) -> dict[str, Any]:
    """A numpygpt config from a Hugging Face GPT2Config dict (the contents of config.json).

        vocab_size -> vocab_size          n_positions (or n_ctx) -> context_length
        n_embd -> emb_dim                 n_head -> n_heads          n_layer -> n_layers
        resid_pdrop -> drop_rate (0.0 if absent)
        layer_norm_epsilon -> ln_eps      tie_word_embeddings -> tie_embeddings (default True)
        qkv_bias = True (GPT-2's c_attn has a bias)

    numpygpt has one dropout rate where GPT-2 has three (resid, embd, attn);
    resid_pdrop is taken. Keys that change only behaviour default as in
    GPT2Config. A config numpygpt cannot compute the same way is a ValueError
    listing every reason: model_type other than "gpt2", an activation other
    than the tanh GELU (gelu_new, gelu_pytorch_tanh), n_inner other than
    4 * n_embd, scale_attn_weights false, cross-attention,
    reorder_and_upcast_attn or scale_attn_by_inverse_layer_idx.
    """
    if not isinstance(hf_config, Mapping):
        raise TypeError(f"hf_config must be a dict (config.json), got {type(hf_config).__name__}")
    hf = {**_HF_DEFAULTS, **hf_config}
    if "n_positions" not in hf and "n_ctx" in hf:
        hf["n_positions"] = hf["n_ctx"]
    model_type = hf.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise ValueError(f"config has model_type {model_type!r}; "
                         "numpygpt converts GPT-2 configs only (model_type 'gpt2')")
    missing = [k for k in ("vocab_size", "n_positions", "n_embd", "n_head", "n_layer") if hf.get(k) is None]
    if missing:
        raise ValueError(f"GPT-2 config is missing {', '.join(missing)}")

    problems = []
    if hf["activation_function"] not in _TANH_GELUS:
        problems.append(f"activation_function is {hf['activation_function']!r} (numpygpt computes the tanh GELU: "
                        f"{' or '.join(_TANH_GELUS)})")
    if hf["n_inner"] is not None and hf["n_inner"] != 4 * hf["n_embd"]:
        problems.append(f"n_inner is {hf['n_inner']} "
                        f"(numpygpt's feed-forward width is 4 * n_embd = {4 * hf['n_embd']})")
    if not hf["scale_attn_weights"]:
        problems.append("scale_attn_weights is false (numpygpt always divides scores by sqrt(head_dim))")
    for key in ("add_cross_attention", "reorder_and_upcast_attn", "scale_attn_by_inverse_layer_idx"):
        if hf[key]:
            problems.append(f"{key} is true (numpygpt has no such option)")
    if problems:
        raise ValueError("numpygpt cannot represent this GPT-2 config: " + "; ".join(problems))

    cfg = {
        "vocab_size": hf["vocab_size"],
        "context_length": hf["n_positions"],
        "emb_dim": hf["n_embd"],
        "n_heads": hf["n_head"],
        "n_layers": hf["n_layer"],
        "drop_rate": float(hf.get("resid_pdrop") or 0.0),
        "qkv_bias": True,
        "ln_eps": float(hf["layer_norm_epsilon"]),
        "tie_embeddings": bool(hf["tie_word_embeddings"]),
    }
    try:
        return _model.validate_config(cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(f"GPT-2 config gives an invalid numpygpt config: {e}") from None


def cfg_to_hf_config(cfg: Mapping[str, Any], dtype: Any = np.float32) -> dict[str, Any]:
    """A GPT2Config-compatible dict (what config.json holds) for a numpygpt config.

    The three dropout rates all get `drop_rate`; the activation is "gelu_new";
    bos/eos are 50256 (GPT-2's <|endoftext|>) when the vocabulary has that id,
    else None. `dtype` is recorded as "dtype" (transformers 5) and "torch_dtype"
    (older versions).
    """
    cfg = _model.validate_config(cfg)
    endoftext = 50256 if cfg["vocab_size"] > 50256 else None
    dtype_name = np.dtype(dtype).name
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg["vocab_size"],
        "n_positions": cfg["context_length"],
        "n_ctx": cfg["context_length"],
        "n_embd": cfg["emb_dim"],
        "n_head": cfg["n_heads"],
        "n_layer": cfg["n_layers"],
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": cfg["drop_rate"],
        "embd_pdrop": cfg["drop_rate"],
        "attn_pdrop": cfg["drop_rate"],
        "layer_norm_epsilon": cfg["ln_eps"],
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
        "use_cache": True,
        "tie_word_embeddings": cfg["tie_embeddings"],
        "bos_token_id": endoftext,
        "eos_token_id": endoftext,
        "dtype": dtype_name,
        "torch_dtype": dtype_name,
    }


# ----------------------------------------------------------------------------- Hugging Face GPT-2: weights

# HF's per-layer causal-mask buffers (older checkpoints save them); numpygpt builds its own.
_QKV = ("W_query", "W_key", "W_value")  # in c_attn's order: x @ c_attn.weight = [q | k | v]
_HF_IGNORED = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")


def _hf_shapes(cfg: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """HF GPT-2 weight name (no "transformer." prefix) -> shape, for `cfg`. Conv1D weights are (in, out)."""
    V, T, C, L = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"], cfg["n_layers"]
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (V, C), "wpe.weight": (T, C)}
    for i in range(L):
        h = f"h.{i}."
        shapes.update({
            h + "ln_1.weight": (C,), h + "ln_1.bias": (C,),
            h + "attn.c_attn.weight": (C, 3 * C), h + "attn.c_attn.bias": (3 * C,),
            h + "attn.c_proj.weight": (C, C), h + "attn.c_proj.bias": (C,),
            h + "ln_2.weight": (C,), h + "ln_2.bias": (C,),
            h + "mlp.c_fc.weight": (C, 4 * C), h + "mlp.c_fc.bias": (4 * C,),
            h + "mlp.c_proj.weight": (4 * C, C), h + "mlp.c_proj.bias": (C,),
        })
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,), "lm_head.weight": (V, C)})
    return shapes


def _ours_shapes(cfg: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """numpygpt GPTModel state_dict name -> shape, for `cfg` (masks included)."""
    V, T, C, L = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"], cfg["n_layers"]
    shapes: dict[str, tuple[int, ...]] = {"tok_emb.weight": (V, C), "pos_emb.weight": (T, C)}
    for i in range(L):
        b = f"trf_blocks.{i}."
        shapes[b + "att.mask"] = (T, T)
        for proj in _QKV:
            shapes[f"{b}att.{proj}.weight"] = (C, C)
            if cfg["qkv_bias"]:
                shapes[f"{b}att.{proj}.bias"] = (C,)
        shapes.update({
            b + "att.out_proj.weight": (C, C), b + "att.out_proj.bias": (C,),
            b + "ff.layers.0.weight": (4 * C, C), b + "ff.layers.0.bias": (4 * C,),
            b + "ff.layers.2.weight": (C, 4 * C), b + "ff.layers.2.bias": (C,),
            b + "norm1.scale": (C,), b + "norm1.shift": (C,),
            b + "norm2.scale": (C,), b + "norm2.shift": (C,),
        })
    shapes.update({"final_norm.scale": (C,), "final_norm.shift": (C,), "out_head.weight": (V, C)})
    return shapes


def _check_keys(what: str, given: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]],
                optional: set[str], names: Mapping[str, str] | None = None) -> None:
    """ValueError naming every missing, unexpected or misshapen key (`names` maps to the caller's spelling)."""
    names = names or {}
    missing = [k for k in expected if k not in given and k not in optional]
    unexpected = [names.get(k, k) for k in given if k not in expected]
    misshapen = [f"{names.get(k, k)}: shape {tuple(a.shape)}, expected {expected[k]}"
                 for k, a in given.items() if k in expected and tuple(a.shape) != expected[k]]
    problems = []
    if missing:
        problems.append("missing keys: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if misshapen:
        problems.append("wrong shapes: " + "; ".join(misshapen))
    if problems:
        raise ValueError(f"{what}:\n  " + "\n  ".join(problems))


def _t(array: np.ndarray) -> np.ndarray:
    """The transpose as a new C-contiguous array: Conv1D (in, out) <-> Linear (out, in)."""
    return np.ascontiguousarray(array.T)


def _c(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy."""
    return np.array(array, order="C", copy=True)


def hf_to_state_dict(hf_sd: Mapping[str, Any], cfg: Mapping[str, Any]) -> OrderedDict[str, np.ndarray]:
    """Hugging Face GPT-2 weights -> a `GPTModel(cfg)` state_dict (loads with strict=True).

    Keys may carry the "transformer." prefix (`GPT2LMHeadModel`) or not
    (`GPT2Model`, OpenAI's converted checkpoints). HF's attention mask buffers
    (`attn.bias`, `attn.masked_bias`) are ignored; numpygpt's `att.mask` is
    built as triu(ones(T, T), 1).

        wte -> tok_emb          wpe -> pos_emb           ln_f -> final_norm
        h.N.ln_1 / ln_2 (weight, bias) -> trf_blocks.N.norm1 / norm2 (scale, shift)
        h.N.attn.c_attn (C, 3C) -> att.W_query / W_key / W_value, each transposed to (C, C)
        h.N.attn.c_proj -> att.out_proj   h.N.mlp.c_fc -> ff.layers.0   h.N.mlp.c_proj -> ff.layers.2
        lm_head.weight -> out_head.weight (wte when the config ties them)

    With `cfg["tie_embeddings"]` (HF's default) lm_head.weight may be absent;
    if present it must equal wte. With `qkv_bias=False` the c_attn bias must be
    all zeros. Missing, unexpected or misshapen keys raise ValueError naming them.
    Arrays keep their dtype; values may be ndarrays or CPU torch tensors.
    """
    cfg = _model.validate_config(cfg)
    if not isinstance(hf_sd, Mapping):
        raise TypeError(f"hf_sd must be a mapping of name -> array, got {type(hf_sd).__name__}")
    weights: dict[str, np.ndarray] = {}
    spelled: dict[str, str] = {}
    for key, value in hf_sd.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r}")
        name = key.removeprefix("transformer.")
        if _HF_IGNORED.fullmatch(name):
            continue
        if name in weights:
            raise ValueError(f"Hugging Face state_dict has {name} twice: {spelled[name]} and {key}")
        weights[name], spelled[name] = _as_array(value, key), key
    optional = {"lm_head.weight"} if cfg["tie_embeddings"] else set()
    if not cfg["qkv_bias"]:
        optional |= {f"h.{i}.attn.c_attn.bias" for i in range(cfg["n_layers"])}
    _check_keys("Hugging Face GPT-2 weights do not fit the config", weights, _hf_shapes(cfg), optional, spelled)

    C, T = cfg["emb_dim"], cfg["context_length"]
    wte = weights["wte.weight"]
    if cfg["tie_embeddings"] and "lm_head.weight" in weights and not np.array_equal(weights["lm_head.weight"], wte):
        raise ValueError("lm_head.weight differs from wte.weight, but the config ties them "
                         "(tie_word_embeddings / tie_embeddings); load it with tie_embeddings=False")
    mask_dtype = wte.dtype if wte.dtype.kind == "f" else np.dtype(np.float32)

    sd: OrderedDict[str, np.ndarray] = OrderedDict()
    sd["tok_emb.weight"] = _c(wte)
    sd["pos_emb.weight"] = _c(weights["wpe.weight"])
    for i in range(cfg["n_layers"]):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        sd[b + "att.mask"] = np.triu(np.ones((T, T), dtype=mask_dtype), k=1)
        w_qkv = weights[h + "attn.c_attn.weight"]                    # (C, 3C): x @ w_qkv = [q | k | v]
        b_qkv = weights.get(h + "attn.c_attn.bias")                  # (3C,)
        if not cfg["qkv_bias"] and b_qkv is not None and np.any(b_qkv):
            raise ValueError(f"{spelled[h + 'attn.c_attn.bias']} is not zero, but the config has qkv_bias=False")
        for j, proj in enumerate(_QKV):
            sd[f"{b}att.{proj}.weight"] = _t(w_qkv[:, j * C:(j + 1) * C])   # (C, C) as (out, in)
            if cfg["qkv_bias"]:
                sd[f"{b}att.{proj}.bias"] = _c(b_qkv[j * C:(j + 1) * C])
        sd[b + "att.out_proj.weight"] = _t(weights[h + "attn.c_proj.weight"])
        sd[b + "att.out_proj.bias"] = _c(weights[h + "attn.c_proj.bias"])
        sd[b + "ff.layers.0.weight"] = _t(weights[h + "mlp.c_fc.weight"])     # (C, 4C) -> (4C, C)
        sd[b + "ff.layers.0.bias"] = _c(weights[h + "mlp.c_fc.bias"])
        sd[b + "ff.layers.2.weight"] = _t(weights[h + "mlp.c_proj.weight"])   # (4C, C) -> (C, 4C)
        sd[b + "ff.layers.2.bias"] = _c(weights[h + "mlp.c_proj.bias"])
        sd[b + "norm1.scale"] = _c(weights[h + "ln_1.weight"])
        sd[b + "norm1.shift"] = _c(weights[h + "ln_1.bias"])
        sd[b + "norm2.scale"] = _c(weights[h + "ln_2.weight"])
        sd[b + "norm2.shift"] = _c(weights[h + "ln_2.bias"])
    sd["final_norm.scale"] = _c(weights["ln_f.weight"])
    sd["final_norm.shift"] = _c(weights["ln_f.bias"])
    # tied: the same array under both names, as a tied GPTModel's state_dict has it
    sd["out_head.weight"] = sd["tok_emb.weight"] if cfg["tie_embeddings"] else _c(weights["lm_head.weight"])
    return sd


def state_dict_to_hf(sd: Mapping[str, Any], cfg: Mapping[str, Any]) -> OrderedDict[str, np.ndarray]:
    """A `GPTModel(cfg)` state_dict -> Hugging Face `GPT2LMHeadModel` weights (the inverse of `hf_to_state_dict`).

    Names get the "transformer." prefix; linear weights are transposed to
    Conv1D's (in, out); W_query / W_key / W_value are concatenated into c_attn
    (with a zero bias when `qkv_bias` is False, which computes the same).
    "lm_head.weight" is included only for an untied model: for a tied one
    transformers stores only transformer.wte.weight and ties lm_head to it on
    load. `att.mask` entries are optional and not exported (HF builds its own).
    Returns new C-contiguous arrays; missing, unexpected or misshapen keys
    raise ValueError naming them.
    """
    cfg = _model.validate_config(cfg)
    if not isinstance(sd, Mapping):
        raise TypeError(f"sd must be a mapping of name -> array, got {type(sd).__name__}")
    ours = {key: _as_array(value, key) for key, value in sd.items()}
    optional = {f"trf_blocks.{i}.att.mask" for i in range(cfg["n_layers"])}
    if cfg["tie_embeddings"]:
        optional.add("out_head.weight")
    _check_keys("state_dict does not fit the config", ours, _ours_shapes(cfg), optional)
    if (cfg["tie_embeddings"] and "out_head.weight" in ours and ours["out_head.weight"] is not ours["tok_emb.weight"]
            and not np.array_equal(ours["out_head.weight"], ours["tok_emb.weight"])):
        raise ValueError("out_head.weight differs from tok_emb.weight, but the config ties them (tie_embeddings=True)")

    hf: OrderedDict[str, np.ndarray] = OrderedDict()
    hf["transformer.wte.weight"] = _c(ours["tok_emb.weight"])
    hf["transformer.wpe.weight"] = _c(ours["pos_emb.weight"])
    for i in range(cfg["n_layers"]):
        h, b = f"transformer.h.{i}.", f"trf_blocks.{i}."
        projections = [ours[f"{b}att.{p}.weight"] for p in _QKV]             # 3 x (C, C) as (out, in)
        hf[h + "ln_1.weight"] = _c(ours[b + "norm1.scale"])
        hf[h + "ln_1.bias"] = _c(ours[b + "norm1.shift"])
        w_qkv = np.concatenate([w.T for w in projections], axis=1)           # (C, 3C) = [Wqᵀ | Wkᵀ | Wvᵀ]
        hf[h + "attn.c_attn.weight"] = np.ascontiguousarray(w_qkv)
        if cfg["qkv_bias"]:
            hf[h + "attn.c_attn.bias"] = np.concatenate([ours[f"{b}att.{p}.bias"] for p in _QKV])  # (3C,)
        else:
            hf[h + "attn.c_attn.bias"] = np.zeros(3 * cfg["emb_dim"], dtype=projections[0].dtype)
        hf[h + "attn.c_proj.weight"] = _t(ours[b + "att.out_proj.weight"])
        hf[h + "attn.c_proj.bias"] = _c(ours[b + "att.out_proj.bias"])
        hf[h + "ln_2.weight"] = _c(ours[b + "norm2.scale"])
        hf[h + "ln_2.bias"] = _c(ours[b + "norm2.shift"])
        hf[h + "mlp.c_fc.weight"] = _t(ours[b + "ff.layers.0.weight"])     # (4C, C) -> (C, 4C)
        hf[h + "mlp.c_fc.bias"] = _c(ours[b + "ff.layers.0.bias"])
        hf[h + "mlp.c_proj.weight"] = _t(ours[b + "ff.layers.2.weight"])   # (C, 4C) -> (4C, C)
        hf[h + "mlp.c_proj.bias"] = _c(ours[b + "ff.layers.2.bias"])
    hf["transformer.ln_f.weight"] = _c(ours["final_norm.scale"])
    hf["transformer.ln_f.bias"] = _c(ours["final_norm.shift"])
    if not cfg["tie_embeddings"]:
        hf["lm_head.weight"] = _c(ours["out_head.weight"])
    return hf


# ----------------------------------------------------------------------------- Hugging Face GPT-2: directories

_SAFE_WEIGHTS = "model.safetensors"
_SAFE_INDEX = "model.safetensors.index.json"
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def _read_json_file(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def _read_hf_weights(directory: Path) -> dict[str, np.ndarray]:
    """All weights of a HF model directory: model.safetensors, or the shards its index lists."""
    single, index = directory / _SAFE_WEIGHTS, directory / _SAFE_INDEX
    if single.is_file():
        return dict(_read_safetensors(single, "weights file")[1])
    if index.is_file():
        weight_map = _read_json_file(index, "shard index").get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ValueError(f"{index} has no valid weight_map (name -> shard file)")
        weights: dict[str, np.ndarray] = {}
        for shard in sorted(set(weight_map.values())):
            if Path(shard).name != shard:
                raise ValueError(f"{index} names a shard outside the directory: {shard!r}")
            arrays = _read_safetensors(directory / shard, "weights shard")[1]
            listed = [name for name, file in weight_map.items() if file == shard]
            absent = [name for name in listed if name not in arrays]
            if absent:
                raise ValueError(f"{directory / shard} lacks {', '.join(absent)}, which {index.name} places there")
            weights.update((name, arrays[name]) for name in listed)
        return weights
    pickled = [name for name in _PICKLE_WEIGHTS if (directory / name).exists()]
    if pickled:
        raise ValueError(
            f"{directory} holds only {pickled[0]}: that format is a Python pickle, which numpygpt never "
            "loads (unpickling can run arbitrary code). Convert it to safetensors, e.g. with transformers: "
            "GPT2LMHeadModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)"
        )
    raise FileNotFoundError(f"no {_SAFE_WEIGHTS} or {_SAFE_INDEX} in {directory}")


def load_pretrained(path: PathLike, dtype: Any = None) -> GPTModel:
    """A `GPTModel` from a Hugging Face GPT-2 directory (config.json + model.safetensors).

    Sharded checkpoints (model.safetensors.index.json and its shards) load
    too. The model is built in `dtype`, by default the checkpoint's: float64
    if every weight is float64, else float32 (float16 and bfloat16 are
    widened). Weights load strictly; the model is returned in eval mode, as
    `GPT2LMHeadModel.from_pretrained` does. Building it leaves numpygpt's
    generator untouched. pytorch_model.bin (a pickle) is refused.
    """
    directory = Path(os.fspath(path))
    if not directory.exists():
        raise FileNotFoundError(f"no such model directory: {directory}")
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory; load_pretrained expects a directory "
                                 "holding config.json and model.safetensors")
    hf_config = _read_json_file(directory / "config.json", "config.json")
    if not isinstance(hf_config, dict):
        raise ValueError(f"{directory / 'config.json'} does not hold a JSON object")
    model_type = hf_config.get("model_type")
    if model_type is not None and model_type != "gpt2":
        raise ValueError(f"{directory / 'config.json'} has model_type {model_type!r}; "
                         "numpygpt loads GPT-2 checkpoints only (model_type 'gpt2')")
    try:
        cfg = hf_config_to_cfg(hf_config)
    except ValueError as e:
        raise ValueError(f"{directory / 'config.json'}: {e}") from None
    if dtype is not None and np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    weights = _read_hf_weights(directory)
    dtype = _model_dtype(weights) if dtype is None else np.dtype(dtype)
    try:
        sd = hf_to_state_dict(weights, cfg)
    except ValueError as e:
        raise ValueError(f"{directory}: {e}") from None
    del weights  # the file's arrays; sd holds converted copies
    model = _build_model(cfg, dtype)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def save_pretrained(model: GPTModel, path: PathLike) -> None:
    """Write `model` as a Hugging Face GPT-2 directory that `GPT2LMHeadModel.from_pretrained` loads.

    Creates the directory if needed and writes config.json (see
    `cfg_to_hf_config`) and model.safetensors (weights from `state_dict_to_hf`,
    metadata {"format": "pt"}, which transformers requires), each atomically.
    A tied model stores only transformer.wte.weight, as transformers does.
    """
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(model, "state_dict"):
        raise TypeError(f"save_pretrained needs a GPTModel (with .cfg), got {type(model).__name__}")
    directory = Path(os.fspath(path))
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} exists and is not a directory")
    sd = model.state_dict()
    hf_sd = state_dict_to_hf(sd, cfg)
    directory.mkdir(parents=True, exist_ok=True)
    _write_safetensors(directory / _SAFE_WEIGHTS, hf_sd, {"format": "pt"})
    write_json(directory / "config.json", cfg_to_hf_config(cfg, sd["tok_emb.weight"].dtype))
