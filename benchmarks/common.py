"""Shared pieces of the benchmarks: workloads, machine limits, timing, memory, FLOP and byte counts.

Imports nothing but the standard library and NumPy, so a worker process that
measures numpygpt never loads torch.

Every size a workload uses comes from :func:`workload`, so ``--quick`` (tiny
models, for checking that every code path runs) changes them in one place:
:func:`set_quick` is called by ``run.py`` and by each worker it starts.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

# The repository root goes first on sys.path, so `import numpygpt` finds the
# working tree and `import tests.torch_gpt` finds the reference model.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# GPT_CONFIG_124M from SPEC.md. Each side builds its own copy of the model.
GPT_CONFIG_124M: dict[str, Any] = {
    "vocab_size": 50257,
    "context_length": 1024,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}
# OpenAI's gpt2-medium sizes on the same config (355M with a tied head; 406M untied).
GPT2_MEDIUM: dict[str, Any] = {**GPT_CONFIG_124M, "emb_dim": 1024, "n_layers": 24, "n_heads": 16}

# --quick: tiny models that exercise every code path in seconds (the ratios mean nothing).
QUICK_124M: dict[str, Any] = {**GPT_CONFIG_124M, "context_length": 64, "emb_dim": 64,
                              "n_heads": 4, "n_layers": 2}
QUICK_MEDIUM: dict[str, Any] = {**QUICK_124M, "n_layers": 3}

LR = 4e-4
WEIGHT_DECAY = 0.1
PROMPT_IDS = [15496, 11, 314, 716]   # "Hello, I am"
NEW_TOKENS = 50
DATA_SEED = 1234
MEMORY_STEPS = 2                     # the memory workload: build the model, run this many train steps

_quick = False


def set_quick(on: bool) -> None:
    """Switch every workload to its tiny ``--quick`` size (call before building anything)."""
    global _quick
    _quick = bool(on)


def is_quick() -> bool:
    """Whether the tiny ``--quick`` sizes are in force."""
    return _quick


class Unavailable(Exception):
    """A side cannot run here: its package is missing or not written yet."""


@dataclass(frozen=True)
class Workload:
    """What one timed run of a workload does, independent of the side running it.

    kind: "forward" (no_grad, eval), "train" (forward, cross-entropy,
    backward, AdamW), "generate" (greedy, NEW_TOKENS, batch 1), "memory"
    (a fresh process: build the train model, MEMORY_STEPS train steps) or
    "load" (read a saved Hugging Face directory).
    """

    name: str
    kind: str
    cfg: dict[str, Any]
    batch: int
    seq_len: int
    dtype: str = "float32"
    title: str = ""


def _describe(kind: str, size: str, batch: int, seq_len: int, dtype: str) -> str:
    what = {"forward": "forward, no_grad, eval", "train": "train step (forward + cross-entropy "
            "+ backward + AdamW, dropout 0)"}[kind]
    return f"{what}: {size}, batch ({batch}, {seq_len}), {dtype}"


def workload(name: str) -> Workload:
    """The sizes of workload ``name`` (the tiny ones under ``--quick``)."""
    small, medium = (QUICK_124M, QUICK_MEDIUM) if _quick else (GPT_CONFIG_124M, GPT2_MEDIUM)
    small_name, medium_name = ("tiny 124M stand-in", "tiny medium stand-in") if _quick \
        else ("GPT_CONFIG_124M", "gpt2-medium size")
    b, t = (2, 32) if _quick else (2, 256)          # the (B, T) of forward and train
    long_t = small["context_length"]               # the long-context workloads fill the context
    train_ctx = t                                  # the train model's context_length is T
    table = {
        "forward": ("forward", small, b, t, "float32", small_name),
        "train": ("train", {**small, "context_length": train_ctx}, b, t, "float32",
                  f"{small_name}, context_length {train_ctx}"),
        "forward_f64": ("forward", small, b, t, "float64", small_name),
        "train_f64": ("train", {**small, "context_length": train_ctx}, b, t, "float64",
                      f"{small_name}, context_length {train_ctx}"),
        "forward_long": ("forward", small, 1, long_t, "float32", f"{small_name}, full context"),
        "train_long": ("train", small, 1, long_t, "float32", f"{small_name}, full context"),
        "forward_medium": ("forward", medium, 1, long_t, "float32", f"{medium_name}, full context"),
        "train_medium": ("train", medium, 1, long_t, "float32", f"{medium_name}, full context"),
    }
    if name in table:
        kind, cfg, batch, seq_len, dtype, size = table[name]
        cfg = {**cfg, "drop_rate": 0.0} if kind == "train" else dict(cfg)
        return Workload(name, kind, cfg, batch, seq_len, dtype, _describe(kind, size, batch, seq_len, dtype))
    if name == "generate":
        return Workload(name, "generate", dict(small), 1, len(PROMPT_IDS), "float32",
                        f"generate: greedy, {NEW_TOKENS} new tokens after \"Hello, I am\", batch 1, "
                        f"{small_name}, KV cache where the side has one")
    if name == "memory":
        w = workload("train")
        return Workload(name, "memory", w.cfg, w.batch, w.seq_len, "float32",
                        f"memory: peak RSS of a fresh process that imports its framework, builds the "
                        f"train model and runs {MEMORY_STEPS} train steps")
    if name == "load":
        # OpenAI's 124M layout, as GPT2LMHeadModel(GPT2Config()) saves it: qkv bias, tied head.
        cfg = {**small, "qkv_bias": True, "tie_embeddings": True}
        return Workload(name, "load", cfg, 1, 0, "float32",
                        f"load: GPTModel.from_pretrained of a saved {small_name} Hugging Face "
                        "directory (qkv bias, tied head) against reading its model.safetensors")
    raise KeyError(f"unknown workload {name!r}")


def batch_ids(w: Workload) -> tuple[np.ndarray, np.ndarray]:
    """The same random (B, T) int64 inputs and targets for every side."""
    rng = np.random.default_rng(DATA_SEED)
    vocab = w.cfg["vocab_size"]
    x = rng.integers(0, vocab, size=(w.batch, w.seq_len), dtype=np.int64)
    y = rng.integers(0, vocab, size=(w.batch, w.seq_len), dtype=np.int64)
    return x, y


def prompt_ids() -> np.ndarray:
    """The generate workload's prompt as a (1, 4) int64 array."""
    return np.array([PROMPT_IDS], dtype=np.int64)


