"""The three sides under test, each a set of builders returning one-iteration closures.

A builder constructs the model and its inputs (not timed) and returns a
function that runs the workload once (timed). Every builder raises
:class:`common.Unavailable` when its package cannot be imported, so the
caller can report "skipped" or "not available yet" instead of crashing.

Sides:
- ``numpygpt``: this project, through its public API only.
- ``torch``: the seed's model in PyTorch eager (``tests/torch_gpt.py``).
- ``transformers``: Hugging Face ``GPT2LMHeadModel``, random init.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, Callable

import numpy as np

import common
from common import Unavailable

Step = Callable[[], Any]


def _check_generated(out: Any, side: str) -> Any:
    """Fail loudly if a generate call returned other than (1, 4 + 50) ids."""
    expected = (1, len(common.PROMPT_IDS) + common.NEW_TOKENS)
    shape = tuple(getattr(out, "shape", ()))
    if shape != expected:
        raise RuntimeError(f"{side} generated ids of shape {shape}, expected {expected}")
    return out


# --------------------------------------------------------------------------- numpygpt

def _import_numpygpt() -> dict[str, Any]:
    """numpygpt's contract API, or Unavailable naming what is missing."""
    mods = {}
    for name in ("numpygpt", "numpygpt.model", "numpygpt.nn", "numpygpt.optim", "numpygpt.generate"):
        try:
            mods[name] = importlib.import_module(name)
        except Exception as exc:  # an import that fails half-way is also "not yet"
            if name == "numpygpt.generate":
                continue  # only the generate workload needs it; checked there
            raise Unavailable(f"numpygpt not available yet: import {name} failed ({type(exc).__name__}: {exc})")
    return mods


def numpygpt_info() -> dict[str, Any]:
    """Version facts about the numpygpt side."""
    mods = _import_numpygpt()
    return {
        "numpygpt": getattr(mods["numpygpt"], "__version__", "working tree"),
        "numpy": np.__version__,
    }


def numpygpt_forward() -> Step:
    """no_grad forward of a (2, 256) batch, model in eval mode."""
    mods = _import_numpygpt()
    ng, model_mod = mods["numpygpt"], mods["numpygpt.model"]
    model = model_mod.GPTModel(common.forward_config())
    model.eval()
    x, _ = common.batch_ids()

    def step() -> Any:
        with ng.no_grad():
            return model(x)

    return step


def numpygpt_train() -> Step:
    """Forward, cross-entropy, backward and one AdamW step; dropout 0."""
    mods = _import_numpygpt()
    model_mod, nn, optim = mods["numpygpt.model"], mods["numpygpt.nn"], mods["numpygpt.optim"]
    model = model_mod.GPTModel(common.train_config())
    model.train()
    opt = optim.AdamW(model.parameters(), lr=common.LR, weight_decay=common.WEIGHT_DECAY)
    x, y = common.batch_ids()

    def step() -> float:
        opt.zero_grad()
        logits = model(x)                                  # (B, T, V)
        loss = nn.functional.cross_entropy(logits, y)      # (..., V) with (...) targets
        loss.backward()
        opt.step()
        return loss.item()

    return step


def numpygpt_generate() -> tuple[Step, str]:
    """Greedy decoding of 50 tokens; `generate(use_cache=True)` where it exists."""
    mods = _import_numpygpt()
    gen = mods.get("numpygpt.generate")
    if gen is None:
        raise Unavailable("numpygpt not available yet: numpygpt.generate cannot be imported")
    model = mods["numpygpt.model"].GPTModel(common.forward_config())
    model.eval()
    idx = common.prompt_ids()
    ctx = common.forward_config()["context_length"]
    if hasattr(gen, "generate"):
        how = "numpygpt.generate.generate(use_cache=True)"

        def step() -> Any:
            out = gen.generate(model, idx, common.NEW_TOKENS, ctx, use_cache=True)
            return _check_generated(out, "numpygpt")
    elif hasattr(gen, "generate_text_simple"):
        how = "numpygpt.generate.generate_text_simple (no cache)"

        def step() -> Any:
            out = gen.generate_text_simple(model, idx, common.NEW_TOKENS, ctx)
            return _check_generated(out, "numpygpt")
    else:
        raise Unavailable("numpygpt not available yet: numpygpt.generate has no generate function")
    return step, how


# --------------------------------------------------------------------------- torch (the seed)

def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise Unavailable(f"torch not installed ({exc})")
    torch.set_num_threads(common.cpu_count())
    return torch


