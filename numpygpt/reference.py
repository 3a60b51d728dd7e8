"""Reference recordings: every intermediate tensor of one run of a GPT, by name, in forward order.

    rec = numpygpt.reference.record(model, idx, targets)   # an OrderedDict name -> float array
    numpygpt.reference.save(rec, "ours.safetensors")        # a reference bundle
    theirs = numpygpt.reference.load("theirs.safetensors")  # the same, with .metadata

A recording holds, in the order the forward pass makes them:
- the output of every named module under its module path (`tok_emb`,
  `trf_blocks.0.norm1`, `trf_blocks.0.att.W_key`, ..., `final_norm`, `out_head`);
- inside each attention, the seed's variables: `<att>.queries`, `.keys`,
  `.values` (B, nh, T, hs), `.attn_scores` (masked, scaled by 1/√hs),
  `.attn_weights` and `.context_vec` (B, T, C);
- `logits`, and with targets `loss` (the mean cross-entropy);
- with targets, after one backward: `<name>.grad` for each of the above and for
  every parameter (`trf_blocks.0.att.W_query.weight.grad`, ...).

`names="hf"` renames them to Hugging Face's GPT-2 scheme (`transformer.h.0.ln_1`,
`transformer.h.0.attn.c_proj`, `lm_head`, ...) where Hugging Face has the same
module, keeping numpygpt's name below it where it has none (`W_query`).

A bundle is one safetensors file: one tensor per recorded name, and metadata
(strings) `format` = "numpygpt.reference", `format_version`, `order` (a JSON
list of the names in forward order), `names` ("numpygpt" or "hf"), `dtype`,
`config` (JSON) and `numpygpt_version`. Anyone can write one; see the README's
"Cross-checking your implementation".
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from typing import Any

import numpy as np

from . import __version__
from .autograd import no_grad
from .files import PathLike, read_safetensors, write_safetensors
from .losses import cross_entropy
from .model import MultiHeadAttention
from .nn import Module
from .tensor import Tensor

__all__ = ["ATTENTION_NAMES", "FORMAT", "Bundle", "load", "record", "save", "to_hf_names"]

FORMAT, FORMAT_VERSION = "numpygpt.reference", "1"
ATTENTION_NAMES = ("queries", "keys", "values", "attn_scores", "attn_weights", "context_vec")


class _Recorder:
    """Collects tensors as the forward pass makes them; keeps them for their gradients."""

    def __init__(self, keep_grads: bool) -> None:
        self.tensors: OrderedDict[str, Tensor] = OrderedDict()
        self.keep_grads = keep_grads

    def add(self, name: str, value: Any) -> None:
        if not isinstance(value, Tensor) or value.dtype.kind != "f":
            return
        key, n = name, 1
        while key in self.tensors:  # a module called twice: name, name:1, ...
            key, n = f"{name}:{n}", n + 1
        if self.keep_grads and value.requires_grad and value.grad_fn is not None:
            value.retain_grad()
        self.tensors[key] = value

    def module_hook(self, name: str):
        return lambda module, args, output: self.add(name, output)

    def attention_observer(self, name: str):
        """The attention's variables, put where the forward made them: the attention dropout's
        output (recorded by its own hook) comes after attn_weights and before context_vec."""
        def observe(**tensors: Tensor) -> None:
            for var, t in tensors.items():
                if var == "context_vec":
                    for key in [k for k in self.tensors if k == f"{name}.dropout" or k.startswith(f"{name}.dropout:")]:
                        self.tensors.move_to_end(key)
                self.add(f"{name}.{var}", t)
        return observe


def record(model: Module, idx: Any, targets: Any = None, names: str = "numpygpt") -> OrderedDict[str, np.ndarray]:
    """Run `model` once on token ids `idx` (B, T) and return every intermediate tensor, named.

    With `targets` (B, T) the loss is computed and backpropagated, and the recording
    also holds each tensor's gradient and every parameter's. The model's parameters'
    `.grad` are left as that backward made them. Dropout runs as the model's mode
    says: call `model.eval()` first for a deterministic recording.
    """
    if names not in ("numpygpt", "hf"):
        raise ValueError(f"record: names must be 'numpygpt' or 'hf', got {names!r}")
    rec = _Recorder(keep_grads=targets is not None)
    handles, observed = [], []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(rec.module_hook(name)))
        if isinstance(module, MultiHeadAttention):
            module.observer = rec.attention_observer(name)
            observed.append(module)
    try:
        if targets is None:
            with no_grad():
                logits = model(idx)
        else:
            model.zero_grad()
            logits = model(idx)
        rec.add("logits", logits)
        if targets is not None:
            loss = cross_entropy(logits.flatten(0, 1), np.asarray(getattr(targets, "data", targets)).reshape(-1))
            rec.add("loss", loss)
            loss.backward()
    finally:
        for h in handles:
            h.remove()
        for m in observed:
            m.__dict__.pop("observer", None)  # back to the class's None
    out: OrderedDict[str, np.ndarray] = OrderedDict((k, np.array(t.data)) for k, t in rec.tensors.items())
    if targets is not None:
        for k, t in rec.tensors.items():
            if t.grad is not None:
                out[f"{k}.grad"] = np.array(t.grad.data)
        for k, p in model.named_parameters():
            if p.grad is not None:
                out[f"{k}.grad"] = np.array(p.grad.data)
    return to_hf_names(out) if names == "hf" else out


# numpygpt module path -> Hugging Face GPT-2's, applied in order to each name's prefix
_HF_RENAMES = (
    (r"^tok_emb", "transformer.wte"),
    (r"^pos_emb", "transformer.wpe"),
    (r"^drop_emb", "transformer.drop"),
    (r"^trf_blocks\.(\d+)", r"transformer.h.\1"),
    (r"^trf_blocks(?=\.|$)", "transformer.h"),
    (r"^final_norm", "transformer.ln_f"),
    (r"^out_head", "lm_head"),
    (r"\.norm1(?=\.|$)", ".ln_1"),
    (r"\.norm2(?=\.|$)", ".ln_2"),
    (r"\.att\.out_proj(?=\.|$)", ".attn.c_proj"),
    (r"\.att(?=\.|$)", ".attn"),
    (r"\.ff\.layers\.0(?=\.|$)", ".mlp.c_fc"),
    (r"\.ff\.layers\.1(?=\.|$)", ".mlp.act"),
    (r"\.ff\.layers\.2(?=\.|$)", ".mlp.c_proj"),
    (r"\.ff(?=\.|$)", ".mlp"),
    (r"\.scale(?=\.grad$|$)", ".weight"),
    (r"\.shift(?=\.grad$|$)", ".bias"),
)


def to_hf_names(recording: OrderedDict[str, np.ndarray]) -> OrderedDict[str, np.ndarray]:
    """The same recording under Hugging Face's GPT-2 names (see the module docstring)."""
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for name, value in recording.items():
        for pattern, replacement in _HF_RENAMES:
            name = re.sub(pattern, replacement, name)
        out[name] = value
    return out


