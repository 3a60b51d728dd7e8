"""Attention maps: where each token looks, in every layer and head of a GPT.

    maps = numpygpt.attention.attention_maps(model, ids)   # (n_layers, n_heads, T, T)
    numpygpt.attention.plot_maps(maps, tokens, "attention.png")

maps[l, h, i, j] is how much token i attends to token j in head h of block l:
the softmax weights `attn_weights` of the seed's MultiHeadAttention, read
from the model's own forward pass through the attention's `observer` (the
same place `numpygpt.reference.record` reads them), not computed a second
time. Row i sums to 1 over j = 0 .. i, and every j > i is exactly 0, because
the causal mask set those scores to -inf before the softmax.

`numpygpt attention --weights DIR "text"` (or `--checkpoint FILE`) runs `main`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .autograd import no_grad
from .checkpoint import load_model
from .model import MultiHeadAttention
from .module import Module
from .tokenizer import get_encoding

__all__ = ["attention_maps", "token_strings", "plot_maps", "load_model", "main"]

Indices = Sequence[int] | str | None


def attention_maps(model: Module, ids: Any) -> np.ndarray:
    """The attention weights of every layer and head for one sequence of token ids.

    `ids` is (T,) or (1, T). The model runs once, in eval mode (no dropout) and
    without recording a graph; its modes are put back afterwards. Returns an
    array (n_layers, n_heads, T, T) in the model's dtype, layers in forward order.
    """
    ids = np.asarray(getattr(ids, "data", ids))
    if ids.ndim == 1:
        ids = ids[None, :]                                        # (1, T)
    if ids.ndim != 2 or ids.shape[0] != 1:
        raise ValueError(f"attention_maps takes one sequence, (T,) or (1, T) token ids; got shape {ids.shape}")
    attentions = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not attentions:
        raise ValueError(f"{type(model).__name__} has no MultiHeadAttention")
    maps: dict[int, np.ndarray] = {}

    def keeper(layer: int) -> Callable[..., None]:
        def keep(attn_weights: Any, **others: Any) -> None:
            maps[layer] = np.array(attn_weights.data[0])          # (nh, T, T)
        return keep

    modes = {m: m.training for m in model.modules()}
    previous = [att.observer for att in attentions]
    model.eval()
    try:
        for layer, att in enumerate(attentions):
            att.observer = keeper(layer)
        with no_grad():
            model(ids)
    finally:
        for att, observer in zip(attentions, previous):
            att.observer = observer
        for m, mode in modes.items():
            object.__setattr__(m, "training", mode)
    return np.stack([maps[layer] for layer in range(len(attentions))])  # (n_layers, nh, T, T)


def token_strings(ids: Sequence[int], tokenizer: Any = None) -> list[str]:
    """Each token id decoded on its own, for axis labels (a newline shown as \\n)."""
    tokenizer = get_encoding("gpt2") if tokenizer is None else tokenizer
    return [tokenizer.decode([int(i)]).replace("\n", "\\n") for i in ids]


def _indices(chosen: Indices, n: int, what: str) -> list[int]:
    """The layers (or heads) to show: all of them, a list, or a comma-separated string "0,5,11"."""
    if chosen is None:
        return list(range(n))
    if isinstance(chosen, str):
        chosen = [int(c) for c in chosen.split(",") if c.strip()]
    chosen = [int(c) for c in chosen]
    bad = [c for c in chosen if not 0 <= c < n]
    if bad or not chosen:
        raise ValueError(f"{what}s must be among 0 .. {n - 1}, got {list(chosen)}")
    return chosen


def plot_maps(maps: np.ndarray, tokens: Sequence[str], path: str | os.PathLike,
              layers: Indices = None, heads: Indices = None) -> Path:
    """A grid of heatmaps, one row per layer and one column per head, written to `path` (a PNG).

    Each map has the query tokens down its side and the key tokens along its
    bottom; the tokens are written on the outer column and row only, so a
    12 x 12 grid (GPT-2 small) stays readable. Colours run from 0 to 1.
    Raises ImportError, saying so, when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib, which is not installed (pip install matplotlib)") from None
    maps = np.asarray(maps)
    if maps.ndim != 4 or maps.shape[-1] != maps.shape[-2] or maps.shape[-1] != len(tokens):
        raise ValueError(f"maps must be (n_layers, n_heads, T, T) with T = {len(tokens)} tokens, got {maps.shape}")
    layers, heads = _indices(layers, maps.shape[0], "layer"), _indices(heads, maps.shape[1], "head")
    fig, colour_bar = _grid_figure(Figure, len(layers), len(heads), tokens)
    axes = fig.subplots(len(layers), len(heads), squeeze=False)
    positions = np.arange(len(tokens))
    for r, layer in enumerate(layers):
        for c, head in enumerate(heads):
            ax = axes[r][c]
            image = ax.imshow(maps[layer, head], vmin=0.0, vmax=1.0, cmap="viridis")
            ax.set_xticks(positions if r == len(layers) - 1 else [])  # tokens on the outer row ...
            ax.set_yticks(positions if c == 0 else [])                # ... and column only
            if r == len(layers) - 1:
                ax.set_xticklabels(tokens, rotation=90, fontsize=6)
            if c == 0:
                ax.set_yticklabels(tokens, fontsize=6)
                ax.set_ylabel(f"layer {layer}", fontsize=8)
            if r == 0:
                ax.set_title(f"head {head}", fontsize=8)
    fig.colorbar(image, cax=colour_bar, label="attention weight")
    fig.suptitle("Attention weights\neach row is a token, each column a token it attends to",
                 y=1 - 0.1 / fig.get_figheight(), va="top", fontsize=9)
    path = Path(path)
    fig.savefig(path, format="png", dpi=100)
    return path


