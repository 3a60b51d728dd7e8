"""Shared pieces of the benchmarks: workload constants, timing, memory, FLOP counts.

Imports nothing but the standard library and NumPy, so a worker process that
measures numpygpt's memory never loads torch.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

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

BATCH = 2                       # B of the forward and train workloads
SEQ_LEN = 256                   # T of the forward and train workloads
TRAIN_CONTEXT_LENGTH = 256      # context_length of the model in the train workload
LR = 4e-4
WEIGHT_DECAY = 0.1
PROMPT_IDS = [15496, 11, 314, 716]   # "Hello, I am"
NEW_TOKENS = 50
MATMUL_N = 2048                 # the reference matmul is (N, N) @ (N, N) in float32 ...
MATMUL_REPS = 4                 # ... done this many times in one timed call
DATA_SEED = 1234


class Unavailable(Exception):
    """A side cannot run here: its package is missing or not written yet."""


def forward_config() -> dict[str, Any]:
    """Config of the forward and generate workloads: GPT_CONFIG_124M as is."""
    return dict(GPT_CONFIG_124M)


def train_config() -> dict[str, Any]:
    """Config of the train and memory workloads: context 256, dropout off."""
    return {**GPT_CONFIG_124M, "context_length": TRAIN_CONTEXT_LENGTH, "drop_rate": 0.0}


def batch_ids() -> tuple[np.ndarray, np.ndarray]:
    """The same random (B, T) int64 inputs and targets for every side."""
    rng = np.random.default_rng(DATA_SEED)
    vocab = GPT_CONFIG_124M["vocab_size"]
    x = rng.integers(0, vocab, size=(BATCH, SEQ_LEN), dtype=np.int64)
    y = rng.integers(0, vocab, size=(BATCH, SEQ_LEN), dtype=np.int64)
    return x, y


def prompt_ids() -> np.ndarray:
    """The generate workload's prompt as a (1, 4) int64 array."""
    return np.array([PROMPT_IDS], dtype=np.int64)


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
    if kib is None:  # not Linux: ru_maxrss is KiB on Linux, bytes on macOS
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kib = maxrss // 1024 if sys.platform == "darwin" else maxrss
    return kib / 1024.0


def current_rss_mib() -> float | None:
    """Resident set size of this process now (VmRSS), in MiB, where /proc has it."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024.0


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def matmul_params(cfg: dict[str, Any]) -> int:
    """Weights that take part in a matmul: per block 12 C^2 (q, k, v, out, 2 x ff), plus out_head."""
    c = cfg["emb_dim"]
    return cfg["n_layers"] * 12 * c * c + c * cfg["vocab_size"]


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
