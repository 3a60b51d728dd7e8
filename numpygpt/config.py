"""The GPT-2 configuration: the seed's dict, OpenAI's four sizes, and the rules a config must follow.

A config is a plain dict, as in the seed:

    vocab_size      vocabulary size V (GPT-2's BPE has 50257 tokens)
    context_length  longest input T the positional embedding covers
    emb_dim         embedding dimension C
    n_heads         attention heads nh (C must be divisible by nh)
    n_layers        transformer blocks
    drop_rate       dropout rate, in [0, 1)
    qkv_bias        bias in the query/key/value projections (OpenAI's weights have one)

and two optional keys, `ln_eps` (the LayerNorm epsilon, 1e-5; a positive finite
number, since LayerNorm divides by sqrt(var + eps)) and
`tie_embeddings` (out_head shares tok_emb's weight, as OpenAI's GPT-2 does;
False). The model, the checkpoints and the Hugging Face converters all read
configs through `validate_config`, so the rules are written once, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _checks

__all__ = [
    "GPT_CONFIG_124M",
    "GPT2_PRESETS",
    "PRESET_ALIASES",
    "REQUIRED_KEYS",
    "OPTIONAL_KEYS",
    "get_config",
    "validate_config",
    "require_keys",
    "short_repr",
    "listed",
]

GPT_CONFIG_124M: dict[str, Any] = {
    "vocab_size": 50257,     # vocabulary size (GPT-2's BPE)
    "context_length": 1024,  # longest input the positional embedding covers
    "emb_dim": 768,          # embedding dimension C
    "n_heads": 12,           # attention heads nh
    "n_layers": 12,          # transformer blocks
    "drop_rate": 0.1,        # dropout rate
    "qkv_bias": False,       # bias in the query/key/value projections
}

# emb_dim / n_layers / n_heads of OpenAI's four GPT-2 sizes
GPT2_PRESETS: dict[str, dict[str, int]] = {
    "gpt2-small": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},    # 124M
    "gpt2-medium": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},  # 355M
    "gpt2-large": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},   # 774M
    "gpt2-xl": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},      # 1558M
}
PRESET_ALIASES: dict[str, str] = {"gpt2": "gpt2-small", "124M": "gpt2-small", "355M": "gpt2-medium",
                                  "774M": "gpt2-large", "1558M": "gpt2-xl"}

REQUIRED_KEYS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "drop_rate", "qkv_bias")
# optional keys: the LayerNorm epsilon, and whether out_head shares tok_emb's weight (OpenAI's weights do)
OPTIONAL_KEYS: dict[str, Any] = {"ln_eps": 1e-5, "tie_embeddings": False}

_SIZES = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers")


def get_config(preset: str = "gpt2-small", **overrides: Any) -> dict[str, Any]:
    """`GPT_CONFIG_124M` with a preset's sizes (gpt2-small/-medium/-large/-xl, or an alias
    such as "124M") and any overrides, checked."""
    key = PRESET_ALIASES.get(preset, preset)
    if key not in GPT2_PRESETS:
        raise ValueError(f"unknown config {preset!r}; choose one of {', '.join(GPT2_PRESETS)}")
    return validate_config({**GPT_CONFIG_124M, **GPT2_PRESETS[key], **overrides})


def validate_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Return a checked copy of `cfg` (optional keys filled in), or raise ValueError saying what is wrong."""
    if not isinstance(cfg, Mapping):
        raise TypeError(f"config must be a dict, got {type(cfg).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"config is missing key(s): {', '.join(missing)} "
                         f"(a GPT config needs {', '.join(REQUIRED_KEYS)})")
    unknown = [k for k in cfg if k not in REQUIRED_KEYS and k not in OPTIONAL_KEYS]
    if unknown:
        raise ValueError(f"config has unknown key(s): {listed(unknown)}")
    out = {**OPTIONAL_KEYS, **cfg}
    for k in _SIZES:
        if not _checks.is_integer(out[k]):  # a float, a string, a bool, None, a list, ...
            raise _checks.NotAnIntegerError(f"config[{k!r}] must be a positive integer, got {short_repr(out[k])}")
        if out[k] < 1:
            raise ValueError(f"config[{k!r}] must be a positive integer, got {out[k]!r}")
        out[k] = int(out[k])
    if out["emb_dim"] % out["n_heads"]:
        raise ValueError(f"config: emb_dim ({out['emb_dim']}) must be divisible by n_heads ({out['n_heads']})")
    if not _checks.is_number(out["drop_rate"]) or not 0 <= out["drop_rate"] < 1:
        raise ValueError(f"config['drop_rate'] must be a number in [0, 1), got {short_repr(out['drop_rate'])}")
    for k in ("qkv_bias", "tie_embeddings"):
        if not isinstance(out[k], (bool, np.bool_)):
            raise ValueError(f"config[{k!r}] must be True or False, got {short_repr(out[k])}")
    eps = out["ln_eps"]
    # LayerNorm divides by sqrt(var + eps): NaN, infinity or eps <= 0 would give NaN or 0 everywhere
    if not _checks.is_number(eps) or not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"config['ln_eps'] must be a positive finite number, got {short_repr(eps)}")
    return out




def short_repr(value: Any) -> str:
    """`repr(value)`, cut to about 80 characters (a hostile file may hold a huge value)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def listed(names: list[Any], limit: int = 10, sep: str = ", ") -> str:
    """The first `limit` names joined by `sep`, then "... and N more" (so a message stays short)."""
    shown = sep.join(n[:120] if isinstance(n, str) else short_repr(n) for n in names[:limit])
    return shown if len(names) <= limit else f"{shown} ... and {len(names) - limit:,} more"


def require_keys(cfg: Mapping[str, Any], who: str, *keys: str) -> None:
    """A part of the model checks the config keys it reads, naming any that are missing."""
    if not isinstance(cfg, Mapping):
        raise TypeError(f"{who}: config must be a dict, got {type(cfg).__name__}")
    missing = [k for k in keys if k not in cfg]
    if missing:
        raise ValueError(f"{who}: config is missing key(s): {', '.join(missing)}")
