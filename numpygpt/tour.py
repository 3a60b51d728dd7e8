"""`numpygpt tour`: the seed's sections in order, each computed by numpygpt.

Each section is a function, `show_<section>()`, that prints what the seed's
section shows. The
numbers come from numpygpt's own generator, so random values differ from the
seed's PyTorch printouts; shapes, identities (mean 0, variance 1, rows summing
to 1) and the shape of the experiments (vanishing gradients) are the same.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from . import functional as F
from . import nn
from .autograd import no_grad
from .generate import generate_text_simple
from .model import (
    GELU,
    GPT_CONFIG_124M,
    DummyGPTModel,
    ExampleDeepNeuralNetwork,
    FeedForward,
    GPTModel,
    LayerNorm,
    MultiHeadAttention,
    TransformerBlock,
    count_parameters,
)
from .random import manual_seed
from .tensor import rand, randn, tensor
from .tokenizer import get_encoding


def _fmt(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), precision=4, suppress_small=True, max_line_width=100)


def seed_batch() -> np.ndarray:
    """The seed's batch: "Every effort moves you" and "Every day holds a", as (2, 4) ids."""
    enc = get_encoding("gpt2")
    return np.stack([np.array(enc.encode(t)) for t in ("Every effort moves you", "Every day holds a")])


def show_config() -> None:
    print("GPT_CONFIG_124M =")
    for k, v in GPT_CONFIG_124M.items():
        print(f"    {k!r}: {v!r},")


def show_tokens() -> None:
    batch = seed_batch()
    print('tokenizer = get_encoding("gpt2"); two texts -> a (2, 4) batch of token ids:')
    print(_fmt(batch))


def show_dummy() -> None:
    manual_seed(123)
    model = DummyGPTModel(GPT_CONFIG_124M)
    logits = model(seed_batch())
    print("DummyGPTModel: embeddings -> dummy blocks -> dummy norm -> out_head")
    print("Output shape:", logits.shape)
    print(_fmt(logits.data[:, :, :3]), "... (first 3 of 50257 logits per token)")


def show_layernorm() -> None:
    # The seed uses torch.manual_seed(123); numpygpt's generator draws other numbers, and
    # with 123 one row is all zeros after the ReLU (variance 0). Seed 0 gives two live rows.
    manual_seed(0)
    batch_example = randn(2, 5)
    layer = nn.Sequential(nn.Linear(5, 6), nn.ReLU())
    out = layer(batch_example)
    mean, var = out.mean(dim=-1, keepdim=True), out.var(dim=-1, keepdim=True)
    print("Linear(5, 6) + ReLU on a (2, 5) batch:")
    print(_fmt(out.data))
    print("Mean:", _fmt(mean.data.ravel()), " Variance:", _fmt(var.data.ravel()))
    out_norm = (out - mean) / var.sqrt()
    print("By hand, (out - mean) / sqrt(var):")
    print("Mean:", _fmt(out_norm.mean(dim=-1).data), " Variance:", _fmt(out_norm.var(dim=-1).data))
    ln = LayerNorm(emb_dim=5)
    out_ln = ln(batch_example)
    print("LayerNorm(emb_dim=5) (scale 1, shift 0, biased variance):")
    print("Mean:", _fmt(out_ln.mean(dim=-1).data), " Variance:",
          _fmt(out_ln.var(dim=-1, unbiased=False).data))


def show_gelu(out_dir: str = ".") -> None:
    x = np.linspace(-3, 3, 100)
    y_gelu = GELU()(tensor(x)).data
    y_relu = nn.ReLU()(tensor(x)).data
    print("x      GELU(x)   ReLU(x)")
    for v in (-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0):
        print(f"{v:5.1f}  {GELU()(tensor(v)).item():8.5f}  {max(v, 0.0):8.5f}")
    print("GELU is smooth and slightly negative below 0 (minimum about -0.17 near x = -0.75);"
          " ReLU is 0 there and has a kink at 0.")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(install matplotlib for a plot)")
        return
    fig = plt.figure(figsize=(8, 3))
    for i, (y, label) in enumerate(zip([y_gelu, y_relu], ["GELU", "ReLU"]), 1):
        ax = fig.add_subplot(1, 2, i)
        ax.plot(x, y)
        ax.set_title(f"{label} activation function")
        ax.set_xlabel("x")
        ax.set_ylabel(f"{label}(x)")
        ax.grid(True)
    fig.tight_layout()
    path = os.path.join(out_dir, "gelu_vs_relu.png")
    fig.savefig(path)
    plt.close(fig)
    print("plot written to", path)


def show_feedforward() -> None:
    manual_seed(123)
    ffn = FeedForward(GPT_CONFIG_124M)
    x = rand(2, 3, 768)
    out = ffn(x)
    print("FeedForward: Linear(768, 3072) -> GELU -> Linear(3072, 768)")
    print("input shape:", x.shape, "-> output shape:", out.shape)


