"""The seed's GPT-2, module by module, with the seed's names.

Legend for the shape comments:
    B  batch size            T   number of tokens (≤ context_length)
    C  emb_dim (d_model)     V   vocab_size
    nh n_heads               hs  head size = C / nh
    S  tokens already in the KV cache (0 without one)

`GPTModel.state_dict()` has exactly the keys and shapes of the seed's PyTorch
`GPTModel.state_dict()` (each block's `att.mask` buffer included), so weights
move both ways with `{k: v.numpy() ...}` and `torch.from_numpy`.

In order: the config (from `config.py`), the seed's LayerNorm, GELU,
FeedForward, MultiHeadAttention, TransformerBlock and GPTModel, then the KV
cache that generation uses (its lines inside the seed's classes are fenced
with `# --- KV cache` comments), the token-id check, the parameter count,
building a model for stored weights, and the seed's scaffolding
(DummyGPTModel, ExampleDeepNeuralNetwork).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from . import _checks, decode, fused, hf, nn
from . import functional as F
from .autograd import is_grad_enabled
from .config import (  # noqa: F401  (the config names are part of numpygpt.model too)
    GPT2_PRESETS,
    GPT_CONFIG_124M,
    OPTIONAL_KEYS,
    PRESET_ALIASES,
    REQUIRED_KEYS,
    get_config,
    require_keys,
    validate_config,
)
from .random import get_rng_state, set_rng_state
from .tensor import Tensor, get_default_dtype, set_default_dtype

# ----------------------------------------------------------------------------- the building blocks


class LayerNorm(nn.Module):
    """The seed's LayerNorm: (x - mean) / √(var + eps) · scale + shift over the last dim,
    with the biased variance (÷ n) GPT-2 uses. Parameters `scale` (ones) and `shift` (zeros).

    It runs as one fused op (`functional.layer_norm`) whose backward is written out
    term by term; the tests check it against the seed's composed form.
    """

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(np.ones(emb_dim, dtype=get_default_dtype()))
        self.shift = nn.Parameter(np.zeros(emb_dim, dtype=get_default_dtype()))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], self.scale, self.shift, self.eps)  # (..., C)

    def extra_repr(self) -> str:
        return f"{self.scale.shape[0]}, eps={self.eps}"


class GELU(nn.Module):
    """The seed's GELU, tanh form: 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))."""

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, approximate="tanh")


