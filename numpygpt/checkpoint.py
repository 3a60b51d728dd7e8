"""Training checkpoints: everything needed to resume training exactly, in one safetensors file.

`save_checkpoint(path, model, optimizer, step, extra)` writes it (atomically,
see `files.py`); `load_checkpoint(path, model, optimizer)` reads it back,
checking every byte. A checkpoint holds:

    arrays    "model.<key>"  every entry of model.state_dict(); a weight that is
                             shared (tied out_head.weight / tok_emb.weight) is
                             stored once and its other names recorded as aliases
              "optim.<...>"  the optimizer's state arrays (exp_avg, ...)
              "extra.<...>"  arrays inside `extra`, if any
    metadata  format, format_version, cfg, step, rng_state, model_keys, aliases,
              computed, optimizer (class name and state_dict with arrays replaced
              by references), extra, each as JSON; and crc32: CRC-32 checksums
              of the other entries and of each array (dtype, shape and bytes),
              so damage anywhere in the file is reported rather than loaded

Format version 2 (what numpygpt writes now) leaves out each block's causal
mask `trf_blocks.N.att.mask`, which is triu(ones(T, T), 1) for the config's
context_length (T² numbers per block, 48 MB of a 124M model's checkpoint):
"computed" lists those keys and loading rebuilds them (as O(T) views). Version
1 files store the masks; loading checks each is exactly that causal mask and
refuses the file otherwise, naming the key. Both versions load.

Size budget: before any model is built, the stored config must describe the
stored weights: no more parameters than the file stores numbers, no more
blocks than it stores, and every tensor of exactly the shape the config implies
(`hf.check_budget`, `hf.check_keys`). Metadata JSON may nest at most
`files.MAX_NESTING` levels, on saving (`extra`) and on loading.

JSON alone would turn tuples into lists and integer keys into strings; the
metadata tags those ({"$tuple": [...]}, {"$items": [[key, value], ...]}) and
references arrays as {"$array": name}, so `Optimizer.state_dict()` and `extra`
come back exactly as they were saved. Plain weights files are in `files.py`
(`save_state_dict`), Hugging Face directories in `hf.py`.
"""

from __future__ import annotations

import json
import os
import re
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _checks
from . import random as _random
from .config import listed, short_repr, validate_config
from .files import (PathLike, as_array, check_nesting, corrupt_file_error, loads_json, read_safetensors,
                    stored_dtype, write_safetensors)
from .functional import causal_mask
from .hf import check_budget, check_keys, state_dict_shapes
from .model import GPTModel, build_model
from .nn import Module

if TYPE_CHECKING:
    from .optim import Optimizer

__all__ = ["FORMAT", "FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "load_model"]

FORMAT = "numpygpt.checkpoint"
FORMAT_VERSION = 2
_READABLE_VERSIONS = ("1", "2")
_MASK_KEY = re.compile(r"trf_blocks\.\d+\.att\.mask")

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


# ----------------------------------------------------------------------------- checksums


def _crc32(array: np.ndarray) -> int:
    """CRC-32 of an array's dtype, shape and bytes."""
    described = zlib.crc32(f"{array.dtype.str}{array.shape}".encode())
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"), described)


def _metadata_crc32(metadata: Mapping[str, str]) -> int:
    """CRC-32 of every metadata entry except "crc32" itself."""
    return zlib.crc32(_dumps(sorted((k, v) for k, v in metadata.items() if k != "crc32")).encode())


def _verify_checksums(path: str, metadata: Mapping[str, str], arrays: Mapping[str, np.ndarray]) -> None:
    """ValueError naming the path unless the metadata and every array match their stored CRC-32."""
    try:
        crc = json.loads(metadata["crc32"])
        crc_metadata, crc_arrays = crc["metadata"], crc["arrays"]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise corrupt_file_error(path, "the checksums are missing or unreadable") from None
    if crc_metadata != _metadata_crc32(metadata):
        raise corrupt_file_error(path, "checksum mismatch in the metadata")
    if not isinstance(crc_arrays, dict) or set(crc_arrays) != set(arrays):
        raise corrupt_file_error(path, "the stored arrays are not the ones the checksums list")
    bad = [name for name, array in arrays.items() if _crc32(array) != crc_arrays[name]]
    if bad:
        raise corrupt_file_error(path, f"checksum mismatch in {', '.join(bad)}")


# ----------------------------------------------------------------------------- writing


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
    step = _checks.integer(step, "step", minimum=0)
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")
    if extra is not None:
        check_nesting(extra, "extra")
    cfg = getattr(model, "cfg", None)
    context = cfg.get("context_length") if isinstance(cfg, Mapping) else None  # T of the causal masks

    arrays: dict[str, np.ndarray] = {}
    model_keys: list[str] = []
    aliases: dict[str, str] = {}
    computed: list[str] = []  # the causal masks, rebuilt on loading rather than stored
    first_name: dict[int, tuple[str, np.ndarray]] = {}  # id(array) -> (the first key that holds it, array)
    for key, value in model.state_dict().items():
        array = as_array(value, f"model.{key}")
        model_keys.append(key)
        if _MASK_KEY.fullmatch(key) and _checks.is_integer(context) and is_causal_mask(array, context):
            computed.append(key)
            continue
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

    try:
        cfg_json = _dumps(_to_json(dict(cfg), "cfg", {})) if cfg is not None else "null"
    except TypeError as e:
        raise TypeError(f"model.cfg cannot be stored as JSON: {e}") from None
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "cfg": cfg_json,
        "step": str(step),
        "rng_state": _dumps(dict(rng_state) if rng_state is not None else _random.get_rng_state()),
        "model_keys": _dumps(model_keys),
        "aliases": _dumps(aliases),
        "computed": _dumps(computed),
        "optimizer": _dumps(optimizer_meta),
        "extra": _dumps(extra_json),
    }
    metadata["crc32"] = _dumps({"metadata": _metadata_crc32(metadata),
                                "arrays": {name: _crc32(a) for name, a in arrays.items()}})
    write_safetensors(path, arrays, metadata)


