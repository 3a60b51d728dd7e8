"""llm.c's binary files: GPT-2 weights and a debug state, written and read with NumPy.

Andrej Karpathy's llm.c trains GPT-2 in plain C (`train_gpt2.c`) and CUDA. Its
`train_gpt2.py` exports two files for the C code: the model file
(`gpt2_124M.bin`), and a debug state (`gpt2_124M_debug_state.bin`): one batch
with the logits, loss and gradients a reference implementation computed, which
`test_gpt2.c` checks llm.c's own forward and backward pass against. This
module writes both from a numpygpt `GPTModel` and reads them back.

| function | does |
|---|---|
| `write_model`, `load_model` | a GPTModel -> an llm.c model file -> a GPTModel, weights exact |
| `read_model_header` | the sizes an llm.c model file announces, checked against the file |
| `write_debug_state`, `read_debug_state` | one batch's inputs, targets, logits, loss and gradients |
| `padded_vocab_size` | the vocabulary rounded up to a multiple of 128, as llm.c stores it |

Both files are little-endian with no gaps or alignment: a header of 256 int32
(1024 bytes), then the arrays back to back, each in C (row-major) order.

The model file

    header[0]   20240326           the magic number
    header[1]   3 or 5             the version: 3 float32 tensors, 5 bfloat16 (read by llm.c's CUDA code)
    header[2]   max_seq_len        maxT, numpygpt's context_length
    header[3]   vocab_size         V
    header[4]   num_layers         L
    header[5]   num_heads          NH
    header[6]   channels           C, numpygpt's emb_dim
    header[7]   padded_vocab_size  Vp: V rounded up to a multiple of 128 (50304 for 50257)
    header[8:]  0

then 16 tensors in this order. The blocks' tensors are stacked over the
layers, block 0 first, so `qkvw` is one (L, 3C, C) array:

    llm.c      shape        numpygpt
    wte        (Vp, C)      tok_emb.weight, then Vp - V rows of zeros; also the output head
    wpe        (maxT, C)    pos_emb.weight
    ln1w ln1b  (L, C)       trf_blocks.N.norm1.scale, .shift
    qkvw       (L, 3C, C)   att.W_query.weight, att.W_key.weight, att.W_value.weight, one under another
    qkvb       (L, 3C)      att.W_query.bias, att.W_key.bias, att.W_value.bias
    attprojw   (L, C, C)    att.out_proj.weight         attprojb (L, C)   att.out_proj.bias
    ln2w ln2b  (L, C)       norm2.scale, .shift
    fcw        (L, 4C, C)   ff.layers.0.weight          fcb      (L, 4C)  ff.layers.0.bias
    fcprojw    (L, C, 4C)   ff.layers.2.weight          fcprojb  (L, C)   ff.layers.2.bias
    lnfw lnfb  (C)          final_norm.scale, .shift

Every matrix is (out, in), the layout of PyTorch's nn.Linear and numpygpt's
Linear: llm.c computes out[o] = bias[o] + Σᵢ weight[o, i] · inp[i]. The
logits are lnf @ wteᵀ over all Vp rows; llm.c ignores the padded ones. The
file holds nothing else, so the C code assumes GPT-2's choices: biases on
the query, key and value projections, the output head tied to wte, LayerNorm
with eps 1e-5, the tanh GELU, scores scaled by 1/√(C/NH). A model that
differs in one of the first three is refused rather than written wrong.

The tensors carry GPT-2's own names (Hugging Face's, without "transformer.",
in nn.Linear's layout rather than Conv1D's): `hf.py`'s table pairs numpygpt's
names with those, fusing q, k, v into c_attn, and this module uses it, so
the mapping of names is written once.

The debug state

    header[0]   20240327   the magic number
    header[1]   2          the version (2: the gradients carry the padded vocabulary)
    header[2]   B          rows in the batch
    header[3]   T          tokens per row
    header[4:]  0

then

    inputs     (B, T) int32       token ids
    targets    (B, T) int32       the token that follows each input
    logits     (B, T, V) float32  V, not Vp: the unpadded vocabulary
    loss       one float32        the mean cross-entropy over the B·T positions
    gradients  float32            d loss / d each parameter, in the model file's order and shapes;
                                  dwte has Vp rows, the padding rows zero

dwte is the sum of both of wte's uses, the embedding lookup and the output
head. The header does not give the gradients' sizes: they are the model
file's, so reading a debug state takes the model file (or config) it belongs to.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from . import hf
from .autograd import enable_grad
from .config import validate_config
from .files import PathLike, atomic_write, corrupt_file_error
from .losses import cross_entropy
from .model import GPTModel, build_model, check_token_ids

__all__ = [
    "MODEL_MAGIC",
    "STATE_MAGIC",
    "padded_vocab_size",
    "read_model_header",
    "write_model",
    "load_model",
    "write_debug_state",
    "read_debug_state",
]

MODEL_MAGIC = 20240326
STATE_MAGIC = 20240327
_TOKENIZER_MAGIC = 20240328
_MAGICS = {MODEL_MAGIC: "model file", STATE_MAGIC: "debug-state file", _TOKENIZER_MAGIC: "tokenizer file"}
_MODEL_VERSIONS = {"float32": 3, "bfloat16": 5}
_STATE_VERSION = 2
_HEADER_INTS = 256
_HEADER_BYTES = 4 * _HEADER_INTS
_VOCAB_MULTIPLE = 128
_LN_EPS = 1e-5                 # llm.c's LayerNorm epsilon, a constant in its C code
_INT32_MAX = 2**31 - 1
# the model file's header[2:8], in order
_HEADER_FIELDS = ("max_seq_len", "vocab_size", "num_layers", "num_heads", "channels", "padded_vocab_size")


class _Tensor(NamedTuple):
    """One of llm.c's 16 parameter tensors."""

    name: str    # llm.c's name (ParameterTensors in train_gpt2.c)
    gpt2: str    # GPT-2's name without "transformer."; {i} is the block number
    shape: str   # its shape in the file, in Vp, maxT, L and C


