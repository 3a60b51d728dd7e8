"""The sides under test, each a set of builders returning one-iteration closures.

A builder takes a :class:`common.Workload` (and, for "load", the directory of a
saved model), constructs the model and its inputs (not timed) and returns a
function that runs the workload once (timed). Every builder raises
:class:`common.Unavailable` when its package cannot be imported, so the
caller can report "skipped" or "not available yet" instead of crashing.

Sides:
- ``numpygpt``: this project, through its public API only.
- ``torch``: the seed's model in PyTorch eager (``tests/torch_gpt.py``).
- ``transformers``: Hugging Face ``GPT2LMHeadModel``, random init.
- ``numpy``: the machine's two limits, a large float32 matmul (FLOP/s) and a
  large float32 matrix-vector product (memory bandwidth).
- ``safetensors``: ``safetensors.numpy.load_file``, the floor for loading.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import numpy as np
from common import Unavailable, Workload

Step = Callable[[], Any]
WEIGHTS_FILE = "model.safetensors"


def _check_generated(out: Any, side: str) -> Any:
    """Fail loudly if a generate call returned other than (1, 4 + 50) ids."""
    expected = (1, len(common.PROMPT_IDS) + common.NEW_TOKENS)
    shape = tuple(getattr(out, "shape", ()))
    if shape != expected:
        raise RuntimeError(f"{side} generated ids of shape {shape}, expected {expected}")
    return out


def warm_file_cache(path: Path) -> int:
    """Read a file once, untimed, so that the timed reads find it in the OS page cache."""
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            size += len(chunk)
    return size


# --------------------------------------------------------------------------- numpygpt

def _import_numpygpt() -> dict[str, Any]:
    """numpygpt's contract API, or Unavailable naming what is missing."""
    mods = {}
    for name in ("numpygpt", "numpygpt.model", "numpygpt.nn", "numpygpt.optim", "numpygpt.generate"):
        try:
            mods[name] = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - an import that fails half-way is also "not yet"
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


def _numpygpt_model(w: Workload) -> tuple[dict[str, Any], Any]:
    """numpygpt's modules and a GPTModel of ``w.cfg`` built in ``w.dtype``.

    float64 goes through the public `numpygpt.set_default_dtype`, so the
    parameters are created in float64 (not cast afterwards); the previous
    default is restored.
    """
    mods = _import_numpygpt()
    ng = mods["numpygpt"]
    previous = ng.get_default_dtype()
    ng.set_default_dtype(ng.float64 if w.dtype == "float64" else ng.float32)
    try:
        model = mods["numpygpt.model"].GPTModel(w.cfg)
    finally:
        ng.set_default_dtype(previous)
    return mods, model


def numpygpt_forward(w: Workload, _arg: str | None = None) -> Step:
    """no_grad forward of a (B, T) batch, model in eval mode."""
    mods, model = _numpygpt_model(w)
    ng = mods["numpygpt"]
    model.eval()
    x, _ = common.batch_ids(w)

    def step() -> Any:
        with ng.no_grad():
            return model(x)

    return step


def numpygpt_train(w: Workload, _arg: str | None = None) -> Step:
    """Forward, cross-entropy, backward and one AdamW step; dropout 0."""
    mods, model = _numpygpt_model(w)
    nn, optim = mods["numpygpt.nn"], mods["numpygpt.optim"]
    model.train()
    opt = optim.AdamW(model.parameters(), lr=common.LR, weight_decay=common.WEIGHT_DECAY)
    x, y = common.batch_ids(w)

    def step() -> float:
        opt.zero_grad()
        logits = model(x)                                  # (B, T, V)
        loss = nn.functional.cross_entropy(logits, y)      # (..., V) with (...) targets
        loss.backward()
        opt.step()
        return loss.item()

    return step


