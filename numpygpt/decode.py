"""One generation step of a GPTModel on plain arrays: the forward with a KV cache, under no_grad.

Generating a token reads every weight once (≈ 0.5 GB in float32 for GPT-2 small)
and does little else, so its time is the memory bandwidth's, plus whatever
Python spends around the matrix-vector products. Through the modules that is
~250 ops, each wrapping its array in a Tensor and a node, ~10,000 Python calls
per token: a third of the token's time on a slow core. Here the same steps
call the very same `Function.forward`s (Linear, LayerNorm, GELUTanh,
fused.Attention) on the arrays directly, so the numbers are the modules' to the
bit, in ~100 calls per block. `GPTModel.forward` takes this path only when
nothing could tell the difference: grad mode off, every module of the stock
classes with their own forward, no hook, no observer, no active dropout.

The steps, per block (model.TransformerBlock and MultiHeadAttention, read top to bottom):
    h = norm1(x);  q, k, v = h Wqᵀ, h Wkᵀ, h Wvᵀ split into heads (B, nh, T, hs)
    k, v = the cache's keys and values so far, with these appended
    x = out_proj(attention(q, k, v)) + x
    x = ff(norm2(x)) + x                       ff = Linear, GELU (tanh), Linear
Shape legend as in model.py: B batch, T new tokens, S cached ones, C emb_dim, nh heads, hs head size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as F
from . import fused
from .autograd import Context, Function


def _context() -> Context:
    """A node that records nothing: the Functions' forwards see grad mode off and keep nothing."""
    return Context(Function, ())


def _linear(ctx: Context, layer: Any, x: np.ndarray) -> np.ndarray:
    return F.Linear.forward(ctx, x, layer.weight.data, None if layer.bias is None else layer.bias.data)


def _norm(ctx: Context, norm: Any, x: np.ndarray) -> np.ndarray:
    return F.LayerNorm.forward(ctx, x, norm.scale.data, norm.shift.data, (x.ndim - 1,), norm.eps)


def _block(ctx: Context, block: Any, layer_cache: Any, x: np.ndarray) -> np.ndarray:
    """TransformerBlock.forward with its layer's KV cache, on arrays (B, T, C) -> (B, T, C)."""
    att, ff = block.att, block.ff
    b, t, c = x.shape
    start = layer_cache.length                                          # S
    h = _norm(ctx, block.norm1, x)                                      # (B, T, C)
    heads = [_linear(ctx, w, h).reshape(b, t, att.num_heads, att.head_dim).transpose(0, 2, 1, 3)
             for w in (att.W_query, att.W_key, att.W_value)]            # q, k, v (B, nh, T, hs)
    keys, values = layer_cache.update(heads[1], heads[2])               # (B, nh, S + T, hs)
    blocked = att.mask.data[start:start + t, :start + t].astype(bool)   # (T, S + T)
    context = fused.Attention.forward(ctx, heads[0], keys, values, blocked, keys.shape[-1] ** -0.5)
    h = _linear(ctx, att.out_proj, context.transpose(0, 2, 1, 3).reshape(b, t, c))  # (B, T, C)
    x = h + x                                                           # the shortcut
    h = _linear(ctx, ff.layers[0], _norm(ctx, block.norm2, x))          # (B, T, 4C)
    h = _linear(ctx, ff.layers[2], F.GELUTanh.forward(ctx, h))          # (B, T, C)
    return h + x


def forward(model: Any, ids: np.ndarray, kv_cache: Any) -> np.ndarray:
    """GPTModel.forward(ids, kv_cache) on arrays: logits (B, T, V) of the T new tokens."""
    ctx = _context()
    start = kv_cache.length
    x = model.tok_emb.weight.data[ids] + model.pos_emb.weight.data[start:start + ids.shape[1]]  # (B, T, C)
    for block, layer_cache in zip(model.trf_blocks, kv_cache.layers):
        x = _block(ctx, block, layer_cache, x)
    return _linear(ctx, model.out_head, _norm(ctx, model.final_norm, x))  # (B, T, V)
