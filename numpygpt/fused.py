"""Fused attention: softmax(mask(q kᵀ · scale)) v as one `Function`, block by block.

The seed's attention, written out op by op (model.MultiHeadAttention's
composed lines), makes a new (B, nh, T, S) array at every step: the scores,
the masked scores, the scaled ones, the weights, and in backward as many
again. Here one block of heads at a time goes through a single buffer:

    scores  = (q · scale) @ kᵀ             (b, g, T, S)   scale folded into q: T·hs numbers, not T·S
    scores[blocked] = -inf                 in place (np.copyto with where=), on the masked columns only
    weights = exp(scores - max) / Σ        in place: subtract, exp, divide
    out     = weights @ v                  written straight into the (B, T, nh, hs) result

so at most one block of `_BLOCK_BYTES` of (T, S) numbers lives at a time,
however long the context. Within a block the queries go `_QUERY_ROWS` at a
time, each chunk against only the keys some query of it may see: under a
causal mask the chunk of rows lo..hi needs keys 0..S-T+hi, so the scores, exp
and products above the diagonal are never made (for T = 1024 in chunks of 128,
36/64 of the full square; smaller chunks make matmuls too small for BLAS to
run well: at T = 1024, chunks of 64 measured slower than 128 or 256). The result is laid out (B, T, nh, hs), which is
what the heads' merge `transpose(1, 2).contiguous().view(B, T, C)` wants:
that merge copies nothing.

For backward the weights are kept when all of them fit in `_SAVE_BYTES`;
beyond that only the log-sum-exp of each row is kept (B, nh, T, 1) and the
weights are recomputed block by block, as flash attention does: one more
`q @ kᵀ` and exp in backward instead of (B, nh, T, S) numbers per layer held
from forward to backward.

Shape legend: B batch, nh heads, T queries, S keys (S = T, or cache + T), hs head size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from .autograd import Context, Function, is_grad_enabled

_BLOCK_BYTES = 16 * 2**20   # the (b, g, T, S) scores of one block of heads stay under this
_SAVE_BYTES = 32 * 2**20    # keep all the weights for backward when they fit in this, else recompute
_QUERY_ROWS = 128           # queries per chunk: each chunk's scores reach only the keys it may see

# Not done here: splitting the softmax's passes over both cores in threads. GELU does it
# (functional.GELUTanh, `_parallel`), and alone that nearly halves a 1.5M-number GELU
# (9.4 -> 5.4 ms), but inside the forward it measured no faster: the 124M forward took 0.55 s
# with one thread and with two. Right after each matmul OpenBLAS's worker threads keep
# spinning on the other core, so the second thread finds it busy (OPENBLAS_THREAD_TIMEOUT=4
# did not change that).


def recording(ctx: Context) -> bool:
    """Whether this call's backward can run: grad mode on and some input needing a gradient
    (`ctx.needs_input_grad` alone is also True under no_grad for a parameter). A forward
    saves nothing, and may reuse its temporaries for the output, when it is False."""
    return is_grad_enabled() and any(ctx.needs_input_grad)


# ----------------------------------------------------------------------------- attention


def _blocks(batch: int, heads: int, per_head_bytes: int) -> Iterator[tuple[slice, slice]]:
    """(batch rows, heads) index pairs covering every (B, nh) pair, each block's
    scores at most _BLOCK_BYTES (but always at least one head): whole rows of
    heads when they fit, else groups of heads within one row."""
    group = max(1, min(heads, _BLOCK_BYTES // max(per_head_bytes, 1)))
    rows = max(1, _BLOCK_BYTES // max(per_head_bytes * heads, 1)) if group == heads else 1
    for b in range(0, batch, rows):
        for h in range(0, heads, group):
            yield slice(b, b + rows), slice(h, h + group)


class _Masked(NamedTuple):
    """The blocked part of one query chunk's scores: the key columns from `first` on, and which of
    them each query may not see (no key before `first` is blocked for any query of the chunk)."""
    first: int
    blocked: np.ndarray


def _masked(mask: np.ndarray) -> _Masked | None:
    """`mask` (rows, keys) cut to the columns from its first blocked one, or None if it blocks nothing."""
    if not mask.any():                      # a decoding step's row: one call, not three
        return None
    first = int(np.flatnonzero(mask.any(axis=0))[0])
    return _Masked(first, mask[:, first:])


def _query_chunks(blocked: np.ndarray) -> list[tuple[int, int, int, _Masked | None]]:
    """(lo, hi, end, masked) for each chunk of query rows lo..hi-1: `end` is one past the last key
    that any of those queries may see (a key past it is blocked for every row of the chunk), and
    `masked` is the part of blocked[lo:hi, :end] that blocks something, or None when it blocks
    nothing (a decoding step's one query). Under a causal mask that part is the chunk's diagonal
    square: every row sees the keys before it, so the -inf fill touches `_QUERY_ROWS` columns,
    not `end` (at T = 1024 the fill took 1.0 ms a layer over whole rows, 0.5 ms over the squares)."""
    T, S = blocked.shape
    if T == 1 and not blocked[0, -1]:  # one query that may see the last key: a decoding step
        return [(0, 1, S, _masked(blocked))]
    chunks = []
    for lo in range(0, T, _QUERY_ROWS):
        hi = min(lo + _QUERY_ROWS, T)
        seen = np.flatnonzero(~blocked[lo:hi].all(axis=0))              # keys some row may see
        end = int(seen[-1]) + 1 if seen.size else S
        chunks.append((lo, hi, end, _masked(blocked[lo:hi, :end])))
    return chunks


def _scores(q: np.ndarray, k: np.ndarray, scale: float, masked: _Masked | None,
            out: np.ndarray | None) -> np.ndarray:
    """(q · scale) @ kᵀ with the blocked positions set to -inf, in `out` if given."""
    scores = np.matmul(q * q.dtype.type(scale), k.swapaxes(-1, -2), out=out)  # (b, g, T, S)
    if masked is not None:                                                    # blocked (T, S - first) broadcasts
        np.copyto(scores[..., masked.first:], -np.inf, where=masked.blocked)
    return scores


def _softmax_inplace(scores: np.ndarray, lse: np.ndarray | None = None) -> None:
    """Softmax of each row of `scores`, in place; each row's log Σ exp (b, g, T, 1) into `lse` if given."""
    row_max = scores.max(axis=-1, keepdims=True)          # (b, g, T, 1) shifted: no overflow
    scores -= row_max
    np.exp(scores, out=scores)
    total = scores.sum(axis=-1, keepdims=True)
    scores /= total
    if lse is not None:
        np.add(row_max, np.log(total), out=lse)           # logsumexp of the scaled, masked scores


class Attention(Function):
    """out = softmax(mask(q kᵀ · scale)) v over the last two dims, block by block (see the module doc).

    q (B, nh, T, hs), k and v (B, nh, S, hs); `blocked` (T, S) bool, True where
    query i may not see key j (-inf before the softmax). With P the weights and
    dO = g, per block (as in the composed ops, read backwards):
      out = P v                    ->  dv = Pᵀ dO,   dP = dO vᵀ
      P = softmax(Z) by rows       ->  dZ = P ⊙ (dP - D),  D = Σⱼ Pᵢⱼ dPᵢⱼ = Σ dOᵢ · outᵢ (per row)
      Z = (q · scale) kᵀ           ->  dq = dZ k · scale,  dk = dZᵀ (q · scale)
    A blocked position has P = 0, so dZ = 0 there: the mask needs no backward of its own.
    """

    @staticmethod
    def forward(ctx: Context, q: np.ndarray, k: np.ndarray, v: np.ndarray, blocked: np.ndarray,
                scale: float) -> np.ndarray:
        B, nh, T, _ = q.shape
        S = k.shape[2]
        out = np.empty((B, T, nh, v.shape[-1]), dtype=q.dtype).transpose(0, 2, 1, 3)  # (B, nh, T, hs) view
        need_grad = recording(ctx)
        whole = B * nh * T * S * q.itemsize
        weights = np.empty((B, nh, T, S), dtype=q.dtype) if need_grad and whole <= _SAVE_BYTES else None
        lse = np.empty((B, nh, T, 1), dtype=q.dtype) if need_grad and weights is None else None
        chunks = _query_chunks(blocked)
        for rows, heads in _blocks(B, nh, T * S * q.itemsize):
            for lo, hi, end, masked in chunks:                                     # (b, g, hi - lo, end)
                buffer = None if weights is None else weights[rows, heads, lo:hi, :end]
                p = _scores(q[rows, heads, lo:hi], k[rows, heads, :end], scale, masked, buffer)
                _softmax_inplace(p, None if lse is None else lse[rows, heads, lo:hi])
                np.matmul(p, v[rows, heads, :end], out=out[rows, heads, lo:hi])  # (b, g, hi - lo, hs)
                del p  # before the next chunk's scores are made: one chunk alive at a time
        if need_grad:
            ctx.save_for_backward(q, k, v, out, weights, lse)
            ctx.scale, ctx.chunks = scale, chunks
        return out

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        q, k, v, out, weights, lse = ctx.saved_tensors
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        B, nh, T, _ = q.shape
        S = k.shape[2]

        def empty_like_heads(x: np.ndarray) -> np.ndarray:  # (B, nh, n, hs), laid out (B, n, nh, hs)
            return np.empty((x.shape[0], x.shape[2], x.shape[1], x.shape[3]), dtype=g.dtype).transpose(0, 2, 1, 3)

        dq = empty_like_heads(q) if need_q else None
        dk = empty_like_heads(k) if need_k else None                         # sums over the query chunks
        dv = empty_like_heads(v) if need_v else None
        for d in (dk, dv):
            if d is not None:
                d.fill(0)
        scale = q.dtype.type(ctx.scale)
        for rows, heads in _blocks(B, nh, T * S * q.itemsize):
            for lo, hi, end, masked in ctx.chunks:
                qb, gb = q[rows, heads, lo:hi], g[rows, heads, lo:hi]            # (b, g, hi - lo, hs)
                kb, vb = k[rows, heads, :end], v[rows, heads, :end]              # (b, g, end, hs)
                if weights is not None:
                    p = weights[rows, heads, lo:hi, :end]                        # kept from forward
                else:                                                            # recomputed: P = exp(Z - lse)
                    p = _scores(qb, kb, scale, masked, None)
                    p -= lse[rows, heads, lo:hi]
                    np.exp(p, out=p)
                if need_v:
                    dv[rows, heads, :end] += p.swapaxes(-1, -2) @ gb             # dv = Pᵀ dO
                if need_q or need_k:
                    dz = gb @ vb.swapaxes(-1, -2)                                # dP = dO vᵀ
                    dz -= (gb * out[rows, heads, lo:hi]).sum(axis=-1, keepdims=True)  # dP - D
                    dz *= p                                                      # dZ = P ⊙ (dP - D)
                    if need_q:
                        np.matmul(dz, kb, out=dq[rows, heads, lo:hi])            # dZ k
                        dq[rows, heads, lo:hi] *= scale                          # · scale
                    if need_k:
                        dk[rows, heads, :end] += dz.swapaxes(-1, -2) @ (qb * scale)  # dZᵀ (q · scale)
                    del dz
                del p  # one chunk's P and dZ alive at a time
        return dq, dk, dv


def attention(q, k, v, blocked: np.ndarray, scale: float):
    """softmax(q kᵀ · scale with `blocked` positions at -inf) v, as one fused op (Tensors in,
    a Tensor out of shape (B, nh, T, hs) whose array is laid out (B, T, nh, hs))."""
    return Attention.apply(q, k, v, blocked=np.asarray(blocked, dtype=bool), scale=float(scale))