def _import_torch_gpt() -> Any:
    """tests/torch_gpt.py as `tests.torch_gpt`, checked to be this repository's file."""
    _import_torch()
    expected = (common.REPO_ROOT / "tests" / "torch_gpt.py").resolve()
    try:
        mod = importlib.import_module("tests.torch_gpt")
        if Path(mod.__file__).resolve() == expected:
            return mod
    except ImportError:
        pass
    # Another package called `tests` shadows ours: load the file by path.
    spec = importlib.util.spec_from_file_location("torch_gpt", expected)
    if spec is None or spec.loader is None:
        raise Unavailable(f"cannot load the reference model from {expected}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def torch_info() -> dict[str, Any]:
    """Version facts about the torch side."""
    torch = _import_torch()
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def torch_forward() -> Step:
    """no_grad forward of the seed's model, eval mode."""
    torch = _import_torch()
    tg = _import_torch_gpt()
    model = tg.GPTModel(common.forward_config())
    model.eval()
    x = torch.from_numpy(common.batch_ids()[0])

    def step() -> Any:
        with torch.no_grad():
            return model(x)

    return step


def torch_train() -> Step:
    """Seed model train step with torch.optim.AdamW; dropout 0."""
    torch = _import_torch()
    tg = _import_torch_gpt()
    model = tg.GPTModel(common.train_config())
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=common.LR, weight_decay=common.WEIGHT_DECAY)
    x_np, y_np = common.batch_ids()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def step() -> float:
        opt.zero_grad()
        logits = model(x)                                                        # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss.backward()
        opt.step()
        return loss.item()

    return step


def torch_generate() -> tuple[Step, str]:
    """The seed's generate_text_simple: greedy, no KV cache."""
    torch = _import_torch()
    tg = _import_torch_gpt()
    model = tg.GPTModel(common.forward_config())
    model.eval()
    idx = torch.from_numpy(common.prompt_ids())
    ctx = common.forward_config()["context_length"]

    def step() -> Any:
        out = tg.generate_text_simple(model, idx, common.NEW_TOKENS, ctx)
        return _check_generated(out, "torch")

    return step, "generate_text_simple (no cache)"


# --------------------------------------------------------------------------- transformers

def _hf_model() -> tuple[Any, Any]:
    torch = _import_torch()
    try:
        import transformers
    except ImportError as exc:
        raise Unavailable(f"transformers not installed ({exc})")
    cfg = common.forward_config()
    config = transformers.GPT2Config(
        vocab_size=cfg["vocab_size"],
        n_positions=cfg["context_length"],
        n_embd=cfg["emb_dim"],
        n_layer=cfg["n_layers"],
        n_head=cfg["n_heads"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).to(torch.float32)
    model.eval()
    return torch, model


def transformers_info() -> dict[str, Any]:
    """Version facts about the transformers side."""
    torch = _import_torch()
    try:
        import transformers
    except ImportError as exc:
        raise Unavailable(f"transformers not installed ({exc})")
    return {"transformers": transformers.__version__, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def transformers_forward() -> Step:
    """no_grad forward of GPT2LMHeadModel (logits for every position, no cache built)."""
    torch, model = _hf_model()
    x = torch.from_numpy(common.batch_ids()[0])

    def step() -> Any:
        with torch.no_grad():
            return model(input_ids=x, use_cache=False).logits

    return step


def transformers_generate() -> tuple[Step, str]:
    """GPT2LMHeadModel.generate: greedy, KV cache, exactly 50 new tokens."""
    torch, model = _hf_model()
    idx = torch.from_numpy(common.prompt_ids())
    mask = torch.ones_like(idx)
    # No end-of-text stop: a random model could emit id 50256 and end early.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    impl = getattr(model.config, "_attn_implementation", "default")

    def step() -> Any:
        out = model.generate(idx, attention_mask=mask, do_sample=False,
                             max_new_tokens=common.NEW_TOKENS, use_cache=True)
        return _check_generated(out, "transformers")

    return step, f"GPT2LMHeadModel.generate(use_cache=True), attention {impl}"


# --------------------------------------------------------------------------- reference matmul

def numpy_matmul() -> Step:
    """MATMUL_REPS float32 (N, N) @ (N, N) NumPy matmuls: the FLOP/s ceiling for MFU."""
    rng = np.random.default_rng(common.DATA_SEED)
    n = common.MATMUL_N
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)

    def step() -> Any:
        for _ in range(common.MATMUL_REPS):
            np.matmul(a, b, out=out)
        return out

    return step


BUILDERS: dict[str, dict[str, Callable[[], Any]]] = {
    "numpygpt": {"forward": numpygpt_forward, "train": numpygpt_train,
                 "generate": numpygpt_generate, "memory": numpygpt_train,
                 "info": numpygpt_info},
    "torch": {"forward": torch_forward, "train": torch_train,
              "generate": torch_generate, "memory": torch_train,
              "info": torch_info},
    "transformers": {"forward": transformers_forward, "generate": transformers_generate,
                     "info": transformers_info},
    "numpy": {"matmul": numpy_matmul, "info": lambda: {"numpy": np.__version__}},
}