def save(recording: OrderedDict[str, np.ndarray], path: PathLike, *, config: Any = None,
         names: str = "numpygpt", extra: dict[str, str] | None = None) -> None:
    """Write a recording as a reference bundle (one safetensors file, atomically)."""
    tensors = OrderedDict((k, np.asarray(v, order="C")) for k, v in recording.items())
    dtypes = sorted({str(v.dtype) for v in tensors.values() if v.dtype.kind == "f"})
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "order": json.dumps(list(tensors)),
                "names": names, "dtype": ",".join(dtypes), "config": json.dumps(config or {}),
                "numpygpt_version": __version__, **(extra or {})}
    write_safetensors(path, tensors, metadata)


class Bundle(OrderedDict):
    """A loaded recording: name -> array in forward order, with the file's `metadata` (a dict)."""

    metadata: dict[str, str]


def load(path: PathLike) -> Bundle:
    """A bundle's tensors in forward order (`.metadata` holds its metadata). Files written by other
    code may leave out `order` (the tensors then come in the file's order) and any other metadata."""
    metadata, tensors = read_safetensors(path, what="reference bundle")
    try:
        order = json.loads(metadata.get("order", "[]"))
    except json.JSONDecodeError:
        raise ValueError(f"{path}: the bundle's 'order' metadata is not a JSON list") from None
    if not isinstance(order, list):
        raise ValueError(f"{path}: the bundle's 'order' metadata is not a JSON list")
    names = [n for n in order if n in tensors] + [n for n in tensors if n not in set(order)]
    bundle = Bundle((n, tensors[n]) for n in names)
    bundle.metadata = dict(metadata)
    return bundle