class FeedForward(nn.Module):
    """Expand to 4C, GELU, project back to C: `layers` = Linear, GELU, Linear."""

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        require_keys(cfg, "FeedForward", "emb_dim")
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),  # (B, T, C) -> (B, T, 4C)
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),  # (B, T, 4C) -> (B, T, C)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)  # (B, T, C)


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention, as the seed writes it.

    The `mask` buffer is triu(ones(context_length, context_length), 1): a 1 above
    the diagonal marks a future token that position i must not see. `observer`,
    None unless a recording is running, is called with the forward's tensors.
    """

    observer = None

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__()
        if d_out % num_heads:
            raise ValueError(f"MultiHeadAttention: d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", F.causal_mask(context_length, get_default_dtype()))

    def forward(self, x: Tensor, kv_cache: LayerKVCache | None = None) -> Tensor:
        b, num_tokens, d_in = x.shape                                     # (B, T, C)
        keys = self.W_key(x)                                              # (B, T, C)
        queries = self.W_query(x)                                         # (B, T, C)
        values = self.W_value(x)                                          # (B, T, C)

        keys = keys.view(b, num_tokens, self.num_heads, self.head_dim)    # (B, T, nh, hs)
        queries = queries.view(b, num_tokens, self.num_heads, self.head_dim)
        values = values.view(b, num_tokens, self.num_heads, self.head_dim)

        keys = keys.transpose(1, 2)                                       # (B, nh, T, hs)
        queries = queries.transpose(1, 2)                                 # (B, nh, T, hs)
        values = values.transpose(1, 2)                                   # (B, nh, T, hs)

        # --- KV cache (generation): the earlier tokens' keys and values are cached ---
        start = 0                                                         # S tokens already seen
        if kv_cache is not None:
            start = kv_cache.length
            k_all, v_all = kv_cache.update(keys.data, values.data)        # (B, nh, S + T, hs)
            keys, values = Tensor(k_all), Tensor(v_all)
        # --- end KV cache ---

        # row i is the token at position S + i: it may see keys 0 .. S + i
        mask_bool = self.mask.data[start:start + num_tokens, :start + num_tokens].astype(bool)  # (T, S + T)
        if self._fused():  # the same arithmetic as the lines below, as one op (see numpygpt/fused.py)
            context_vec = fused.attention(queries, keys, values, mask_bool, keys.shape[-1] ** -0.5)
            context_vec = context_vec.transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)  # no copy
            return self.out_proj(context_vec)                             # (B, T, C)

        attn_scores = queries @ keys.transpose(2, 3)                      # (B, nh, T, S + T)
        attn_scores = attn_scores.masked_fill(mask_bool, -np.inf)         # (B, nh, T, S + T)
        attn_scores = attn_scores / keys.shape[-1] ** 0.5                 # scaled by 1/√hs
        attn_weights = F.softmax(attn_scores, dim=-1)                     # (B, nh, T, S + T) rows sum to 1
        attn_weights = self.dropout(attn_weights)

        context_vec = (attn_weights @ values).transpose(1, 2)             # (B, T, nh, hs)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)  # (B, T, C)
        if self.observer is not None:  # numpygpt.reference.record reads the seed's variables here
            self.observer(queries=queries, keys=keys, values=values, attn_scores=attn_scores,
                          attn_weights=attn_weights, context_vec=context_vec)
        return self.out_proj(context_vec)                                 # (B, T, C)

    def _fused(self) -> bool:
        """Whether forward may take the fused attention: only when nothing watches the seed's
        intermediate tensors (no observer, no hook on the dropout module) and dropout is off
        (p = 0 or eval mode), so the fused op computes exactly what the composed lines would."""
        drop = self.dropout
        hooked = drop._forward_pre_hooks or drop._forward_hooks or drop._backward_hooks
        return self.observer is None and not hooked and not (drop.training and drop.p > 0)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, head_dim={self.head_dim}"


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + drop(att(norm1(x))), then x + drop(ff(norm2(x))).

    The shortcut dropout is `drop_shortcut` (one seed calls it `drop_resid`; it has
    no parameters, so the state_dict is the same either way).
    """

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        require_keys(cfg, "TransformerBlock", "emb_dim", "context_length", "drop_rate", "n_heads", "qkv_bias")
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            dropout=cfg["drop_rate"],
            num_heads=cfg["n_heads"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        eps = cfg.get("ln_eps", 1e-5)
        self.norm1 = LayerNorm(cfg["emb_dim"], eps)
        self.norm2 = LayerNorm(cfg["emb_dim"], eps)
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: Tensor, kv_cache: LayerKVCache | None = None) -> Tensor:
        shortcut = x                      # (B, T, C)
        x = self.norm1(x)                 # (B, T, C)
        x = self.att(x, kv_cache)         # (B, T, C)
        x = self.drop_shortcut(x)
        x = x + shortcut                  # (B, T, C) the shortcut connection

        shortcut = x
        x = self.norm2(x)
        x = self.ff(x)                    # (B, T, C)
        x = self.drop_shortcut(x)
        x = x + shortcut                  # (B, T, C)
        return x


