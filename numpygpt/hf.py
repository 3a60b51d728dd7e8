"""Hugging Face GPT-2: configs, weights and model directories, with no PyTorch.

| function | converts / reads / writes |
|---|---|
| `hf_config_to_cfg`, `cfg_to_hf_config` | GPT2Config dict (config.json) <-> numpygpt config |
| `hf_to_state_dict`, `state_dict_to_hf` | `GPT2LMHeadModel` weights <-> `GPTModel` weights |
| `read_directory`, `write_directory` | a model directory: config.json + model.safetensors (or shards) |

`GPTModel.from_pretrained(path)` and `model.save_pretrained(path)` are built
on `read_directory` and `write_directory`.

Hugging Face's GPT-2 keeps its linear layers as `Conv1D` with weight (in, out),
computing x @ W + b, and fuses the query, key and value projections into one
`c_attn` of width 3C; numpygpt's `Linear` keeps weight (out, in) as PyTorch's
`nn.Linear` does. One table, `_WEIGHTS`, pairs every numpygpt weight with its
Hugging Face counterpart, its shape, whether it is stored transposed and which
third of c_attn it is; both converters and their shape checks are driven by
it, so a new weight is one new line there. The weights are read from
safetensors files with NumPy; a pytorch_model.bin (a pickle) is refused.

Size budget. A file's config is checked against its tensors before any model
is built: `check_budget` refuses a config whose model would hold more
parameters than the file(s) store numbers (a tied lm_head and the causal
masks, which numpygpt builds itself, may be absent), or more blocks than the
file stores, naming the config's sizes. Then every stored tensor must have
exactly the shape the config implies (`check_keys`). So loading a directory
never allocates much more than its weights: a config.json claiming
n_layer 10**8 or n_positions 10**6 beside a small model.safetensors is a
ValueError at once. The causal masks are O(T) views (`functional.causal_mask`).

Symlinks. config.json, model.safetensors, the index and its shards may be
symlinks only into the model directory itself or, for a Hugging Face hub cache
snapshot (`models--ORG--NAME/snapshots/REV/`), into that same repository's
`blobs/` directory, which is where the hub's snapshot links point. A link
anywhere else is a ValueError naming the file and its target, unless
`read_directory(path, follow_symlinks=True)` (or
`GPTModel.from_pretrained(path, follow_symlinks=True)`) allows it.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import _checks
from .config import listed, short_repr, validate_config
from .functional import causal_mask
from .files import PathLike, as_array, read_json, read_safetensors, stored_dtype, write_json, write_safetensors

__all__ = [
    "hf_config_to_cfg",
    "cfg_to_hf_config",
    "hf_to_state_dict",
    "state_dict_to_hf",
    "read_directory",
    "write_directory",
    "parameter_count",
    "check_budget",
    "check_keys",
    "state_dict_shapes",
]

# ----------------------------------------------------------------------------- configs

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


_HF_SIZES = ("vocab_size", "n_positions", "n_embd", "n_head", "n_layer")
_HF_FLAGS = ("scale_attn_weights", "add_cross_attention", "reorder_and_upcast_attn",
             "scale_attn_by_inverse_layer_idx", "tie_word_embeddings")




def _check_hf_types(hf: Mapping[str, Any]) -> None:
    """TypeError naming the first config.json value of the wrong type ("n_embd": "768", 7.5, true, a list ...)."""
    def wrong(key: str, wanted: str) -> TypeError:
        return TypeError(f"GPT-2 config: {key} must be {wanted}, got {short_repr(hf[key])}")

    for key in _HF_SIZES:
        if not _checks.is_integer(hf[key]):
            raise wrong(key, "a positive integer")
    if hf["n_inner"] is not None and not _checks.is_integer(hf["n_inner"]):
        raise wrong("n_inner", "an integer or null")
    for key in _HF_FLAGS:
        if not isinstance(hf[key], bool):
            raise wrong(key, "true or false")
    if not isinstance(hf["activation_function"], str):
        raise wrong("activation_function", "a string")
    if not _checks.is_number(hf["layer_norm_epsilon"]):
        raise wrong("layer_norm_epsilon", "a number")
    if hf.get("resid_pdrop") is not None and not _checks.is_number(hf["resid_pdrop"]):
        raise wrong("resid_pdrop", "a number or null")


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
        raise ValueError(f"config has model_type {short_repr(model_type)}; "
                         "numpygpt converts GPT-2 configs only (model_type 'gpt2')")
    missing = [k for k in _HF_SIZES if hf.get(k) is None]
    if missing:
        raise ValueError(f"GPT-2 config is missing {', '.join(missing)}")
    _check_hf_types(hf)

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
        return validate_config(cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(f"GPT-2 config gives an invalid numpygpt config: {e}") from None


def cfg_to_hf_config(cfg: Mapping[str, Any], dtype: Any = np.float32) -> dict[str, Any]:
    """A GPT2Config-compatible dict (what config.json holds) for a numpygpt config.

    The three dropout rates all get `drop_rate`; the activation is "gelu_new";
    bos/eos are 50256 (GPT-2's <|endoftext|>) when the vocabulary has that id,
    else None. `dtype` is recorded as "dtype" (transformers 5) and "torch_dtype"
    (older versions).
    """
    cfg = validate_config(cfg)
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


# ----------------------------------------------------------------------------- the name map


class _Weight(NamedTuple):
    """One numpygpt weight and where Hugging Face keeps it."""

    ours: str                   # the GPTModel state_dict name; {i} is the block number
    hf: str | None              # the HF name without "transformer."; None for the causal mask numpygpt builds
    shape: str                  # numpygpt's shape in V (vocab_size), T (context_length), C (emb_dim)
    conv1d: bool = False        # HF stores the transpose: Conv1D weight (in, out), Linear weight (out, in)
    qkv: int | None = None      # its third of the fused c_attn: 0 query, 1 key, 2 value
    only_if: str | None = None  # the config flag without which numpygpt has no such weight


# In GPTModel.state_dict() order.
_WEIGHTS = (
    #       numpygpt name                         Hugging Face name             shape   Conv1D c_attn only with
    _Weight("tok_emb.weight",                     "wte.weight",                 "V C"),
    _Weight("pos_emb.weight",                     "wpe.weight",                 "T C"),
    _Weight("trf_blocks.{i}.att.mask",            None,                         "T T"),
    _Weight("trf_blocks.{i}.att.W_query.weight",  "h.{i}.attn.c_attn.weight",   "C C",  True,  0),
    _Weight("trf_blocks.{i}.att.W_query.bias",    "h.{i}.attn.c_attn.bias",     "C",    False, 0, "qkv_bias"),
    _Weight("trf_blocks.{i}.att.W_key.weight",    "h.{i}.attn.c_attn.weight",   "C C",  True,  1),
    _Weight("trf_blocks.{i}.att.W_key.bias",      "h.{i}.attn.c_attn.bias",     "C",    False, 1, "qkv_bias"),
    _Weight("trf_blocks.{i}.att.W_value.weight",  "h.{i}.attn.c_attn.weight",   "C C",  True,  2),
    _Weight("trf_blocks.{i}.att.W_value.bias",    "h.{i}.attn.c_attn.bias",     "C",    False, 2, "qkv_bias"),
    _Weight("trf_blocks.{i}.att.out_proj.weight", "h.{i}.attn.c_proj.weight",   "C C",  True),
    _Weight("trf_blocks.{i}.att.out_proj.bias",   "h.{i}.attn.c_proj.bias",     "C"),
    _Weight("trf_blocks.{i}.ff.layers.0.weight",  "h.{i}.mlp.c_fc.weight",      "4C C", True),
    _Weight("trf_blocks.{i}.ff.layers.0.bias",    "h.{i}.mlp.c_fc.bias",        "4C"),
    _Weight("trf_blocks.{i}.ff.layers.2.weight",  "h.{i}.mlp.c_proj.weight",    "C 4C", True),
    _Weight("trf_blocks.{i}.ff.layers.2.bias",    "h.{i}.mlp.c_proj.bias",      "C"),
    _Weight("trf_blocks.{i}.norm1.scale",         "h.{i}.ln_1.weight",          "C"),
    _Weight("trf_blocks.{i}.norm1.shift",         "h.{i}.ln_1.bias",            "C"),
    _Weight("trf_blocks.{i}.norm2.scale",         "h.{i}.ln_2.weight",          "C"),
    _Weight("trf_blocks.{i}.norm2.shift",         "h.{i}.ln_2.bias",            "C"),
    _Weight("final_norm.scale",                   "ln_f.weight",                "C"),
    _Weight("final_norm.shift",                   "ln_f.bias",                  "C"),
    _Weight("out_head.weight",                    "lm_head.weight",             "V C"),
)
# transformers lists a block's weights ln_1, attn, ln_2, mlp; GPTModel lists att, ff, norm1, norm2
_HF_BLOCK_ORDER = ("ln_1", "attn", "ln_2", "mlp")
# GPT2LMHeadModel's weights sit in its GPT2Model, `transformer`, except lm_head
_HF_PREFIX = "transformer."
# HF's per-layer causal-mask buffers (older checkpoints save them); numpygpt builds its own.
_HF_IGNORED = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")
# a block's Conv1D weights, e.g. "transformer.h.0.attn.c_attn.weight": read column-major, so their transposes are views
_CONV1D_WEIGHT = re.compile(rf"({re.escape(_HF_PREFIX)})?h\.\d+\.(" + "|".join(sorted(
    {re.escape(w.hf.split(".", 2)[2]) for w in _WEIGHTS if w.conv1d and w.hf})) + ")")


def _rows(cfg: Mapping[str, Any], hf_order: bool = False) -> list[_Weight]:
    """The table for `cfg`: the block rows once per block with {i} filled in, in
    numpygpt's order or (with `hf_order`) in transformers' order."""
    block = [w for w in _WEIGHTS if "{i}" in w.ours]
    first = block[0]
    if hf_order:
        block.sort(key=lambda w: _HF_BLOCK_ORDER.index(w.hf.split(".")[2]) if w.hf else -1)  # stable
    rows: list[_Weight] = []
    for w in _WEIGHTS:
        if "{i}" not in w.ours:
            rows.append(w)
        elif w is first:
            rows += [b._replace(ours=b.ours.format(i=i), hf=b.hf and b.hf.format(i=i))
                     for i in range(cfg["n_layers"]) for b in block]
    return rows


def _ours(rows: list[_Weight], cfg: Mapping[str, Any]) -> list[_Weight]:
    """The rows numpygpt has for `cfg` (the q/k/v biases only with qkv_bias)."""
    return [w for w in rows if w.only_if is None or cfg[w.only_if]]


def _shape(w: _Weight, cfg: Mapping[str, Any], hf: bool = False) -> tuple[int, ...]:
    """A row's shape in numpygpt, or (with `hf`) in Hugging Face: transposed for Conv1D, 3 thirds for c_attn."""
    C = cfg["emb_dim"]
    sizes = {"V": cfg["vocab_size"], "T": cfg["context_length"], "C": C, "4C": 4 * C}
    shape = tuple(sizes[d] for d in w.shape.split())
    if hf and w.conv1d:
        shape = shape[::-1]
    if hf and w.qkv is not None:
        shape = shape[:-1] + (3 * shape[-1],)
    return shape


def check_keys(what: str, given: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]],
                optional: set[str], names: Mapping[str, str] | None = None) -> None:
    """ValueError naming the missing, unexpected or misshapen keys (`names` maps to the caller's
    spelling); each list shows its first ten entries, then "... and N more"."""
    names = names or {}
    missing = [k for k in expected if k not in given and k not in optional]
    unexpected = [names.get(k, k) for k in given if k not in expected]
    misshapen = [f"{names.get(k, k)}: shape {tuple(a.shape)}, expected {expected[k]}"
                 for k, a in given.items() if k in expected and tuple(a.shape) != expected[k]]
    problems = []
    if missing:
        problems.append("missing keys: " + listed(missing))
    if unexpected:
        problems.append("unexpected keys: " + listed(unexpected))
    if misshapen:
        problems.append("wrong shapes: " + listed(misshapen, sep="; "))
    if problems:
        raise ValueError(f"{what}:\n  " + "\n  ".join(problems))