# In the file's order (train_gpt2.c's fill_in_parameter_sizes).
_TENSORS = (
    #       llm.c       GPT-2 name                    shape
    _Tensor("wte",      "wte.weight",                 "Vp C"),
    _Tensor("wpe",      "wpe.weight",                 "maxT C"),
    _Tensor("ln1w",     "h.{i}.ln_1.weight",          "L C"),
    _Tensor("ln1b",     "h.{i}.ln_1.bias",            "L C"),
    _Tensor("qkvw",     "h.{i}.attn.c_attn.weight",   "L 3C C"),
    _Tensor("qkvb",     "h.{i}.attn.c_attn.bias",     "L 3C"),
    _Tensor("attprojw", "h.{i}.attn.c_proj.weight",   "L C C"),
    _Tensor("attprojb", "h.{i}.attn.c_proj.bias",     "L C"),
    _Tensor("ln2w",     "h.{i}.ln_2.weight",          "L C"),
    _Tensor("ln2b",     "h.{i}.ln_2.bias",            "L C"),
    _Tensor("fcw",      "h.{i}.mlp.c_fc.weight",      "L 4C C"),
    _Tensor("fcb",      "h.{i}.mlp.c_fc.bias",        "L 4C"),
    _Tensor("fcprojw",  "h.{i}.mlp.c_proj.weight",    "L C 4C"),
    _Tensor("fcprojb",  "h.{i}.mlp.c_proj.bias",      "L C"),
    _Tensor("lnfw",     "ln_f.weight",                "C"),
    _Tensor("lnfb",     "ln_f.bias",                  "C"),
)
# Hugging Face keeps these as Conv1D weights (in, out); llm.c as nn.Linear weights (out, in).
_CONV1D = frozenset(w.hf for w in hf._WEIGHTS if w.conv1d)
_HF_PREFIX = "transformer."

# ----------------------------------------------------------------------------- sizes and headers