# --------------------------------------------------------------------------- the machine's two limits

def matmul_size() -> tuple[int, int]:
    """(N, reps): one timed call of the FLOP/s reference does reps float32 (N, N) @ (N, N) products."""
    return (256, 2) if _quick else (2048, 4)


def matmul_flop() -> float:
    """FLOPs of one timed call of the reference matmul: reps x 2 N^3."""
    n, reps = matmul_size()
    return reps * 2.0 * n**3


def bandwidth_size() -> tuple[int, int, int]:
    """(rows, cols, reps) of the bandwidth reference: reps float32 matrix-vector products.

    rows x cols x 4 bytes is about 650 MB (the size of GPT_CONFIG_124M's
    float32 weights), far larger than any CPU cache, so every product streams
    the whole matrix from main memory once.
    """
    return (1024, 4096, 2) if _quick else (19840, 8192, 3)


def bandwidth_bytes() -> float:
    """Bytes read by one timed call of the bandwidth reference: reps x the matrix."""
    rows, cols, reps = bandwidth_size()
    return reps * rows * cols * 4.0


# --------------------------------------------------------------------------- timing and memory

def time_calls(fn: Callable[[], Any], warmup: int, repeat: int) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def summarize(times: list[float]) -> dict[str, float]:
    """Median and best of a list of timings."""
    return {"median_s": statistics.median(times), "best_s": min(times)}


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (VmHWM), in MiB."""
    kib = _status_kib("VmHWM")
    if kib is None:  # not Linux
        return ru_maxrss_mib()
    return kib / 1024.0


def ru_maxrss_mib() -> float:
    """getrusage's ru_maxrss of this process, in MiB (KiB on Linux, bytes on macOS).

    On Linux it is the same high-water mark as VmHWM, except that it is not
    reset by :func:`reset_peak_rss` and survives an exec.
    """
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 1024.0**2 if sys.platform == "darwin" else maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss_mib() -> float | None:
    """Resident set size of this process now (VmRSS), in MiB, where /proc has it."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024.0


def threads() -> int:
    """Threads each side may use: every core, or 1 under --quick (tiny models, many processes at once)."""
    return 1 if _quick else cpu_count()


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- FLOPs and bytes

def matmul_params(cfg: dict[str, Any]) -> int:
    """Weights that take part in a matmul: per block 12 C^2 (q, k, v, out, 2 x ff), plus out_head."""
    c = cfg["emb_dim"]
    return cfg["n_layers"] * 12 * c * c + c * cfg["vocab_size"]


def linear_biases(cfg: dict[str, Any]) -> int:
    """Bias elements of the Linear layers: per block out_proj C, ff 4C + C (and q, k, v 3C with qkv_bias)."""
    c = cfg["emb_dim"]
    return cfg["n_layers"] * (6 * c + (3 * c if cfg.get("qkv_bias") else 0))


def decode_weight_bytes(cfg: dict[str, Any], itemsize: int = 4) -> float:
    """Bytes of parameters one cached decoding step must read from memory for one token.

    Counted: every Linear weight and bias (per block W_query, W_key,
    W_value, out_proj and the two feed-forward layers: 12 C^2 + 6 C; and
    out_head, C x V), each read once. Left out as negligible: the token and
    position embedding rows (2 C), the LayerNorm scales and shifts (per block
    4 C, plus 2 C), and the KV cache itself (2 C x position per layer; at
    most 54 positions here, under 1% of the weights).
    """
    return float(matmul_params(cfg) + linear_biases(cfg)) * itemsize


def attention_scores_bytes(cfg: dict[str, Any], batch: int, seq_len: int, itemsize: int = 4) -> int:
    """Bytes of one layer's (B, nh, T, T) attention-score array (one temporary of that shape)."""
    return batch * cfg["n_heads"] * seq_len * seq_len * itemsize


def forward_flops(cfg: dict[str, Any], batch: int, seq_len: int) -> float:
    """FLOPs of one forward: 2 x matmul params x tokens, plus 2 x 2 B T^2 C per layer for attention.

    The attention term counts q @ k^T and weights @ v in full (no saving for
    the causal mask). Element-wise ops (LayerNorm, GELU, softmax) are left out.
    """
    tokens = batch * seq_len
    dense = 2.0 * matmul_params(cfg) * tokens
    attention = 2.0 * 2.0 * batch * seq_len * seq_len * cfg["emb_dim"] * cfg["n_layers"]
    return dense + attention


def train_flops(cfg: dict[str, Any], batch: int, seq_len: int) -> float:
    """FLOPs of one train step: 3 x forward (backward is about twice the forward)."""
    return 3.0 * forward_flops(cfg, batch, seq_len)


def workload_flops(w: Workload) -> float | None:
    """Analytic FLOPs of one timed run of a forward or train workload (None for the others)."""
    if w.kind == "forward":
        return forward_flops(w.cfg, w.batch, w.seq_len)
    if w.kind == "train":
        return train_flops(w.cfg, w.batch, w.seq_len)
    return None