def shortcut_gradients(use_shortcut: bool, seed: int = 123) -> list[tuple[str, float]]:
    """The seed's experiment: mean |gradient| of each layer's weight after one
    backward of MSE(model([[1, 0, -1]]), 0) through five Linear+GELU layers."""
    manual_seed(seed)
    model = ExampleDeepNeuralNetwork([3, 3, 3, 3, 3, 1], use_shortcut=use_shortcut)
    output = model(tensor([[1.0, 0.0, -1.0]]))
    loss = nn.MSELoss()(output, tensor([[0.0]]))
    loss.backward()
    return [(name, float(np.abs(p.grad).mean())) for name, p in model.named_parameters() if "weight" in name]


def show_shortcut() -> None:
    first = {}
    for use in (False, True):
        print("with shortcut connections:" if use else "without shortcut connections:")
        grads = shortcut_gradients(use)
        for name, g in grads:
            print(f"    {name} has gradient mean of {g:.6g}")
        first[use] = grads[0][1]
    print(f"The first layer's gradient is {first[True] / first[False]:.3g} times larger with shortcuts:"
          " without them it fades on the way back through the layers (vanishing gradients).")


def show_attention() -> None:
    manual_seed(123)
    mha = MultiHeadAttention(d_in=6, d_out=4, context_length=4, dropout=0.0, num_heads=2)
    x = rand(1, 4, 6)
    with no_grad():
        q = mha.W_query(x).view(1, 4, 2, 2).transpose(1, 2)
        k = mha.W_key(x).view(1, 4, 2, 2).transpose(1, 2)
        scores = (q @ k.transpose(2, 3)).masked_fill(mha.mask.astype(bool), -np.inf)
        weights = F.softmax(scores / 2 ** 0.5, dim=-1)
        out = mha(x)
    print("MultiHeadAttention(d_in=6, d_out=4, num_heads=2) on 4 tokens; head 0's attention weights:")
    print(_fmt(weights.data[0, 0]))
    print("zero above the diagonal (no token sees the future); every row sums to 1:",
          _fmt(weights.data[0, 0].sum(-1)))
    print("output shape:", out.shape)


def show_block() -> None:
    manual_seed(123)
    x = rand(2, 4, 768)
    blk = TransformerBlock(GPT_CONFIG_124M)
    blk.eval()
    with no_grad():
        output = blk(x)
    print("TransformerBlock: x + att(norm1(x)), then x + ff(norm2(x))")
    print("Input shape:", x.shape)
    print("Output shape:", output.shape)


def show_model() -> None:
    manual_seed(123)
    gpt = GPTModel(GPT_CONFIG_124M)
    gpt.eval()
    with no_grad():
        logits = gpt(seed_batch())
    c = count_parameters(gpt)
    print("GPTModel(GPT_CONFIG_124M) on the (2, 4) batch -> logits", logits.shape)
    print(f"Total number of parameters: {c['total']:,}")
    print(f"Without the output head (tied to tok_emb, as GPT-2): {c['total_tied']:,}")
    print(f"Total size of the model: {c['size_mb_float32']:.2f} MB (float32)")


def show_generate(prompt: str = "Hello, I am", max_new_tokens: int = 6, seed: int = 123,
             cfg: dict | None = None, run: Callable[..., np.ndarray] = generate_text_simple) -> None:
    """The seed's demo: an untrained GPT (the 124M config unless `cfg` is given)
    continues a prompt. `run(model, ids, max_new_tokens, context_size)` does the
    generating: the seed's greedy loop here, `generate` with sampling options in
    `numpygpt generate`."""
    cfg = GPT_CONFIG_124M if cfg is None else cfg
    tokenizer = get_encoding("gpt2")
    manual_seed(seed)
    gpt = GPTModel(cfg)
    gpt.eval()  # disable dropout
    encoded = tokenizer.encode(prompt, allowed_special={"<|endoftext|>"})
    print("encoded:", encoded)
    encoded_tensor = np.array(encoded)[None, :]
    print("encoded_tensor.shape:", encoded_tensor.shape)
    out = run(gpt, encoded_tensor, max_new_tokens, cfg["context_length"])
    print("Output:", out)
    print("Output length:", len(out[0]))
    print(tokenizer.decode(out[0].tolist()))


SECTIONS: dict[str, tuple[str, Callable[..., None]]] = {
    "config": ("Configuring the 124M-parameter GPT-2", show_config),
    "tokens": ("Token ids for a batch of two texts", show_tokens),
    "dummy": ("A dummy GPT backbone", show_dummy),
    "layernorm": ("Layer normalization", show_layernorm),
    "gelu": ("GELU activation", show_gelu),
    "feedforward": ("Feed forward network", show_feedforward),
    "shortcut": ("Shortcut connections", show_shortcut),
    "attention": ("Causal multi-head attention", show_attention),
    "block": ("Transformer block", show_block),
    "model": ("The GPT model", show_model),
    "generate": ("Generating text", show_generate),
}


def run(section: str | None = None, out_dir: str = ".") -> None:
    """Print one section, or all of them in the seed's order."""
    if section is not None and section not in SECTIONS:
        raise ValueError(f"unknown tour section {section!r}; choose one of {', '.join(SECTIONS)}")
    names = [section] if section else list(SECTIONS)
    for i, name in enumerate(names):
        title, fn = SECTIONS[name]
        if i:
            print()
        print(f"== {name}: {title} ==")
        fn(out_dir) if name == "gelu" else fn()