# ----------------------------------------------------------------------------- the size budget


def parameter_count(cfg: Mapping[str, Any]) -> int:
    """The parameters of `GPTModel(cfg)`, worked out from the table alone (no loop over the blocks):
    each row's shape, times n_layers for a block's row; a tied out_head and the masks count 0."""
    cfg = validate_config(cfg)
    total = 0
    for w in _ours(list(_WEIGHTS), cfg):
        if w.hf is None or (w.ours == "out_head.weight" and cfg["tie_embeddings"]):
            continue           # the causal mask is a buffer numpygpt builds; a tied head is tok_emb's array
        total += int(np.prod(_shape(w, cfg), dtype=object)) * (cfg["n_layers"] if "{i}" in w.ours else 1)
    return total


_BLOCK_NUMBER = re.compile(r"(?:^|\.)(?:trf_blocks|h)\.(\d+)\.")


def check_budget(cfg: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], what: str) -> None:
    """ValueError unless the model `cfg` describes fits in what a file stores (`shapes`: name -> shape).

    The budget: the model may hold no more parameters than the file stores numbers
    (`parameter_count(cfg)` <= the sum of the stored sizes), and no more blocks than
    the names `trf_blocks.N.` / `h.N.` number. Checked with arithmetic only, before
    anything the size of the model is allocated, so a config that claims 10**8
    layers or a context of 10**6 beside a small file fails at once, naming its sizes.
    """
    cfg = validate_config(cfg)
    sizes = ", ".join(f"{k} {cfg[k]:,}" for k in ("vocab_size", "context_length", "emb_dim", "n_layers"))
    _check_block_count(cfg, shapes, what)
    need = parameter_count(cfg)
    stored = sum(int(np.prod(shape, dtype=object)) for shape in shapes.values())
    if need > stored:
        unit = next(u for u in ("TiB", "GiB", "MiB", "KiB", "B") if need * 4 >= 2 ** (10 * "BKMGT".index(u[0])))
        raise ValueError(f"{what}: the config ({sizes}) describes {need:,} parameters "
                         f"({need * 4 / 2 ** (10 * 'BKMGT'.index(unit[0])):,.1f} {unit} in float32), "
                         f"but the file stores only {stored:,} "
                         "numbers; the config does not describe these weights")