def padded_vocab_size(vocab_size: int, multiple: int = _VOCAB_MULTIPLE) -> int:
    """`vocab_size` rounded up to a multiple of 128, the rows llm.c's wte has (50257 -> 50304)."""
    return -(-vocab_size // multiple) * multiple


def _sizes(cfg: Mapping[str, Any]) -> dict[str, int]:
    """A numpygpt config's sizes under llm.c's header names, the vocabulary padded as llm.c pads it."""
    return {"max_seq_len": cfg["context_length"], "vocab_size": cfg["vocab_size"], "num_layers": cfg["n_layers"],
            "num_heads": cfg["n_heads"], "channels": cfg["emb_dim"],
            "padded_vocab_size": padded_vocab_size(cfg["vocab_size"])}


def _config(sizes: Mapping[str, int]) -> dict[str, Any]:
    """The numpygpt config of the GPT-2 an llm.c header describes (no dropout; bias, tie and eps as llm.c's)."""
    return validate_config({
        "vocab_size": sizes["vocab_size"], "context_length": sizes["max_seq_len"], "emb_dim": sizes["channels"],
        "n_heads": sizes["num_heads"], "n_layers": sizes["num_layers"], "drop_rate": 0.0,
        "qkv_bias": True, "ln_eps": _LN_EPS, "tie_embeddings": True,
    })


def _shapes(sizes: Mapping[str, int]) -> list[tuple[int, ...]]:
    """The 16 tensors' shapes in the file, in order."""
    C = sizes["channels"]
    dims = {"Vp": sizes["padded_vocab_size"], "maxT": sizes["max_seq_len"], "L": sizes["num_layers"],
            "C": C, "3C": 3 * C, "4C": 4 * C}
    return [tuple(dims[d] for d in t.shape.split()) for t in _TENSORS]


def _num_parameters(sizes: Mapping[str, int]) -> int:
    """How many numbers the 16 tensors hold (Python ints: no overflow for any header)."""
    return sum(int(np.prod(shape, dtype=object)) for shape in _shapes(sizes))


def _header(*fields: int) -> np.ndarray:
    """A 256-int32 header: `fields` first, zeros after."""
    header = np.zeros(_HEADER_INTS, dtype="<i4")
    header[:len(fields)] = fields
    return header


def _read_header(path: PathLike, magic: int) -> tuple[np.ndarray, int]:
    """(the 256 header ints, the file's size) of an llm.c file that must start with `magic`.

    A file that starts with another number is "not an llm.c ..." (naming the
    llm.c file it is, if it is one); one too short for its header is truncated.
    """
    what = _MAGICS[magic]
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"llm.c {what} not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"llm.c {what} {path} is a directory, not a file")
    size = os.path.getsize(path)
    first = np.fromfile(path, dtype="<i4", count=1)
    if first.size == 0 or first[0] != magic:
        found = f"it starts with {first[0]}" if first.size else "it is empty"
        other = _MAGICS.get(int(first[0])) if first.size else None
        hint = f", the magic number of an llm.c {other}" if other else ""
        raise ValueError(f"{path} is not an llm.c {what}: {found}{hint}, not the magic number {magic}")
    if size < _HEADER_BYTES:
        raise corrupt_file_error(path, f"it has {size} bytes, fewer than the {_HEADER_BYTES}-byte header "
                                       f"of an llm.c {what}")
    return np.fromfile(path, dtype="<i4", count=_HEADER_INTS), size


def _check_size(path: PathLike, size: int, expected: int, announced: str) -> None:
    """A file must be exactly as long as its header implies."""
    if size != expected:
        how = "short" if size < expected else "long"
        raise corrupt_file_error(path, f"its header announces {announced}, {expected:,} bytes in all, "
                                       f"but the file has {size:,} bytes ({abs(expected - size):,} too {how})")


def read_model_header(path: PathLike) -> dict[str, int]:
    """The header of an llm.c model file: version, max_seq_len, vocab_size, num_layers,
    num_heads, channels, padded_vocab_size (llm.c's names).

    Checks the magic number, the version (3 float32, 5 bfloat16), that the
    sizes are positive and consistent (Vp ≥ V, channels divisible by num_heads),
    and that the file is exactly as long as they imply. A foreign or damaged
    file is a ValueError that says which of these failed.
    """
    ints, size = _read_header(path, MODEL_MAGIC)
    version = int(ints[1])
    if version not in _MODEL_VERSIONS.values():
        raise ValueError(f"{os.fspath(path)}: llm.c model file version {version} is not one numpygpt reads "
                         f"(3: float32, 5: bfloat16)")
    sizes = {name: int(v) for name, v in zip(_HEADER_FIELDS, ints[2:8])}
    bad = [f"{name} is {v}" for name, v in sizes.items() if v < 1]
    if not bad and sizes["padded_vocab_size"] < sizes["vocab_size"]:
        bad.append(f"padded_vocab_size {sizes['padded_vocab_size']} is less than vocab_size {sizes['vocab_size']}")
    if not bad and sizes["channels"] % sizes["num_heads"]:
        bad.append(f"channels {sizes['channels']} is not divisible by num_heads {sizes['num_heads']}")
    if bad:
        raise corrupt_file_error(path, "its header is impossible: " + "; ".join(bad))
    count, itemsize = _num_parameters(sizes), 4 if version == 3 else 2
    dtype = "float32" if version == 3 else "bfloat16"
    _check_size(path, size, _HEADER_BYTES + count * itemsize, f"{count:,} {dtype} parameters")
    return {"version": version, **sizes}


# ----------------------------------------------------------------------------- numpygpt <-> llm.c tensors


def _to_llmc(named: Mapping[str, np.ndarray], cfg: Mapping[str, Any]) -> list[np.ndarray]:
    """numpygpt's arrays (parameters, or their gradients, by parameter name) as llm.c's 16
    tensors: GPT-2's names via hf.py, Conv1D transposed back to (out, in), blocks stacked, wte padded."""
    gpt2 = hf.state_dict_to_hf(named, cfg)  # fuses q, k, v into c_attn; Conv1D layout (in, out)
    vocab, padded = cfg["vocab_size"], padded_vocab_size(cfg["vocab_size"])
    tensors = []
    for t in _TENSORS:
        names = [t.gpt2.format(i=i) for i in range(cfg["n_layers"])] if "{i}" in t.gpt2 else [t.gpt2]
        parts = [gpt2[_HF_PREFIX + name] for name in names]
        parts = [p.T for p in parts] if t.gpt2 in _CONV1D else parts
        tensor = np.stack(parts) if "{i}" in t.gpt2 else parts[0]
        if t.name == "wte":
            tensor = np.concatenate([tensor, np.zeros((padded - vocab, tensor.shape[1]), tensor.dtype)])
        tensors.append(tensor)
    return tensors


def _from_llmc(tensors: list[np.ndarray], cfg: Mapping[str, Any]) -> OrderedDict[str, np.ndarray]:
    """llm.c's 16 tensors -> a `GPTModel(cfg)` state_dict (wte's padding rows dropped), via hf.py."""
    gpt2: dict[str, np.ndarray] = {}
    for t, tensor in zip(_TENSORS, tensors):
        if t.name == "wte":
            tensor = tensor[:cfg["vocab_size"]]
        layers = tensor if "{i}" in t.gpt2 else [tensor]
        for i, part in enumerate(layers):
            gpt2[t.gpt2.format(i=i)] = part.T if t.gpt2 in _CONV1D else part
    return hf.hf_to_state_dict(gpt2, cfg)


def _split(flat: np.ndarray, sizes: Mapping[str, int]) -> list[np.ndarray]:
    """One flat array of all parameters, cut into the 16 tensors (views)."""
    tensors, start = [], 0
    for shape in _shapes(sizes):
        count = int(np.prod(shape))
        tensors.append(flat[start:start + count].reshape(shape))
        start += count
    return tensors


def _check_model(model: Any) -> dict[str, Any]:
    """The config of a model llm.c's file can hold, or a ValueError listing why it cannot."""
    if not isinstance(model, GPTModel):
        raise TypeError(f"expected a numpygpt GPTModel, got {type(model).__name__}")
    cfg = validate_config(model.cfg)
    problems = []
    if not cfg["qkv_bias"]:
        problems.append("it has no query/key/value biases (qkv_bias=False), and llm.c's qkvb always exists; "
                        "build the model with qkv_bias=True")
    if not cfg["tie_embeddings"]:
        problems.append("its output head is not tied to the token embedding (tie_embeddings=False), and llm.c "
                        "has no head of its own: its logits are lnf @ wteᵀ")
    if cfg["ln_eps"] != _LN_EPS:
        problems.append(f"its LayerNorm eps is {cfg['ln_eps']}, and llm.c's is fixed at {_LN_EPS}")
    too_big = [f"{name} {v:,}" for name, v in _sizes(cfg).items() if v > _INT32_MAX]
    if too_big:
        problems.append(f"{', '.join(too_big)} does not fit the int32 header")
    if problems:
        raise ValueError("llm.c's model file cannot hold this model: " + "; ".join(problems))
    return cfg


# ----------------------------------------------------------------------------- writing


def _bfloat16_bits(array: np.ndarray) -> np.ndarray:
    """float32 values as bfloat16 bit patterns (uint16), rounded to nearest, ties to even,
    as PyTorch's `.to(torch.bfloat16)`; NaN becomes PyTorch's 0x7FC0."""
    values = np.ascontiguousarray(array, dtype="<f4")
    bits = values.view("<u4")
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) >> 16
    return np.where(np.isnan(values), np.uint32(0x7FC0), rounded).astype("<u2")