class GPTModel(nn.Module):
    """GPT-2: token + position embeddings, n_layers transformer blocks, a final
    LayerNorm and a linear head to vocabulary logits.

    `model(idx)` takes int token ids (B, T), an ndarray or Tensor, and returns
    logits (B, T, V). With `cfg["tie_embeddings"]` the head shares `tok_emb.weight`
    (OpenAI's GPT-2 does); the state_dict then lists the shared array under both names.
    """

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        cfg = validate_config(cfg)
        check_memory(cfg)
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])

        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])

        self.final_norm = LayerNorm(cfg["emb_dim"], cfg["ln_eps"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        if cfg["tie_embeddings"]:
            self.out_head.weight = self.tok_emb.weight

    def forward(self, in_idx: Any, kv_cache: KVCache | None = None) -> Tensor:
        """Logits (B, T, V) for token ids (B, T). With a `kv_cache` (generation, under
        no_grad) the ids are the tokens after those already cached, at positions S .. S+T-1."""
        # --- KV cache (generation) ---
        start = 0 if kv_cache is None else kv_cache.length      # S
        # --- end KV cache ---
        in_idx = check_token_ids(in_idx, self.cfg, start)
        if kv_cache is not None and self._decodable():          # generation: the same steps on arrays
            return Tensor(decode.forward(self, in_idx, kv_cache))  # (B, T, V), see numpygpt/decode.py
        batch_size, seq_len = in_idx.shape                      # (B, T)
        tok_embeds = self.tok_emb(in_idx)                       # (B, T, C)
        pos_embeds = self.pos_emb(np.arange(start, start + seq_len))  # (T, C)
        x = tok_embeds + pos_embeds                             # (B, T, C)
        x = self.drop_emb(x)
        if kv_cache is None:
            x = self.trf_blocks(x)                              # (B, T, C)
        else:
            # --- KV cache (generation): each block reads and extends its layer's cache ---
            for block, layer_cache in zip(self.trf_blocks, kv_cache.layers):
                x = block(x, layer_cache)                       # (B, T, C)
            # --- end KV cache ---
        x = self.final_norm(x)                                  # (B, T, C)
        logits = self.out_head(x)                               # (B, T, V)
        return logits

    @classmethod
    def from_pretrained(cls, path: Any, dtype: Any = None, follow_symlinks: bool = False) -> GPTModel:
        """Load a Hugging Face GPT-2 directory (config.json + model.safetensors, or a
        sharded index) with no PyTorch: HF's names are mapped onto the seed's, the
        fused c_attn split into W_query/W_key/W_value, Conv1D weights transposed.

        The model is built in `dtype`, by default the checkpoint's: float64 if
        every weight is float64, else float32 (float16 and bfloat16 are
        widened). Weights load strictly; the model is returned in eval mode, as
        `GPT2LMHeadModel.from_pretrained` does. Building it leaves numpygpt's
        generator untouched. pytorch_model.bin (a pickle) is refused. Symlinks leading
        out of the directory are refused unless `follow_symlinks`. See `hf.py`.
        """
        if dtype is not None and np.dtype(dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
        cfg, state_dict, stored = hf.read_directory(path, follow_symlinks=follow_symlinks, dtype=dtype)
        model = build_model(cfg, stored if dtype is None else np.dtype(dtype))
        model.load_state_dict(state_dict, strict=True, assign=True)  # the arrays just read become the parameters
        return model.eval()

    def save_pretrained(self, path: Any) -> None:
        """Write a Hugging Face GPT-2 directory that `transformers.GPT2LMHeadModel.from_pretrained` loads.

        Creates the directory if needed and writes config.json and
        model.safetensors, each atomically; a tied model stores only
        transformer.wte.weight, as transformers does. See `hf.write_directory`.
        """
        hf.write_directory(path, self.cfg, self.state_dict())

    # --- KV cache (generation) ---
    def _decodable(self) -> bool:
        """Whether a cached forward may run as `decode.forward`: grad mode off, and nothing
        that would see or change the modules' own steps (a module of another class or with
        a forward of its own, a hook, an attention observer, an active dropout)."""
        if is_grad_enabled():
            return False
        for m in self.modules():
            if (type(m).forward is not _DECODE_FORWARDS.get(type(m)) or "forward" in m.__dict__
                    or m._forward_pre_hooks or m._forward_hooks or m._backward_hooks
                    or (isinstance(m, MultiHeadAttention) and not m._fused())
                    or (isinstance(m, nn.Dropout) and m.training and m.p > 0)):
                return False
        return True

    def new_kv_cache(self, capacity: int | None = None) -> KVCache:
        """An empty KV cache for this model (capacity defaults to context_length)."""
        capacity = _checks.integer(capacity, "capacity", allow_none=True)
        return KVCache(self.cfg["n_layers"], capacity or self.cfg["context_length"])
    # --- end KV cache ---

    def extra_repr(self) -> str:
        return f"{self.num_parameters():,} parameters"


# the classes (and their forwards) `decode.forward` computes exactly; others take the modules' path
_DECODE_FORWARDS = {cls: cls.forward for cls in (GPTModel, TransformerBlock, MultiHeadAttention, FeedForward, GELU,
                                                 LayerNorm, nn.Linear, nn.Embedding, nn.Dropout, nn.Sequential)}

# ----------------------------------------------------------------------------- the KV cache


class LayerKVCache:
    """One attention layer's keys and values for the tokens seen so far.

    Buffers of `capacity` positions are allocated on first use and filled in
    place, so each new token costs one position's projections, not the whole context's.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.length = 0
        self.keys: np.ndarray | None = None    # (B, nh, capacity, hs)
        self.values: np.ndarray | None = None  # (B, nh, capacity, hs)

    def update(self, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append the new tokens' k, v (B, nh, T, hs); return all of them so far (B, nh, S + T, hs)."""
        b, nh, t, hs = k.shape
        if self.keys is None:
            self.keys = np.empty((b, nh, self.capacity, hs), dtype=k.dtype)
            self.values = np.empty((b, nh, self.capacity, hs), dtype=v.dtype)
        end = self.length + t
        if end > self.capacity:
            raise ValueError(f"KV cache is full: {self.length} + {t} tokens exceed its {self.capacity} positions")
        self.keys[:, :, self.length:end] = k
        self.values[:, :, self.length:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class KVCache:
    """The keys and values of every block, for generation: the first call runs the
    whole prompt, each later call only the new token(s). Positions continue from
    `length`, so a cache holds at most context_length tokens."""

    def __init__(self, n_layers: int, capacity: int):
        self.layers = [LayerKVCache(capacity) for _ in range(n_layers)]

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0


# ----------------------------------------------------------------------------- the model's input


def check_token_ids(in_idx: Any, cfg: Mapping[str, Any], start: int = 0) -> np.ndarray:
    """Token ids as an integer (B, T) array, or a clear error: not integers,
    out of range, not 2-D, empty, or longer than context_length (counting the
    `start` tokens already in a KV cache)."""
    ids = _checks.token_ids(in_idx, cfg["vocab_size"], shape="a (batch, num_tokens) array")
    if ids.ndim != 2:
        raise ValueError(f"token ids must have shape (batch, num_tokens), got shape {ids.shape}"
                         + (" (add a batch dim, e.g. ids[None, :])" if ids.ndim == 1 else ""))
    if start + ids.shape[1] > cfg["context_length"]:
        cached = f" after {start} cached tokens" if start else ""
        raise ValueError(f"{ids.shape[1]} tokens{cached} exceed context_length {cfg['context_length']}; "
                         f"crop the input to its last {cfg['context_length'] - start} tokens")
    if ids.shape[1] == 0:
        raise ValueError("the input has no tokens")
    return ids


# ----------------------------------------------------------------------------- counting parameters


def _available_memory() -> int | None:
    """Bytes of memory available to this process (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(cfg: Mapping[str, Any], dtype: Any = None) -> int:
    """The bytes a GPTModel of `cfg` needs for its parameters; a ValueError naming
    them when that is more than this machine has available, before anything is allocated."""
    itemsize = np.dtype(dtype or get_default_dtype()).itemsize
    need = count_parameters(cfg)["total"] * itemsize  # the causal masks are views of 2T - 1 numbers each
    available = _available_memory()
    if available is not None and need > available:
        raise ValueError(f"GPTModel: this config needs {need:,} bytes ({need / 2**30:.1f} GiB) for its parameters, "
                         f"more than the {available / 2**30:.1f} GiB available "
                         f"(vocab_size {cfg['vocab_size']}, context_length {cfg['context_length']}, emb_dim {cfg['emb_dim']}, "
                         f"n_layers {cfg['n_layers']})")
    return need


def count_parameters(model_or_cfg: GPTModel | Mapping[str, Any]) -> dict[str, Any]:
    """The seed's parameter figures for a config, or for a model (read from its `.cfg`).

    Worked out from the config alone, so the largest presets can be described
    without allocating them; the tests check every figure against built models.

        "rows"             [(name, count)] per top-level module, then indented ("  per block: ...")
                           the parts of one block
        "total"            every parameter, a tied out_head counted once
        "total_tied"       the total with out_head tied to tok_emb (the seed's 124M figure)
        "size_mb_float32"  the total's memory in float32, in MB (2²⁰ bytes)
    """
    cfg = validate_config(getattr(model_or_cfg, "cfg", model_or_cfg))
    V, T, C, L = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"], cfg["n_layers"]
    tied = cfg["tie_embeddings"]
    qkv = 3 * (C * C + (C if cfg["qkv_bias"] else 0))
    att = qkv + C * C + C                      # W_query, W_key, W_value, out_proj
    ff = (C * 4 * C + 4 * C) + (4 * C * C + C)  # layers.0, layers.2
    norms = 2 * 2 * C                          # norm1, norm2: scale and shift
    rows = [
        ("tok_emb", V * C),
        ("pos_emb", T * C),
        (f"trf_blocks ({L} x TransformerBlock)", L * (att + ff + norms)),
        ("  per block: att", att),
        ("  per block: ff", ff),
        ("  per block: norm1 + norm2", norms),
        ("final_norm", 2 * C),
        ("out_head" + (" (tied to tok_emb)" if tied else ""), 0 if tied else V * C),
    ]
    total = sum(n for name, n in rows if not name.startswith("  "))
    head = V * C
    total_untied = total + head if tied else total
    return {"rows": rows, "total": total, "total_tied": total_untied - head, "size_mb_float32": total * 4 / 1024**2}


# ----------------------------------------------------------------------------- a model for stored weights


def build_model(cfg: Mapping[str, Any], dtype: Any) -> GPTModel:
    """`GPTModel(cfg)` with its parameters in `dtype`, for stored weights to be loaded into.

    Built under `nn.init.no_init()`: the parameters are left uninitialised
    (`np.empty`), since a strict `load_state_dict` overwrites every one of
    them next; drawing 124M random numbers first would take longer than
    reading the file. numpygpt's generator and default dtype are as they
    were afterwards, so building it does not shift the random numbers a
    script draws next.
    """
    state, default = get_rng_state(), get_default_dtype()
    set_default_dtype(dtype)
    try:
        with nn.init.no_init():
            return GPTModel(cfg)
    finally:
        set_default_dtype(default)
        set_rng_state(state)


# ----------------------------------------------------------------------------- the seed's scaffolding


class DummyTransformerBlock(nn.Module):
    """A placeholder block that returns its input (the seed's first sketch of the backbone)."""

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class DummyLayerNorm(nn.Module):
    """A placeholder LayerNorm that returns its input."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class DummyGPTModel(nn.Module):
    """The seed's backbone sketch: embeddings, dummy blocks, dummy norm, output head.
    It already maps (B, T) ids to (B, T, V) logits."""

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        cfg = validate_config(cfg)
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[DummyTransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = DummyLayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: Any) -> Tensor:
        in_idx = check_token_ids(in_idx, self.cfg)
        batch_size, seq_len = in_idx.shape                      # (B, T)
        tok_embeds = self.tok_emb(in_idx)                       # (B, T, C)
        pos_embeds = self.pos_emb(np.arange(seq_len))           # (T, C)
        x = self.drop_emb(tok_embeds + pos_embeds)              # (B, T, C)
        x = self.trf_blocks(x)
        x = self.final_norm(x)
        return self.out_head(x)                                 # (B, T, V)


class ExampleDeepNeuralNetwork(nn.Module):
    """The seed's five-layer network for the shortcut experiment: each layer is
    Linear + GELU; with `use_shortcut` a layer's input is added to its output
    whenever the shapes match, so gradients have a path that skips the layer.
    The GELU is `nn.GELU()`, the exact erf form, as the seed's `torch.nn.GELU`
    (not this module's tanh `GELU`)."""

    def __init__(self, layer_sizes: list[int], use_shortcut: bool):
        super().__init__()
        if len(layer_sizes) != 6:
            raise ValueError(f"ExampleDeepNeuralNetwork needs 6 layer sizes (5 layers), got {len(layer_sizes)}")
        self.use_shortcut = use_shortcut
        self.layers = nn.ModuleList([
            nn.Sequential(nn.Linear(layer_sizes[i], layer_sizes[i + 1]), nn.GELU()) for i in range(5)
        ])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            layer_output = layer(x)                               # (B, sizes[i+1])
            if self.use_shortcut and x.shape == layer_output.shape:
                x = x + layer_output                              # the shortcut
            else:
                x = layer_output
        return x