# ----------------------------------------------------------------------------- reading


_FIELD_TYPES = {"cfg": (dict, type(None)), "rng_state": (dict,), "model_keys": (list,), "aliases": (dict,),
                "computed": (list,), "optimizer": (dict, type(None)), "extra": (dict, type(None))}


def _metadata_fields(path: str, metadata: Mapping[str, str]) -> dict[str, Any]:
    """The JSON metadata entries, parsed and of the right types; ValueError naming the field otherwise."""
    version = metadata.get("format_version")
    fields: dict[str, Any] = {"computed": []}  # version 1 stores every array
    keys = ("cfg", "step", "rng_state", "model_keys", "aliases", "optimizer", "extra")
    for key in keys + (("computed",) if version != "1" else ()):
        if key not in metadata:
            raise corrupt_file_error(path, f"the metadata has no {key!r} entry")
        try:
            fields[key] = loads_json(metadata[key], f"the metadata entry {key!r}")
        except ValueError as e:
            raise corrupt_file_error(path, str(e)) from None
        wanted = _FIELD_TYPES.get(key)
        if wanted and not isinstance(fields[key], wanted):
            names = " or ".join("null" if t is type(None) else f"a JSON {t.__name__}" for t in wanted)
            raise corrupt_file_error(path, f"the metadata entry {key!r} must be {names}, "
                                           f"got {short_repr(fields[key])}")
    try:
        fields["step"] = _checks.integer(fields["step"], "the stored step", minimum=0)
    except ValueError as e:
        raise corrupt_file_error(path, str(e)) from None
    strings = [(key, v) for key in ("model_keys", "computed") for v in fields[key] if not isinstance(v, str)]
    strings += [("aliases", v) for item in fields["aliases"].items() for v in item if not isinstance(v, str)]
    if strings:
        raise corrupt_file_error(path, f"the metadata entry {strings[0][0]!r} holds {short_repr(strings[0][1])}, "
                                       "not a key name")
    optimizer = fields["optimizer"]
    if optimizer is not None and (not isinstance(optimizer.get("class"), str)
                                  or not isinstance(optimizer.get("state_dict"), dict)):
        raise corrupt_file_error(path, "the metadata entry 'optimizer' must hold a class name and a state_dict")
    return fields