def _grid_figure(Figure: type, rows: int, cols: int, tokens: Sequence[str]) -> tuple[Any, Any]:
    """A Figure sized for a rows x cols grid of square maps, with margins for the token labels
    (in inches, so they fit whatever the grid's size), and the axes of its colour bar."""
    side = max(1.1, 0.14 * len(tokens))                           # inches per map
    label = 0.4 + 0.05 * max(len(t) for t in tokens)              # the token labels and "layer N"
    top, bar = 0.85, 1.0                                          # the titles; the colour bar
    width, height = label + 1.08 * side * cols + bar, label + 1.08 * side * rows + top
    fig = Figure(figsize=(width, height))
    colour_bar = fig.add_axes((1 - 0.75 * bar / width, 0.3, 0.15 / width, 0.4))
    fig.subplots_adjust(left=label / width, right=1 - bar / width, bottom=label / height,
                        top=1 - top / height, wspace=0.08, hspace=0.08)
    return fig, colour_bar


def _strongest(maps: np.ndarray, tokens: Sequence[str], layers: list[int]) -> list[str]:
    """For each layer: the token the last token attends to most, averaged over the heads."""
    lines = []
    for layer in layers:
        row = maps[layer, :, -1, :].mean(axis=0)                  # (T,) the last token's weights
        j = int(np.argmax(row))
        lines.append(f"  layer {layer:>2}: {tokens[j]!r} (position {j}, weight {row[j]:.2f})")
    return lines


def main(text: str, weights: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None,
         out: str | os.PathLike = "attention.png", layers: Indices = None, heads: Indices = None,
         follow_symlinks: bool = False) -> int:
    """`numpygpt attention --weights DIR "text"` (or `--checkpoint FILE`): plot the text's attention maps.

    Prints the tokens, the token the last one attends to most in each layer,
    and the file it wrote. Returns 0, or 1 when matplotlib is missing (the
    message goes to stderr). Bad arguments raise ValueError.
    """
    tokenizer = get_encoding("gpt2")
    ids = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    if not ids:
        raise ValueError("the text encodes to no tokens; give some text")
    model = load_model(weights, checkpoint, follow_symlinks=follow_symlinks)
    maps = attention_maps(model, ids)                             # (n_layers, nh, T, T)
    tokens = token_strings(ids, tokenizer)
    layers, heads = _indices(layers, maps.shape[0], "layer"), _indices(heads, maps.shape[1], "head")
    print(f"{len(ids)} tokens: {tokens}")
    print(f"the token the last one ({tokens[-1]!r}) attends to most, averaged over the {maps.shape[1]} heads:")
    print("\n".join(_strongest(maps, tokens, layers)))
    try:
        path = plot_maps(maps, tokens, out, layers, heads)
    except ImportError as e:
        print(f"numpygpt attention: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path}: {len(layers)} layers x {len(heads)} heads, {len(ids)} x {len(ids)} weights each")
    return 0