def _encode(array: np.ndarray, dtype: str) -> np.ndarray:
    """An array as the file stores it: little-endian float32 or bfloat16 bits, C order."""
    if dtype == "bfloat16":
        return _bfloat16_bits(array)
    return np.ascontiguousarray(array, dtype="<f4")


def _write(path: PathLike, header: np.ndarray, chunks: Iterable[np.ndarray]) -> None:
    """Write `header` then each array's bytes, atomically (files.atomic_write): an interrupted
    write leaves the previous file, or none, under `path`."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(header.tobytes())
            for chunk in chunks:
                f.write(memoryview(np.ascontiguousarray(chunk)))

    atomic_write(path, write)


def write_model(model: GPTModel, path: PathLike, dtype: str = "float32") -> None:
    """Write `model` as an llm.c model file (the layout of `gpt2_124M.bin`, see the module docstring).

    `dtype` "float32" writes version 3, which llm.c's C code (train_gpt2.c)
    reads; "bfloat16" writes version 5 (llm.c's CUDA code), each weight
    rounded to nearest even. The model must have GPT-2's layout: qkv_bias,
    its head tied to tok_emb, LayerNorm eps 1e-5; otherwise ValueError says
    what differs. A float64 model is written as float32. The write is atomic.
    """
    if dtype not in _MODEL_VERSIONS:
        raise ValueError(f"dtype must be 'float32' or 'bfloat16' (llm.c's versions 3 and 5), got {dtype!r}")
    cfg = _check_model(model)
    tensors = _to_llmc(model.state_dict(), cfg)
    sizes = _sizes(cfg)
    header = _header(MODEL_MAGIC, _MODEL_VERSIONS[dtype], *(sizes[field] for field in _HEADER_FIELDS))
    _write(path, header, (_encode(t, dtype) for t in tensors))


def _forward_backward(model: GPTModel, ids: np.ndarray, targets: np.ndarray
                      ) -> tuple[np.ndarray, float, dict[str, np.ndarray]]:
    """(logits, mean cross-entropy, d loss / d each parameter) for one batch, in eval mode
    (no dropout). The model's own `.grad`s and training mode are as they were afterwards."""
    params = OrderedDict(model.named_parameters())
    saved = {name: p.grad for name, p in params.items()}
    training = model.training
    model.eval()
    try:
        for p in params.values():
            p.grad = None
        with enable_grad():
            logits = model(ids)                                              # (B, T, V)
            loss = cross_entropy(logits.flatten(0, 1), targets.reshape(-1))  # mean over B·T
            loss.backward()
        missing = [name for name, p in params.items() if p.grad is None]
        if missing:
            raise ValueError(f"no gradient reached {', '.join(missing)} (requires_grad=False?); "
                             "llm.c's debug state needs every parameter's gradient")
        grads = {name: p.grad.data for name, p in params.items()}
    finally:
        for name, p in params.items():
            p.grad = saved[name]
        model.train(training)
    return logits.data, loss.item(), grads


def write_debug_state(model: GPTModel, idx: Any, targets: Any, path: PathLike) -> dict[str, Any]:
    """Write llm.c's debug state for one batch (the layout of `gpt2_124M_debug_state.bin`).

    `idx` and `targets` are token ids of one shape (B, T), T ≤ context_length.
    numpygpt computes the logits, the mean cross-entropy and every parameter's
    gradient (in eval mode: no dropout; the model's `.grad`s are left as they
    were), and they are written as float32, the gradients in the model file's
    layout, dwte padded to Vp rows. llm.c's `test_gpt2` checks its own forward
    and backward pass against this file and the model file from `write_model`.

    Returns what was written, as `read_debug_state` returns it: inputs,
    targets (int32), logits (B, T, V), loss, and grads by parameter name (float32).
    """
    cfg = _check_model(model)
    ids = check_token_ids(idx, cfg)
    tgt = check_token_ids(targets, cfg)
    if tgt.shape != ids.shape:
        raise ValueError(f"targets have shape {tgt.shape}, the inputs {ids.shape}; they must match")
    logits, loss, grads = _forward_backward(model, ids, tgt)
    tensors = _to_llmc(grads, cfg)
    inputs, outputs = ids.astype("<i4"), tgt.astype("<i4")
    chunks = [inputs, outputs, logits.astype("<f4"), np.array([loss], dtype="<f4")]
    _write(path, _header(STATE_MAGIC, _STATE_VERSION, *ids.shape), [*chunks, *(_encode(t, "float32") for t in tensors)])
    return {"inputs": inputs, "targets": outputs, "logits": chunks[2], "loss": float(chunks[3][0]),
            "grads": {name: g.astype(np.float32) for name, g in grads.items()}}


# ----------------------------------------------------------------------------- reading


def _read_parameters(path: PathLike, offset: int, sizes: Mapping[str, int], version: int) -> list[np.ndarray]:
    """The 16 tensors stored from byte `offset` on, as float32 (bfloat16 widened exactly)."""
    count = _num_parameters(sizes)
    if version == 5:
        bits = np.fromfile(path, dtype="<u2", count=count, offset=offset)
        flat = (bits.astype(np.uint32) << 16).view(np.float32)  # bfloat16 is a float32's upper half
    else:
        flat = np.fromfile(path, dtype="<f4", count=count, offset=offset).astype(np.float32)
    if flat.size != count:
        raise corrupt_file_error(path, f"it ended after {flat.size:,} of its {count:,} parameters")
    return _split(flat, sizes)


def load_model(path: PathLike) -> GPTModel:
    """A numpygpt GPTModel with the weights of an llm.c model file (version 3 or 5), in eval mode.

    The config is built from the header: vocab_size, context_length
    (max_seq_len), emb_dim (channels), n_heads, n_layers, with drop_rate 0.0,
    qkv_bias True, the head tied to tok_emb and ln_eps 1e-5, as llm.c
    computes. The parameters are float32, equal to the file's (bfloat16 is
    widened exactly); wte's padding rows are dropped. The header and the
    file's length are checked first (see `read_model_header`), and no byte
    past what the header announces is read. Building the model leaves
    numpygpt's generator untouched.
    """
    sizes = read_model_header(path)
    cfg = _config(sizes)
    state_dict = _from_llmc(_read_parameters(path, _HEADER_BYTES, sizes, sizes["version"]), cfg)
    model = build_model(cfg, np.float32)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def _state_sizes(sizes: PathLike | Mapping[str, Any]) -> dict[str, int]:
    """llm.c's sizes from a model file's header, or from a numpygpt config (the vocabulary padded to 128)."""
    if isinstance(sizes, Mapping):
        return _sizes(validate_config(sizes))
    return read_model_header(sizes)


def read_debug_state(path: PathLike, sizes: PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """An llm.c debug-state file as {"inputs", "targets", "logits", "loss", "grads"}.

    `sizes` is the llm.c model file the state belongs to, or its numpygpt
    config (`model.cfg`): the state's header gives only B and T, the gradients'
    shapes are the model's. inputs and targets are (B, T) int32, logits
    (B, T, V) float32, loss a float, grads an OrderedDict of float32 arrays by
    numpygpt parameter name (`model.named_parameters()`'s, wte's padding rows
    dropped). The magic number, version and the file's exact length are checked first.
    """
    model_sizes = _state_sizes(sizes)
    ints, size = _read_header(path, STATE_MAGIC)
    version, B, T = (int(v) for v in ints[1:4])
    if version != _STATE_VERSION:
        raise ValueError(f"{os.fspath(path)}: llm.c debug-state version {version} is not one numpygpt reads "
                         f"(version {_STATE_VERSION}, with the padded vocabulary)")
    if B < 1 or T < 1 or T > model_sizes["max_seq_len"]:
        raise corrupt_file_error(path, f"its header has B={B}, T={T}; both must be at least 1, "
                                       f"T at most the model's max_seq_len {model_sizes['max_seq_len']}")
    V, count = model_sizes["vocab_size"], _num_parameters(model_sizes)
    announced = f"B={B}, T={T} with V={V} and {count:,} gradients"
    _check_size(path, size, _HEADER_BYTES + 4 * (2 * B * T + B * T * V + 1 + count), announced)
    arrays, offset = {}, _HEADER_BYTES
    for name, dtype, shape in (("inputs", "<i4", (B, T)), ("targets", "<i4", (B, T)),
                               ("logits", "<f4", (B, T, V)), ("loss", "<f4", (1,))):
        n = int(np.prod(shape))
        arrays[name] = np.fromfile(path, dtype=dtype, count=n, offset=offset).reshape(shape)
        offset += 4 * n
    grads = _from_llmc(_read_parameters(path, offset, model_sizes, 3), _config(model_sizes))
    # the parameters only: not the causal masks (buffers), nor out_head.weight (tok_emb.weight itself, tied)
    grads = OrderedDict((k, g) for k, g in grads.items() if not k.endswith(".att.mask") and k != "out_head.weight")
    return {"inputs": arrays["inputs"].astype(np.int32), "targets": arrays["targets"].astype(np.int32),
            "logits": arrays["logits"].astype(np.float32), "loss": float(arrays["loss"][0]), "grads": grads}