def _checkpoint_contents(path: str, metadata: Mapping[str, str], arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Parse and check a checkpoint's metadata; ValueError naming the path if anything is off."""
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{path} is a safetensors file but not a numpygpt training checkpoint (no format={FORMAT!r} "
            "in its metadata); for plain weights use load_state_dict_file or GPTModel.from_pretrained"
        )
    version = metadata.get("format_version")
    if version not in _READABLE_VERSIONS:
        raise ValueError(f"{path} has checkpoint format version {short_repr(version)}; "
                         f"this numpygpt reads versions {', '.join(_READABLE_VERSIONS)}")
    _verify_checksums(path, metadata, arrays)
    fields = _metadata_fields(path, metadata)

    keys, aliases, computed = fields["model_keys"], fields["aliases"], set(fields["computed"])
    state_dict: OrderedDict[str, np.ndarray | None] = OrderedDict()
    for key in keys:
        if key in computed:
            state_dict[key] = None  # a causal mask: rebuilt from the config (see _fill_masks)
            continue
        stored = f"model.{aliases.get(key, key)}"
        if stored not in arrays:
            raise corrupt_file_error(path, f"the array for {key[:120]} ({stored[:120]}) is missing")
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
        raise corrupt_file_error(path, f"the metadata refers to something that is not there "
                                       f"({short_repr(e)})") from None
    if not isinstance(fields["cfg"], (dict, type(None))) or not isinstance(fields["extra"], (dict, type(None))):
        raise corrupt_file_error(path, "the metadata entries 'cfg' and 'extra' must each be a JSON object or null")
    return fields


def is_causal_mask(array: np.ndarray, context_length: int) -> bool:
    """Whether `array` is exactly triu(ones(T, T), 1) for T = `context_length`, compared a few
    rows at a time (so no (T, T) temporary is made)."""
    T = context_length
    if array.shape != (T, T):
        return False
    expected = causal_mask(T, np.float32)
    rows = max(1, 2**22 // max(T, 1))  # about 4 million entries per comparison
    return all(np.array_equal(array[i:i + rows], expected[i:i + rows]) for i in range(0, T, rows))


def _check_fits(path: str, cfg: dict[str, Any] | None, state_dict: OrderedDict[str, np.ndarray | None],
                arrays: Mapping[str, np.ndarray]) -> None:
    """Before a model is built: the stored config describes the stored weights (the size budget,
    then every key and shape), and every stored causal mask is exactly the config's. The masks
    to rebuild are filled in as O(T) views."""
    if cfg is None:
        if any(value is None for value in state_dict.values()):
            raise corrupt_file_error(path, "it lists computed causal masks but stores no config to compute them")
        return
    T = cfg["context_length"]
    stored = {name: a.shape for name, a in arrays.items() if name.startswith("model.")}
    check_budget(cfg, stored, f"{path}: the stored config does not fit the stored weights")
    for key, value in state_dict.items():
        if value is None:
            if not _MASK_KEY.fullmatch(key):
                raise corrupt_file_error(path, f"it lists {key[:120]} as computed, but only causal masks are")
            state_dict[key] = causal_mask(T)
    check_keys(f"{path}: the stored weights do not fit the stored config", state_dict, state_dict_shapes(cfg),
               optional=set())
    bad = [key for key, value in state_dict.items() if _MASK_KEY.fullmatch(key) and not is_causal_mask(value, T)]
    if bad:
        raise ValueError(f"{path}: {listed(bad)} is not the causal mask triu(ones({T}, {T}), 1) of the "
                         f"config's context_length {T}; numpygpt refuses a changed mask")


def _fill_masks(model: Module, state_dict: OrderedDict[str, Any]) -> None:
    """Put the model's own causal masks (O(T) views) in place of the stored or rebuilt ones, so loading
    shares them rather than copying a (T, T) array into each block."""
    own = model.state_dict()
    for key in state_dict:
        if _MASK_KEY.fullmatch(key) and key in own and own[key].shape == state_dict[key].shape:
            state_dict[key] = causal_mask(own[key].shape[0], own[key].dtype)


_NUMBER_SETTINGS = ("lr", "weight_decay", "eps", "momentum", "dampening", "initial_lr")


def _check_optimizer_settings(path: str, saved: Mapping[str, Any] | None) -> None:
    """ValueError naming a stored optimizer setting that is not a number (`lr: null`, `betas: "x"`)."""
    if saved is None:
        return
    groups = saved["state_dict"].get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise corrupt_file_error(path, f"the optimizer's param_groups must be a list of dicts, got {short_repr(groups)}")
    for i, group in enumerate(groups):
        for key in _NUMBER_SETTINGS:
            if key in group and not _is_finite_number(group[key]):
                raise corrupt_file_error(path, f"the optimizer's param_groups[{i}][{key!r}] must be a finite "
                                               f"number, got {short_repr(group[key])}")
        betas = group.get("betas", (0.9, 0.999))
        if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(map(_is_finite_number, betas)):
            raise corrupt_file_error(path, f"the optimizer's param_groups[{i}]['betas'] must be two numbers, "
                                           f"got {short_repr(betas)}")


def _is_finite_number(value: Any) -> bool:
    return _checks.is_number(value) and bool(np.isfinite(value))


def _model_for(path: str, model: Module | None, cfg: dict[str, Any] | None,
               state_dict: Mapping[str, np.ndarray]) -> Module:
    """The model to load into: `model`, if its config fits the stored one (dropout may differ),
    else a GPTModel built from the stored config in the stored dtype."""
    if model is None:
        if cfg is None:
            raise ValueError(f"{path} stores no model config; pass the model to load into")
        weights = {k: a for k, a in state_dict.items() if not _MASK_KEY.fullmatch(k)}  # the masks are rebuilt
        return build_model(cfg, stored_dtype(weights))
    if cfg is not None and getattr(model, "cfg", None) is not None:
        differ = [k for k in sorted(set(cfg) | set(model.cfg)) if k != "drop_rate" and cfg.get(k) != model.cfg.get(k)]
        if differ:
            raise ValueError(
                f"{path}: the model's config differs from the checkpoint's in "
                + ", ".join(f"{k} (model {model.cfg.get(k)!r}, checkpoint {cfg.get(k)!r})" for k in differ)
            )
    return model


def _check_optimizer(path: str, optimizer: Optimizer | None, saved: Mapping[str, Any] | None) -> None:
    """ValueError unless the checkpoint holds state for an optimizer of `optimizer`'s class."""
    if optimizer is None:
        return
    if saved is None:
        raise ValueError(f"{path} holds no optimizer state, but an optimizer was given")
    if saved["class"] != type(optimizer).__name__:
        raise ValueError(f"{path} holds {saved['class']} state, which cannot be loaded into {type(optimizer).__name__}")


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
    state_dict that does not fit. The stored config is checked against the
    stored tensors (the size budget in the module docstring) before a model is
    built. Either everything loads or nothing changes.
    """
    path = os.fspath(path)
    metadata, arrays = read_safetensors(path, "checkpoint")
    contents = _checkpoint_contents(path, metadata, arrays)
    state_dict, stored_cfg = contents["state_dict"], contents["cfg"]

    cfg = None
    if stored_cfg is not None:
        try:
            cfg = validate_config(stored_cfg)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: the stored model config is invalid: {e}") from None
    _check_fits(path, cfg, state_dict, arrays)  # before a model of the stored config's size is built
    saved_optimizer = contents["optimizer"]
    _check_optimizer_settings(path, saved_optimizer)
    model = _model_for(path, model, cfg, state_dict)
    _fill_masks(model, state_dict)
    _check_optimizer(path, optimizer, saved_optimizer)

    rng_state = contents["rng_state"]
    if restore_rng and isinstance(rng_state, dict) and rng_state.get("bit_generator") == "PCG64":
        warnings.warn(f"{path} was written by numpygpt 0.1, whose generator (PCG64) was not PyTorch's: "
                      "its random state is not restored (everything else loads as it was; pass "
                      "restore_rng=False to say so and silence this)", UserWarning, stacklevel=2)
        restore_rng = False
    if restore_rng:
        try:
            _random.Generator().set_state(rng_state)
        except (TypeError, ValueError) as e:
            raise corrupt_file_error(path, f"the stored generator state is invalid ({e})") from None

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


def load_model(weights: PathLike | None = None, checkpoint: PathLike | None = None,
               restore_rng: bool = False, follow_symlinks: bool = False) -> Module:
    """A trained GPT from a Hugging Face GPT-2 directory (`weights`) or a numpygpt training checkpoint,
    as the commands' `--weights DIR` / `--checkpoint FILE` give it (exactly one of the two).
    `follow_symlinks` lets the directory's files link outside it (see `hf.py`)."""
    if (weights is None) == (checkpoint is None):
        raise ValueError("give either weights (a Hugging Face GPT-2 directory) or checkpoint (a numpygpt checkpoint)")
    if weights is not None:
        return GPTModel.from_pretrained(weights, follow_symlinks=follow_symlinks)
    return load_checkpoint(checkpoint, restore_rng=restore_rng)["model"]