def numpygpt_generate(w: Workload, _arg: str | None = None) -> tuple[Step, str]:
    """Greedy decoding of 50 tokens; `generate(use_cache=True)` where it exists."""
    mods, model = _numpygpt_model(w)
    gen = mods.get("numpygpt.generate")
    if gen is None:
        raise Unavailable("numpygpt not available yet: numpygpt.generate cannot be imported")
    model.eval()
    idx = common.prompt_ids()
    ctx = w.cfg["context_length"]
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


def numpygpt_load(w: Workload, directory: str | None = None) -> tuple[Step, str]:
    """`GPTModel.from_pretrained(directory)` (config.json + model.safetensors), file cache warm."""
    if directory is None:
        raise RuntimeError("the load workload needs the directory of a saved model")
    mods = _import_numpygpt()
    warm_file_cache(Path(directory) / WEIGHTS_FILE)
    gpt = mods["numpygpt.model"].GPTModel

    def step() -> Any:
        return gpt.from_pretrained(directory)

    return step, "GPTModel.from_pretrained(dir), file in the page cache"


def save_checkpoint(w: Workload, directory: str) -> int:
    """Write a randomly initialised ``w.cfg`` model with `save_pretrained`; returns the file's bytes."""
    _, model = _numpygpt_model(w)
    model.save_pretrained(directory)
    return (Path(directory) / WEIGHTS_FILE).stat().st_size


# --------------------------------------------------------------------------- torch (the seed)

def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise Unavailable(f"torch not installed ({exc})")
    torch.set_num_threads(common.threads())
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


def _torch_model(w: Workload) -> tuple[Any, Any]:
    """torch and the seed's GPTModel of ``w.cfg`` (``.double()`` for float64)."""
    torch = _import_torch()
    model = _import_torch_gpt().GPTModel(w.cfg)
    if w.dtype == "float64":
        model = model.double()
    return torch, model


def torch_forward(w: Workload, _arg: str | None = None) -> Step:
    """no_grad forward of the seed's model, eval mode."""
    torch, model = _torch_model(w)
    model.eval()
    x = torch.from_numpy(common.batch_ids(w)[0])

    def step() -> Any:
        with torch.no_grad():
            return model(x)

    return step


def torch_train(w: Workload, _arg: str | None = None) -> Step:
    """Seed model train step with torch.optim.AdamW; dropout 0."""
    torch, model = _torch_model(w)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=common.LR, weight_decay=common.WEIGHT_DECAY)
    x_np, y_np = common.batch_ids(w)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def step() -> float:
        opt.zero_grad()
        logits = model(x)                                                        # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss.backward()
        opt.step()
        return loss.item()

    return step


def torch_generate(w: Workload, _arg: str | None = None) -> tuple[Step, str]:
    """The seed's generate_text_simple: greedy, no KV cache."""
    torch, model = _torch_model(w)
    tg = _import_torch_gpt()
    model.eval()
    idx = torch.from_numpy(common.prompt_ids())
    ctx = w.cfg["context_length"]

    def step() -> Any:
        out = tg.generate_text_simple(model, idx, common.NEW_TOKENS, ctx)
        return _check_generated(out, "torch")

    return step, "generate_text_simple (no cache)"


# --------------------------------------------------------------------------- transformers

def _import_transformers() -> tuple[Any, Any]:
    torch = _import_torch()
    try:
        import transformers
    except ImportError as exc:
        raise Unavailable(f"transformers not installed ({exc})")
    return torch, transformers