def state_dict_shapes(cfg: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """name -> shape of every entry of `GPTModel(cfg).state_dict()`, masks included, from the table."""
    cfg = validate_config(cfg)
    return {w.ours: _shape(w, cfg) for w in _ours(_rows(cfg), cfg)}


def _t(array: np.ndarray, rows: int = 16) -> np.ndarray:
    """The transpose as a new C-contiguous array: Conv1D (in, out) <-> Linear (out, in); the same as
    `np.ascontiguousarray(array.T)`, written `rows` input rows at a time, so that each step's band
    of columns stays in cache (about 3x faster for GPT-2's weights than one whole transpose)."""
    if array.ndim != 2:
        return np.ascontiguousarray(array.T)
    out = np.empty(array.shape[::-1], dtype=array.dtype)
    for i in range(0, array.shape[0], rows):
        out[:, i:i + rows] = array[i:i + rows].T
    return out


def _c(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy."""
    return np.array(array, order="C", copy=True)


# ----------------------------------------------------------------------------- weights


def _hf_arrays(hf_sd: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """HF weights by name without "transformer." (mask buffers dropped), and each name as the caller spelled it."""
    if not isinstance(hf_sd, Mapping):
        raise TypeError(f"hf_sd must be a mapping of name -> array, got {type(hf_sd).__name__}")
    weights: dict[str, np.ndarray] = {}
    spelled: dict[str, str] = {}
    for key, value in hf_sd.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r}")
        name = key.removeprefix(_HF_PREFIX)
        if _HF_IGNORED.fullmatch(name):
            continue
        if name in weights:
            raise ValueError(f"Hugging Face state_dict has {name} twice: {spelled[name]} and {key}")
        weights[name], spelled[name] = as_array(value, key), key
    return weights, spelled


def _check_block_count(cfg: Mapping[str, Any], names: Any, what: str) -> None:
    """ValueError when the config has more blocks than `names` number: the key checks that follow
    loop over the config's blocks, so a config claiming 10**8 of them must stop here."""
    blocks = {int(m.group(1)) for name in names if (m := _BLOCK_NUMBER.search(name))}
    if cfg["n_layers"] > len(blocks):
        raise ValueError(f"{what}: the config has n_layers {cfg['n_layers']:,}, but the weights hold "
                         f"{len(blocks):,} block(s); the config does not describe these weights")


def hf_to_state_dict(hf_sd: Mapping[str, Any], cfg: Mapping[str, Any],
                     mask_dtype: Any = None, copy: bool = True) -> OrderedDict[str, np.ndarray]:
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
    Arrays keep their dtype; values may be ndarrays or CPU torch tensors. The masks
    are O(T) read-only views in `mask_dtype` (by default wte's float dtype, else
    float32): give the dtype of the model they go into, so loading shares them.
    The result never shares memory with `hf_sd` unless `copy=False`: then arrays
    that need no transpose are passed on as they are (if C-contiguous), and a
    Conv1D weight stored in Fortran order as its transpose, a C-contiguous view,
    for a caller whose arrays are its own, fresh from a file (`read_directory`
    reads the Conv1D weights column-major for this).
    """
    cfg = validate_config(cfg)
    weights, spelled = _hf_arrays(hf_sd)
    _check_block_count(cfg, weights, "Hugging Face GPT-2 weights do not fit the config")
    rows, hf_rows = _ours(_rows(cfg), cfg), _rows(cfg, hf_order=True)
    # HF weights with no numpygpt counterpart under this config (c_attn.bias without qkv_bias): zeros, if present
    used = {w.hf for w in rows}
    unused = {w.hf: w.only_if for w in hf_rows if w.hf and w.hf not in used}
    optional = set(unused) | ({"lm_head.weight"} if cfg["tie_embeddings"] else set())
    expected = {w.hf: _shape(w, cfg, hf=True) for w in hf_rows if w.hf}
    check_keys("Hugging Face GPT-2 weights do not fit the config", weights, expected, optional, spelled)

    wte = weights["wte.weight"]
    if cfg["tie_embeddings"] and "lm_head.weight" in weights and not np.array_equal(weights["lm_head.weight"], wte):
        raise ValueError("lm_head.weight differs from wte.weight, but the config ties them "
                         "(tie_word_embeddings / tie_embeddings); load it with tie_embeddings=False")
    for name, flag in unused.items():
        if name in weights and np.any(weights[name]):
            raise ValueError(f"{spelled[name]} is not zero, but the config has {flag}=False")
    if mask_dtype is None:
        mask_dtype = wte.dtype if wte.dtype.kind == "f" else np.dtype(np.float32)

    C = cfg["emb_dim"]
    sd: OrderedDict[str, np.ndarray] = OrderedDict()
    for w in rows:
        if w.hf is None:       # the causal mask: a 1 above the diagonal marks a future token
            sd[w.ours] = causal_mask(cfg["context_length"], mask_dtype)
        elif w.hf == "lm_head.weight" and cfg["tie_embeddings"]:
            sd[w.ours] = sd["tok_emb.weight"]  # tied: the same array under both names, as in a tied GPTModel
        else:
            array = weights[w.hf]
            if w.qkv is not None:
                array = array[..., w.qkv * C:(w.qkv + 1) * C]  # its third of c_attn: x @ c_attn.weight = [q | k | v]
            if w.conv1d:  # a view if read column-major (`read_directory`), else a transposed copy
                sd[w.ours] = array.T if not copy and array.T.flags.c_contiguous else _t(array)
            else:
                sd[w.ours] = _c(array) if copy else np.ascontiguousarray(array)
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
    cfg = validate_config(cfg)
    if not isinstance(sd, Mapping):
        raise TypeError(f"sd must be a mapping of name -> array, got {type(sd).__name__}")
    ours = {key: as_array(value, key) for key, value in sd.items()}
    rows = _ours(_rows(cfg), cfg)
    optional = {w.ours for w in rows if w.hf is None} | ({"out_head.weight"} if cfg["tie_embeddings"] else set())
    check_keys("state_dict does not fit the config", ours, state_dict_shapes(cfg), optional)
    if (cfg["tie_embeddings"] and "out_head.weight" in ours and ours["out_head.weight"] is not ours["tok_emb.weight"]
            and not np.array_equal(ours["out_head.weight"], ours["tok_emb.weight"])):
        raise ValueError("out_head.weight differs from tok_emb.weight, but the config ties them (tie_embeddings=True)")

    parts: dict[str, list[_Weight]] = {}  # HF name -> the numpygpt rows it is made of, in transformers' order
    for w in _rows(cfg, hf_order=True):
        if w.hf is not None and not (w.hf == "lm_head.weight" and cfg["tie_embeddings"]):
            parts.setdefault(w.hf, []).append(w)
    hf: OrderedDict[str, np.ndarray] = OrderedDict()
    for name, group in parts.items():
        key = name if name == "lm_head.weight" else _HF_PREFIX + name
        present = [w for w in group if w.ours in ours]
        if not present:        # a bias numpygpt does not have (c_attn without qkv_bias): zeros compute the same
            weight = hf[key.removesuffix("bias") + "weight"]
            hf[key] = np.zeros(_shape(group[0], cfg, hf=True), dtype=weight.dtype)
        elif len(present) == 1:
            w = present[0]
            hf[key] = _t(ours[w.ours]) if w.conv1d else _c(ours[w.ours])
        else:                  # c_attn: weight (C, 3C) = [Wqᵀ | Wkᵀ | Wvᵀ], bias (3C,) = [bq | bk | bv]
            parts_in_hf = [ours[w.ours].T if w.conv1d else ours[w.ours] for w in present]
            hf[key] = np.ascontiguousarray(np.concatenate(parts_in_hf, axis=-1))  # concatenating .T gives F order
    return hf


# ----------------------------------------------------------------------------- model directories

_SAFE_WEIGHTS = "model.safetensors"
_SAFE_INDEX = "model.safetensors.index.json"
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def _allowed_roots(directory: Path) -> list[Path]:
    """Where the files of `directory` may point: inside it, and for a hub cache snapshot
    (models--ORG--NAME/snapshots/REV) inside that repository's blobs/ directory."""
    real = directory.resolve()
    roots = [real]
    if real.parent.name == "snapshots" and real.parent.parent.name.startswith("models--"):
        roots.append(real.parent.parent / "blobs")
    return roots


def _check_link(directory: Path, file: Path, follow_symlinks: bool) -> Path:
    """`file`, unless it is a symlink that leads outside the directory (see the module docstring)."""
    if follow_symlinks or not file.is_symlink():
        return file
    target = file.resolve()
    if not any(target == root or root in target.parents for root in _allowed_roots(directory)):
        raise ValueError(f"{file} is a symlink to {target}, outside the model directory {directory}; "
                         "numpygpt does not follow it (pass follow_symlinks=True, or --follow-symlinks on the command line, to allow links out)")
    return file


def _weight_map(index: Path) -> dict[str, str]:
    """The name -> shard file map of a model.safetensors.index.json, checked."""
    content = read_json(index, "shard index")
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in weight_map.items()):
        raise ValueError(f"{index} has no valid weight_map (a JSON object mapping tensor names to shard files)")
    return weight_map


def _read_weights(directory: Path, follow_symlinks: bool = False) -> dict[str, np.ndarray]:
    """All weights of a HF model directory: model.safetensors, or the shards its index lists."""
    single, index = directory / _SAFE_WEIGHTS, directory / _SAFE_INDEX
    if single.is_file() or single.is_symlink():
        return dict(read_safetensors(_check_link(directory, single, follow_symlinks), "weights file",
                                     column_major=_CONV1D_WEIGHT.fullmatch)[1])
    if index.is_file() or index.is_symlink():
        weight_map = _weight_map(_check_link(directory, index, follow_symlinks))
        weights: dict[str, np.ndarray] = {}
        for shard in sorted(set(weight_map.values())):
            if Path(shard).name != shard or shard in ("", ".", ".."):
                raise ValueError(f"{index} names a shard outside the directory: {short_repr(shard)}")
            shard_path = _check_link(directory, directory / shard, follow_symlinks)
            arrays = read_safetensors(shard_path, "weights shard", column_major=_CONV1D_WEIGHT.fullmatch)[1]
            listed_here = [name for name, file in weight_map.items() if file == shard]
            absent = [name for name in listed_here if name not in arrays]
            if absent:
                raise ValueError(f"{shard_path} lacks {listed(absent)}, which {index.name} places there")
            weights.update((name, arrays[name]) for name in listed_here)
        return weights
    pickled = [name for name in _PICKLE_WEIGHTS if (directory / name).exists()]
    if pickled:
        raise ValueError(
            f"{directory} holds only {pickled[0]}: that format is a Python pickle, which numpygpt never "
            "loads (unpickling can run arbitrary code). Convert it to safetensors, e.g. with transformers: "
            "GPT2LMHeadModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)"
        )
    raise FileNotFoundError(f"no {_SAFE_WEIGHTS} or {_SAFE_INDEX} in {directory}")


def read_directory(path: PathLike, follow_symlinks: bool = False,
                   dtype: Any = None) -> tuple[dict[str, Any], OrderedDict[str, np.ndarray], np.dtype]:
    """(cfg, state_dict, dtype) from a Hugging Face GPT-2 directory (config.json + model.safetensors).

    Sharded checkpoints (model.safetensors.index.json and its shards) are read
    too. `cfg` is the checked numpygpt config, `state_dict` the weights as a
    `GPTModel(cfg)` state_dict, `dtype` the checkpoint's: float64 if every
    weight is float64, else float32 (float16 and bfloat16 are widened).
    The config must fit the stored tensors (`check_budget`, then exact shapes)
    before anything else is built. The causal masks are O(T) views in `dtype`
    if given (the dtype of the model they will load into), else the checkpoint's.
    Symlinks out of the directory are refused unless `follow_symlinks` (see the
    module docstring). pytorch_model.bin (a pickle) is refused. Errors name the file at fault.
    """
    directory = Path(os.fspath(path))
    if not directory.exists():
        raise FileNotFoundError(f"no such model directory: {directory}")
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory; from_pretrained expects a directory "
                                 "holding config.json and model.safetensors")
    config_path = _check_link(directory, directory / "config.json", follow_symlinks)
    hf_config = read_json(config_path, "config.json")
    if not isinstance(hf_config, dict):
        raise ValueError(f"{config_path} does not hold a JSON object")
    model_type = hf_config.get("model_type")
    if model_type is not None and model_type != "gpt2":
        raise ValueError(f"{config_path} has model_type {short_repr(model_type)}; "
                         "numpygpt loads GPT-2 checkpoints only (model_type 'gpt2')")
    try:
        cfg = hf_config_to_cfg(hf_config)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{config_path}: {e}") from None
    weights = _read_weights(directory, follow_symlinks)
    stored = stored_dtype(weights)
    try:
        check_budget(cfg, {name: a.shape for name, a in weights.items()}, "the weights do not fit config.json")
        state_dict = hf_to_state_dict(weights, cfg, mask_dtype=stored if dtype is None else np.dtype(dtype),
                                      copy=False)  # the arrays just read are nobody else's
    except ValueError as e:
        raise ValueError(f"{directory}: {e}") from None
    return cfg, state_dict, stored


def write_directory(path: PathLike, cfg: Mapping[str, Any], state_dict: Mapping[str, Any]) -> None:
    """Write a Hugging Face GPT-2 directory that `GPT2LMHeadModel.from_pretrained` loads.

    Creates the directory if needed and writes config.json (see
    `cfg_to_hf_config`) and model.safetensors (weights from `state_dict_to_hf`,
    metadata {"format": "pt"}, which transformers requires), each atomically.
    A tied model stores only transformer.wte.weight, as transformers does.
    """
    directory = Path(os.fspath(path))
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} exists and is not a directory")
    hf_sd = state_dict_to_hf(state_dict, cfg)
    directory.mkdir(parents=True, exist_ok=True)
    write_safetensors(directory / _SAFE_WEIGHTS, hf_sd, {"format": "pt"})
    dtype = as_array(state_dict["tok_emb.weight"], "tok_emb.weight").dtype
    write_json(directory / "config.json", cfg_to_hf_config(cfg, dtype))
