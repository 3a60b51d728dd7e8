"""How close is close enough: numpygpt's own rounding error, measured tensor by tensor.

Before saying another implementation is wrong at 1e-6, know what float32
rounding alone does. `measure()` runs one model three ways and compares:

- float32 against float64: the same weights, the same ids and targets, every
  tensor of the recording (forward and gradients), relative to its scale;
- cached against full: the logits of each position computed token by token
  with the KV cache, against one forward pass over the whole sequence;
- batched against single: the logits of each sequence of a batch against
  the same sequence run alone (a different shape, so a different BLAS path).

`numpygpt precision` prints the table; compare.py's default float32 tolerance
is ten times the worst float32-against-float64 error measured for GPT-2 small.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .autograd import no_grad
from .compare import compare
from .config import get_config
from .model import GPTModel, KVCache
from .random import manual_seed
from .reference import record

__all__ = ["PrecisionRow", "format_table", "measure", "worst_float32"]


@dataclass
class PrecisionRow:
    check: str   # "float32 vs float64", "cached vs full", "batched vs single"
    name: str    # a tensor, or a family of tensors ("trf_blocks.*.norm1")
    max_rel: float
    max_abs: float


def _family(name: str) -> str:
    """trf_blocks.3.norm1.grad -> trf_blocks.*.norm1.grad, so twelve blocks make one row."""
    parts = name.split(".")
    return ".".join("*" if p.isdigit() and i and parts[i - 1] == "trf_blocks" else p for i, p in enumerate(parts))


def _models(cfg: Mapping[str, Any], seed: int) -> tuple[GPTModel, GPTModel]:
    manual_seed(seed)
    model64 = GPTModel(dict(cfg, drop_rate=0.0)).double().eval()
    model32 = copy.deepcopy(model64).float()  # the float64 weights, rounded once to float32
    return model64, model32


def _cached_logits(model: GPTModel, ids: np.ndarray) -> np.ndarray:
    cache = KVCache(model.cfg["n_layers"], ids.shape[1])
    with no_grad():
        return np.concatenate([model(ids[:, t:t + 1], kv_cache=cache).data for t in range(ids.shape[1])], axis=1)


def measure(cfg: Mapping[str, Any] | str = "gpt2-small", seed: int = 0, batch: int = 2, tokens: int = 16,
            by_family: bool = True) -> list[PrecisionRow]:
    """The three measurements above for a randomly initialised model of `cfg` (a preset name or a config)."""
    cfg = get_config(cfg) if isinstance(cfg, str) else dict(cfg)
    model64, model32 = _models(cfg, seed)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg["vocab_size"], (batch, tokens))
    targets = rng.integers(0, cfg["vocab_size"], (batch, tokens))
    rows: dict[tuple[str, str], PrecisionRow] = {}

    def add(check: str, name: str, max_rel: float, max_abs: float) -> None:
        key = (check, _family(name) if by_family else name)
        old = rows.get(key)
        if old is None or max_rel > old.max_rel:
            rows[key] = PrecisionRow(check, key[1], max_rel, max_abs if old is None else max(max_abs, old.max_abs))

    for r in compare(record(model32, ids, targets), record(model64, ids, targets), rtol=np.inf, atol=np.inf).rows:
        add("float32 vs float64", r.name, r.max_rel, r.max_abs)
    with no_grad():
        full = model32(ids).data
        single = np.concatenate([model32(ids[i:i + 1]).data for i in range(batch)])
    for check, other in (("cached vs full", _cached_logits(model32, ids)), ("batched vs single", single)):
        row = compare({"logits": other}, {"logits": full}, rtol=np.inf, atol=np.inf).rows[0]
        add(check, "logits", row.max_rel, row.max_abs)
    return list(rows.values())


def worst_float32(rows: list[PrecisionRow]) -> PrecisionRow | None:
    """The largest float32-against-float64 error relative to scale (compare.py's measure of it)."""
    return max((r for r in rows if r.check == "float32 vs float64"), key=lambda r: r.max_rel, default=None)


def format_table(rows: list[PrecisionRow]) -> str:
    lines = [f"{'check':<22}{'tensor':<44}{'max rel':>10}{'max abs':>11}"]
    lines += [f"{r.check:<22}{r.name:<44}{r.max_rel:>10.1e}{r.max_abs:>11.1e}" for r in rows]
    worst = worst_float32(rows)
    if worst is not None:
        lines.append(f"\nworst float32 vs float64: {worst.name} (max rel {worst.max_rel:.1e})")
    return "\n".join(lines)