def _hf_model(w: Workload) -> tuple[Any, Any]:
    torch, transformers = _import_transformers()
    cfg = w.cfg
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
    torch, transformers = _import_transformers()
    return {"transformers": transformers.__version__, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def transformers_forward(w: Workload, _arg: str | None = None) -> tuple[Step, str]:
    """no_grad forward of GPT2LMHeadModel (logits for every position, no cache built)."""
    torch, model = _hf_model(w)
    x = torch.from_numpy(common.batch_ids(w)[0])
    impl = getattr(model.config, "_attn_implementation", "default")

    def step() -> Any:
        with torch.no_grad():
            return model(input_ids=x, use_cache=False).logits

    return step, f"GPT2LMHeadModel(use_cache=False), attention {impl}"


def transformers_generate(w: Workload, _arg: str | None = None) -> tuple[Step, str]:
    """GPT2LMHeadModel.generate: greedy, KV cache, exactly 50 new tokens."""
    torch, model = _hf_model(w)
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


# --------------------------------------------------------------------------- the machine's limits

def numpy_matmul(_w: Workload | None = None, _arg: str | None = None) -> tuple[Step, str]:
    """reps float32 (N, N) @ (N, N) NumPy matmuls: the FLOP/s ceiling for MFU."""
    rng = np.random.default_rng(common.DATA_SEED)
    n, reps = common.matmul_size()
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)

    def step() -> Any:
        for _ in range(reps):
            np.matmul(a, b, out=out)
        return out

    return step, f"{reps} x float32 ({n}, {n}) @ ({n}, {n})"


def numpy_bandwidth(_w: Workload | None = None, _arg: str | None = None) -> tuple[Step, str]:
    """reps float32 matrix-vector products over a ~650 MB matrix: the memory-bandwidth ceiling.

    A matrix-vector product does 2 FLOPs per matrix element read (4 bytes),
    far too little arithmetic to hide the memory traffic, so its time is the
    time to stream the matrix from RAM: bandwidth = matrix bytes / time. The
    same holds for one cached decoding step, which multiplies each weight
    matrix by one token's vector.
    """
    rows, cols, reps = common.bandwidth_size()
    rng = np.random.default_rng(common.DATA_SEED)
    a = np.empty((rows, cols), dtype=np.float32)
    for r in range(0, rows, 1024):            # filled in slices: no float64 temporary of 1.3 GB
        a[r:r + 1024] = rng.standard_normal((min(1024, rows - r), cols), dtype=np.float32)
    x = rng.standard_normal(cols, dtype=np.float32)
    out = np.empty(rows, dtype=np.float32)

    def step() -> Any:
        for _ in range(reps):
            np.matmul(a, x, out=out)
        return out

    return step, f"{reps} x float32 ({rows}, {cols}) @ ({cols},), {a.nbytes / 1e6:.0f} MB"


def safetensors_load(w: Workload, directory: str | None = None) -> tuple[Step, str]:
    """`safetensors.numpy.load_file` of the same file: the time just to read the weights."""
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise Unavailable(f"safetensors not installed ({exc})")
    if directory is None:
        raise RuntimeError("the load workload needs the directory of a saved model")
    path = Path(directory) / WEIGHTS_FILE
    warm_file_cache(path)

    def step() -> Any:
        return load_file(str(path))

    return step, "safetensors.numpy.load_file(model.safetensors), file in the page cache"


def _safetensors_info() -> dict[str, Any]:
    try:
        import safetensors
    except ImportError as exc:
        raise Unavailable(f"safetensors not installed ({exc})")
    return {"safetensors": safetensors.__version__}


# Builders by side, then by workload kind; "info" gives version facts.
BUILDERS: dict[str, dict[str, Callable[..., Any]]] = {
    "numpygpt": {"forward": numpygpt_forward, "train": numpygpt_train,
                 "generate": numpygpt_generate, "memory": numpygpt_train,
                 "load": numpygpt_load, "info": numpygpt_info},
    "torch": {"forward": torch_forward, "train": torch_train,
              "generate": torch_generate, "memory": torch_train,
              "info": torch_info},
    "transformers": {"forward": transformers_forward, "generate": transformers_generate,
                     "info": transformers_info},
    "numpy": {"matmul": numpy_matmul, "bandwidth": numpy_bandwidth,
              "info": lambda: {"numpy": np.__version__}},
    "safetensors": {"load": safetensors_load, "info": _safetensors_info},
}
