"""`numpygpt tour`: the seed's sections in order, each computed by numpygpt.

Each section is a function, `show_<section>()`, that prints what the seed's
section shows. numpygpt's generator is PyTorch's, so after the seed's
`manual_seed(123)` the numbers are the seed's own: where the seed prints
numbers, the section prints them below numpygpt's (`SEED_PRINTS`), to the
digits the seed shows. The
numbers come from numpygpt's own generator, so random values differ from the
seed's PyTorch printouts; shapes, identities (mean 0, variance 1, rows summing
to 1) and the shape of the experiments (vanishing gradients) are the same.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from . import bugs
from . import nn
from .autograd import no_grad
from .creation import rand, randn, tensor
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
from .random import manual_seed, set_dropout_stream
from .tensor import Tensor
from .tokenizer import get_encoding

# What the seed prints (PyTorch, torch.manual_seed(123)), section by section.
SEED_PRINTS: dict[str, Any] = {
    "tokens": [[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]],
    # DummyGPTModel's logits, first and last three of each token's 50,257 (train mode: dropout 0.1)
    "dummy": [[[-0.9289, 0.2748, -0.7557, -1.6070, 0.2702, -0.5888],
               [-0.4476, 0.1726, 0.5354, -0.3932, 1.5285, 0.8557],
               [0.5680, 1.6053, -0.2155, 1.1624, 0.1380, 0.7425],
               [0.0448, 2.4787, -0.8843, 1.3219, -0.0864, -0.5856]],
              [[-1.5474, -0.0542, -1.0571, -1.8061, -0.4494, -0.6747],
               [-0.8422, 0.8243, -0.1098, -0.1434, 0.2079, 1.2046],
               [0.1355, 1.1858, -0.1453, 0.0869, -0.1590, 0.1552],
               [0.1666, -0.8138, 0.2307, 2.5035, -0.3055, -0.3083]]],
    "layernorm.out": [[0.2260, 0.3470, 0.0000, 0.2216, 0.0000, 0.0000],
                      [0.2133, 0.2394, 0.0000, 0.5198, 0.3297, 0.0000]],
    "layernorm.mean": [[0.1324], [0.2170]],
    "layernorm.var": [[0.0231], [0.0398]],
    "layernorm.normalized": [[0.6159, 1.4126, -0.8719, 0.5872, -0.8719, -0.8719],
                             [-0.0189, 0.1121, -1.0876, 1.5173, 0.5647, -1.0876]],
    "shortcut.without": [0.0002017411752603948, 0.00012011770741082728, 0.0007152436301112175,
                         0.0013988513965159655, 0.005049605388194323],
    "shortcut.with": [0.22186797857284546, 0.20709273219108582, 0.32923877239227295,
                      0.2667772173881531, 1.3268063068389893],
    "generate.ids": [15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267],
    "generate.text": "Hello, I am Featureiman Byeswickattribute argue",
}


def _fmt(a: Any) -> str:
    return np.array2string(np.asarray(a, dtype=np.float64), precision=4, suppress_small=True,
                           max_line_width=100, floatmode="fixed")


def _with_seed(ours: Any, key: str) -> None:
    """numpygpt's numbers, then the seed's printout of the same thing."""
    print("numpygpt:", _fmt(ours).replace("\n", "\n          "))
    print("seed:    ", _fmt(SEED_PRINTS[key]).replace("\n", "\n          "))


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
    print("numpygpt:", batch.tolist())
    print("seed:    ", SEED_PRINTS["tokens"])


def show_dummy() -> None:
    # The seed's printout was made by a PyTorch whose CPU dropout drew its masks from
    # MKL's MCG31m1 stream (older x86 releases); PyTorch 2 draws them from MT19937.
    previous = set_dropout_stream("mkl")
    try:
        manual_seed(123)
        model = DummyGPTModel(GPT_CONFIG_124M)  # in train mode, as the seed's: dropout 0.1 is on
        logits = model(seed_batch())
    finally:
        set_dropout_stream(previous)
    print("DummyGPTModel: embeddings -> dummy blocks -> dummy norm -> out_head")
    print("Output shape:", logits.shape)
    print("The first and last three of each token's 50,257 logits:")
    _with_seed(logits.data[:, :, [0, 1, 2, -3, -2, -1]], "dummy")
    print("(dropout masks from the MKL stream the seed's PyTorch used: "
          'numpygpt.random.set_dropout_stream("mkl"); the default is PyTorch 2\'s)')


def show_layernorm() -> None:
    manual_seed(123)
    batch_example = randn(2, 5)
    layer = nn.Sequential(nn.Linear(5, 6), nn.ReLU())
    out = layer(batch_example)
    print("Linear(5, 6) + ReLU on a (2, 5) batch:")
    _with_seed(out.data, "layernorm.out")
    mean, var = out.mean(dim=-1, keepdim=True), out.var(dim=-1, keepdim=True)
    print("Mean:")
    _with_seed(mean.data, "layernorm.mean")
    print("Variance:")
    _with_seed(var.data, "layernorm.var")
    out_norm = (out - mean) / var.sqrt()
    print("Normalized by hand, (out - mean) / sqrt(var):")
    _with_seed(out_norm.data, "layernorm.normalized")
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
    return [(name, p.grad.abs().mean().item()) for name, p in model.named_parameters() if "weight" in name]


def show_shortcut() -> None:
    first = {}
    for use in (False, True):
        print("with shortcut connections:" if use else "without shortcut connections:")
        grads = shortcut_gradients(use)
        seed = SEED_PRINTS["shortcut.with" if use else "shortcut.without"]
        for (name, g), printed in zip(grads, seed):
            print(f"    {name} has gradient mean of {g:.8g}   (seed: {printed:.8g})")
        first[use] = grads[0][1]
    print("(float32 gradients: the last digits depend on the machine's float32 arithmetic)")
    print(f"The first layer's gradient is {first[True] / first[False]:.3g} times larger with shortcuts:"
          " without them it fades on the way back through the layers (vanishing gradients).")
    _see_also("numpygpt gradflow          the same per layer, and a GPT with and without its residuals",
              "numpygpt graph --example matrix    the graph backward walks, with each gradient's norm",
              "with numpygpt.trace_backward(): loss.backward()    each backward step, its formula and norms")


def _see_also(*lines: str) -> None:
    print("see also:")
    for line in lines:
        print("    " + line)


def show_attention() -> None:
    manual_seed(123)
    mha = MultiHeadAttention(d_in=6, d_out=4, context_length=4, dropout=0.0, num_heads=2)
    x = rand(1, 4, 6)
    seen: dict[str, Tensor] = {}
    mha.observer = lambda **tensors: seen.update(tensors)  # the forward's own variables, as it makes them
    with no_grad():
        out = mha(x)
    del mha.observer
    weights = seen["attn_weights"]
    print("MultiHeadAttention(d_in=6, d_out=4, num_heads=2) on 4 tokens; head 0's attention weights:")
    print(_fmt(weights.data[0, 0]))
    print("zero above the diagonal (no token sees the future); every row sums to 1:",
          _fmt(weights.data[0, 0].sum(-1)))
    print("output shape:", out.shape)
    _see_also('numpygpt attention --weights DIR "text"    every layer and head of a GPT, as heatmaps',
              "numpygpt.reference.record(model, ids)        queries, keys, attn_scores, attn_weights by name")


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
    _see_also("numpygpt graph --example gpt     a small GPT's loss graph, one cluster per module",
              'with numpygpt.trace_backward(filter="trf_blocks.0"): loss.backward()    one block\'s backward, step by step')


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
             cfg: dict | None = None, run: Callable[..., np.ndarray] = generate_text_simple,
                  compare: bool = False) -> None:
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
    if compare:
        print(f"(the seed prints {SEED_PRINTS['generate.ids']} and {SEED_PRINTS['generate.text']!r})")
    print("encoded:", encoded)
    encoded_tensor = tensor(encoded).unsqueeze(0)
    print("encoded_tensor.shape:", encoded_tensor.shape)
    out = run(gpt, encoded_tensor, max_new_tokens, cfg["context_length"])
    out = out if isinstance(out, Tensor) else tensor(out)
    print("Output:", out)
    print("Output length:", len(out[0]))
    print(tokenizer.decode(out[0].tolist()))


def show_bugs() -> None:
    """Each mistake of numpygpt.bugs injected into a tiny GPT: the first recorded tensor that
    diverges from the clean run, and by how much (the bug's fingerprint)."""
    manual_seed(123)
    cfg = {"vocab_size": 97, "context_length": 16, "emb_dim": 16, "n_heads": 4, "n_layers": 2,
           "drop_rate": 0.1, "qkv_bias": True, "tie_embeddings": True}
    gpt = GPTModel(cfg).double().eval()
    rng = np.random.default_rng(123)
    ids, targets = rng.integers(0, cfg["vocab_size"], size=(2, 2, 8))
    print("Each mistake injected into a tiny GPT (float64, 2 blocks, 16 wide, tied head, dropout 0.1 in eval mode),")
    print("recorded with numpygpt.reference.record and compared with the clean run:")
    print(f"{'bug':<22} {'first divergent tensor':<30} {'max rel':>8}  what it is")
    for bug in bugs.BUGS.values():
        row = bugs.fingerprint(gpt, bug, ids, targets)
        err = f"{row.max_rel:.1e}" if np.isfinite(row.max_rel) else "inf"
        print(f"{bug.name:<22} {row.name:<30} {err:>8}  {bug.description}")
    print("inf: a score that should be -inf (masked) is a number, or the other way round.")
    print("numpygpt.bugs.diagnose(model, ids, targets, theirs) names the bugs that fit another recording.")


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
    "generate": ("Generating text", lambda: show_generate(compare=True)),
    "bugs": ("Common mistakes and where they first show", show_bugs),
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
