"""The seed's GPT-2 in PyTorch: the reference model for parity tests and benchmarks.

Module names, parameter names and buffers match the seed documents exactly,
so ``GPTModel(cfg).state_dict()`` has the same keys and shapes as
``numpygpt.model.GPTModel(cfg).state_dict()`` and weights move between the
two with :func:`numpy_state_dict` and :func:`load_numpy_state_dict`.

Only imported by tests and benchmarks that have already checked that torch
is installed (``pytest.importorskip("torch")``).

Legend: B batch, T tokens, C = emb_dim, V vocab_size, nh heads, hs head size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn as nn

GPT_CONFIG_124M: dict[str, Any] = {
    "vocab_size": 50257,     # V
    "context_length": 1024,  # longest T the model accepts
    "emb_dim": 768,          # C
    "n_heads": 12,           # nh
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


class GELU(nn.Module):
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = math.sqrt(2.0 / math.pi)
        return 0.5 * x * (1.0 + torch.tanh(c * (x + 0.044715 * torch.pow(x, 3))))


class LayerNorm(nn.Module):
    """LayerNorm over the last dim with biased variance, eps 1e-5, params `scale`/`shift`."""

    def __init__(self, emb_dim: int) -> None:
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)                  # (..., 1)
        var = x.var(dim=-1, keepdim=True, unbiased=False)    # (..., 1)
        norm_x = (x - mean) / torch.sqrt(var + self.eps)     # (..., C)
        return self.scale * norm_x + self.shift


class FeedForward(nn.Module):
    """Position-wise MLP: Linear(C, 4C) -> GELU -> Linear(4C, C)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        emb_dim = cfg["emb_dim"]
        self.layers = nn.Sequential(
            nn.Linear(emb_dim, 4 * emb_dim),
            GELU(),
            nn.Linear(4 * emb_dim, emb_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention with a persistent float `mask` buffer."""

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        # 1.0 above the diagonal marks the future positions a token may not see.
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, _ = x.shape
        nh, hs = self.num_heads, self.head_dim
        q = self.W_query(x).view(b, num_tokens, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = self.W_key(x).view(b, num_tokens, nh, hs).transpose(1, 2)    # (B, nh, T, hs)
        v = self.W_value(x).view(b, num_tokens, nh, hs).transpose(1, 2)  # (B, nh, T, hs)

        scores = q @ k.transpose(2, 3)                                    # (B, nh, T, T)
        future = self.mask.bool()[:num_tokens, :num_tokens]               # (T, T)
        scores = scores.masked_fill(future, -torch.inf)
        weights = torch.softmax(scores / hs**0.5, dim=-1)                 # (B, nh, T, T)
        weights = self.dropout(weights)

        context = (weights @ v).transpose(1, 2)                           # (B, T, nh, hs)
        context = context.contiguous().view(b, num_tokens, self.d_out)    # (B, T, C)
        return self.out_proj(context)                                     # (B, T, C)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + drop(att(norm1(x))), then x + drop(ff(norm2(x)))."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            dropout=cfg["drop_rate"],
            num_heads=cfg["n_heads"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x                                           # (B, T, C)
        x = self.drop_shortcut(self.att(self.norm1(x)))
        x = x + shortcut
        shortcut = x
        x = self.drop_shortcut(self.ff(self.norm2(x)))
        return x + shortcut                                    # (B, T, C)


class GPTModel(nn.Module):
    """GPT-2: token + position embeddings, n_layers blocks, final norm, untied out_head."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(
            *[TransformerBlock(cfg) for _ in range(cfg["n_layers"])]
        )
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        _, seq_len = in_idx.shape
        tok = self.tok_emb(in_idx)                                           # (B, T, C)
        pos = self.pos_emb(torch.arange(seq_len, device=in_idx.device))      # (T, C)
        x = self.drop_emb(tok + pos)                                         # (B, T, C)
        x = self.trf_blocks(x)                                               # (B, T, C)
        x = self.final_norm(x)
        return self.out_head(x)                                              # (B, T, V)


def generate_text_simple(
    model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int
) -> torch.Tensor:
    """Greedy decoding as the seed: crop to context_size, take the argmax, append.

    Runs the whole (cropped) context through the model for every new token;
    no KV cache. Returns ids of shape (B, T + max_new_tokens).
    """
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]                        # (B, <=context_size)
        with torch.no_grad():
            logits = model(idx_cond)[:, -1, :]                   # (B, V)
        probas = torch.softmax(logits, dim=-1)                   # (B, V)
        idx_next = torch.argmax(probas, dim=-1, keepdim=True)    # (B, 1)
        idx = torch.cat((idx, idx_next), dim=1)                  # (B, T + 1)
    return idx


def numpy_state_dict(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's state_dict as NumPy arrays (copies, detached from torch)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_numpy_state_dict(model: nn.Module, sd: dict[str, np.ndarray], strict: bool = True) -> None:
    """Load a dict of NumPy arrays into ``model`` through ``torch.from_numpy``.

    Arrays are cast to each target tensor's dtype by ``load_state_dict``'s copy.
    """
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    model.load_state_dict(tensors, strict=strict)
