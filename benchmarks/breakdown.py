"""Where numpygpt's time goes, and what that bounds: the profile behind the README's "What bounds".

    python benchmarks/breakdown.py [--workload forward,train,generate,forward_f64,train_f64] [--quick]
                                   [--markdown breakdown.md]

Each workload is built as `benchmarks/sides.py` builds it for the timed runs, run
once to warm up, then once under cProfile. Every function's own time is put in a
bucket: the Linear layers' GEMMs (functional.Linear), attention (fused.py), GELU,
LayerNorm, cross-entropy, the embeddings, the optimiser, and "other" (autograd,
module calls, small ops). Time spent inside NumPy's own Python functions (np.mean
and friends) and in builtins (ndarray.fill, ufunc.reduce) goes to the bucket of
whoever called them. cProfile adds a few microseconds per call, which matters
only for generation's many small calls; its total is printed beside the untimed one.

Printed beside the buckets, from the same process:
- the reference matmul rate (as run.py measures it) and the Linear GEMMs' rate
  (their FLOPs / their time), and the MFU the workload would reach if everything
  but the Linear layers took no time: the ceiling the GEMMs set;
- for generation: the per-token time, the time of the same weights read by
  back-to-back matrix-vector products (the floor for reading them at this
  machine's bandwidth), and the per-token time of a model of the same depth with
  tiny weights, whose time is all per-call overhead (Python, NumPy dispatch).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import inspect
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import common
import numpy as np
import sides

BUCKETS = ("Linear (GEMMs)", "attention", "GELU", "LayerNorm", "cross-entropy", "embedding", "optimizer", "other")


def _code_names() -> dict[tuple[str, int], str]:
    """(file, first line) of every function and method in numpygpt's compute modules -> its qualified name."""
    from numpygpt import functional, fused, losses
    names = {}
    for module in (functional, fused, losses):
        for value in vars(module).values():
            members = vars(value).values() if inspect.isclass(value) else [value]
            for member in members:
                fn = getattr(member, "__func__", member)                 # staticmethods
                code = getattr(fn, "__code__", None)
                if code is not None and getattr(fn, "__module__", "") == module.__name__:
                    names[(code.co_filename, code.co_firstlineno)] = fn.__qualname__
    return names


def _bucket(func: tuple[str, int, str], names: dict[tuple[str, int], str]) -> str | None:
    """The bucket of one cProfile entry (file, line, name), or None: then its time goes to its callers."""
    path, line, _ = func
    stem = Path(path).name
    if stem == "optim.py":
        return "optimizer"
    if stem == "losses.py":
        return "cross-entropy"
    if stem == "fused.py":
        return "attention"
    qual = names.get((path, line), "")
    if qual == "_in_turns":                              # work dealt out to threads: its caller's bucket
        return None
    for prefix, bucket in (("Linear.", "Linear (GEMMs)"), ("GELUTanh.", "GELU"), ("_gelu_tanh", "GELU"),
                           ("_chunks", "GELU"), ("LayerNorm.", "LayerNorm"), ("Embedding.", "embedding")):
        if qual.startswith(prefix):
            return bucket
    if stem in ("functional.py", "autograd.py", "module.py", "tensor.py", "model.py", "decode.py", "ops.py"):
        return "other"                                   # numpygpt's own code outside the buckets
    return None                                          # NumPy's Python functions, builtins


def buckets(stats: pstats.Stats) -> dict[str, float]:
    """Seconds per bucket: each entry's own time, handed up to its callers until one has a bucket."""
    names = _code_names()
    table = stats.stats  # func -> (calls, primitive calls, own time, cumulative time, callers)
    out: dict[str, float] = defaultdict(float)

    def give(func: Any, seconds: float, depth: int) -> None:
        bucket = _bucket(func, names)
        callers = table.get(func, (0, 0, 0, 0, {}))[4]
        if bucket is not None or depth > 8 or not callers:
            out[bucket or "other"] += seconds
            return
        total = sum(c[3] for c in callers.values()) or 1.0   # split by the time each caller spent in it
        for caller, c in callers.items():
            give(caller, seconds * c[3] / total, depth + 1)

    for func, (_, _, own, _, _) in table.items():
        give(func, own, 0)
    return dict(out)


def _best(step: Any, repeat: int = 3) -> float:
    step()
    return min(common.time_calls(step, 0, repeat))


def _profiled(step: Any, runs: int = 3) -> tuple[float, dict[str, float]]:
    """The fastest of `runs` profiled calls (a shared machine slows some runs down): its seconds, its buckets."""
    fastest = None
    for _ in range(runs):
        gc.collect()
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.runcall(step)
        elapsed = time.perf_counter() - start
        if fastest is None or elapsed < fastest[0]:
            fastest = (elapsed, profile)
    return fastest[0], buckets(pstats.Stats(fastest[1]))


def _reference_rate(dtype: str = "float32") -> float:
    """FLOP/s of run.py's reference matmul, in float32 or float64 (the MFU of a float64 workload
    is against float64 GEMMs, which run at about half the float32 rate)."""
    if dtype == "float32":
        step, _ = sides.numpy_matmul()
        return common.matmul_flop() / _best(step, 5)
    n, reps = common.matmul_size()
    a = np.random.default_rng(common.DATA_SEED).standard_normal((n, n))
    out = np.empty_like(a)
    return common.matmul_flop() / _best(lambda: [np.matmul(a, a, out=out) for _ in range(reps)], 3)


def _linear_flops(w: common.Workload) -> float:
    """FLOPs of the Linear layers alone: 2 x matmul params x tokens per forward (x 3 for a train step)."""
    forward = 2.0 * common.matmul_params(w.cfg) * w.batch * w.seq_len
    return forward * (3 if w.kind == "train" else 1)


def profile_compute(name: str, references: dict[str, float]) -> dict[str, Any]:
    """Buckets, the GEMMs' rate and the MFU ceiling they set, for a forward or train workload."""
    w = common.workload(name)
    if w.dtype not in references:
        references[w.dtype] = _reference_rate(w.dtype)
    reference = references[w.dtype]
    step = sides.numpygpt_train(w) if w.kind == "train" else sides.numpygpt_forward(w)
    untimed = _best(step)
    elapsed, split = _profiled(step)
    linear = split.get("Linear (GEMMs)", 0.0)
    rate = _linear_flops(w) / linear if linear else float("nan")
    flops = common.workload_flops(w)
    return {"workload": name, "dtype": w.dtype, "best_s": untimed, "profiled_s": elapsed, "buckets": split,
            "linear_rate": rate, "linear_share_of_reference": rate / reference,
            "mfu": flops / untimed / reference, "mfu_ceiling": flops / linear / reference if linear else None}


def _weights_in_decode_order(model: Any) -> list[np.ndarray]:
    weights = []
    for block in model.trf_blocks:
        att, ff = block.att, block.ff
        weights += [layer.weight.data for layer in (att.W_query, att.W_key, att.W_value, att.out_proj,
                                                    ff.layers[0], ff.layers[2])]
    return weights + [model.out_head.weight.data]


def profile_generate(bandwidth: float) -> dict[str, Any]:
    """Per-token time against the weights' read and the per-call overhead (see the module doc)."""
    w = common.workload("generate")
    mods, model = sides._numpygpt_model(w)
    gen = mods["numpygpt.generate"].generate
    model.eval()
    idx, ctx, n = common.prompt_ids(), w.cfg["context_length"], common.NEW_TOKENS
    per_token = _best(lambda: gen(model, idx, n, ctx, use_cache=True)) / n
    elapsed, split = _profiled(lambda: gen(model, idx, n, ctx, use_cache=True))
    weights = _weights_in_decode_order(model)
    vectors = [np.ones(a.shape[1], dtype=a.dtype) for a in weights]

    def read_weights() -> None:
        for a, x in zip(weights, vectors):
            a @ x

    weights_pass = _best(read_weights, 5)
    tiny_cfg = {**w.cfg, "emb_dim": 4 * w.cfg["n_heads"], "vocab_size": 64}
    tiny = mods["numpygpt.model"].GPTModel(tiny_cfg)
    tiny.eval()
    overhead = _best(lambda: gen(tiny, idx % tiny_cfg["vocab_size"], n, ctx, use_cache=True)) / n
    nbytes = common.decode_weight_bytes(w.cfg)
    return {"workload": "generate", "per_token_s": per_token, "profiled_s": elapsed, "buckets": split,
            "weights_pass_s": weights_pass, "weights_pass_gbs": sum(a.nbytes for a in weights) / weights_pass / 1e9,
            "tiny_model_per_token_s": overhead, "bound_fraction": nbytes / bandwidth / per_token,
            "bound_fraction_without_overhead": nbytes / bandwidth / (per_token - overhead)}


def _bandwidth() -> float:
    step, _ = sides.numpy_bandwidth()
    return common.bandwidth_bytes() / _best(step, 3)


def markdown(results: list[dict[str, Any]], references: dict[str, float], bandwidth: float | None) -> str:
    rates = ", ".join(f"{dtype} {rate / 1e9:.1f} GFLOP/s" for dtype, rate in references.items())
    lines = [f"Reference matmul in the same process: {rates}"
             + (f"; bandwidth {bandwidth / 1e9:.1f} GB/s." if bandwidth else "."), ""]
    lines += [
             "| workload | time (profiled) | " + " | ".join(BUCKETS)
             + " | Linear GFLOP/s (of reference) | MFU | MFU ceiling |", "|---" * (len(BUCKETS) + 5) + "|"]
    for r in results:
        if r["workload"] == "generate":
            continue
        total = sum(r["buckets"].values())
        cells = [f"{r['buckets'].get(b, 0.0):.2f} s ({r['buckets'].get(b, 0.0) / total:.0%})" for b in BUCKETS]
        lines.append(f"| {r['workload']} | {r['best_s']:.2f} s ({r['profiled_s']:.2f} s) | " + " | ".join(cells)
                     + f" | {r['linear_rate'] / 1e9:.1f} ({r['linear_share_of_reference']:.2f})"
                     + f" | {r['mfu']:.0%} | {r['mfu_ceiling']:.0%} |")
    for r in results:
        if r["workload"] == "generate":
            lines += ["", (f"generate, per token: {r['per_token_s'] * 1e3:.1f} ms; the same weights read "
                           f"back to back: {r['weights_pass_s'] * 1e3:.1f} ms ({r['weights_pass_gbs']:.1f} GB/s); "
                           f"a model of the same depth with tiny weights: {r['tiny_model_per_token_s'] * 1e3:.1f} "
                           f"ms (per-call overhead). Bandwidth bound reached: {r['bound_fraction']:.0%}; "
                           f"{r['bound_fraction_without_overhead']:.0%} with that overhead taken away.")]
            split = r["buckets"]
            total = sum(split.values())
            lines.append("Profiled split: " + ", ".join(f"{b} {split.get(b, 0.0) / total:.0%}" for b in BUCKETS))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="forward,train,generate,forward_f64,train_f64")
    parser.add_argument("--quick", action="store_true", help="tiny models: checks that the script runs")
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown")
    args = parser.parse_args(argv)
    common.set_quick(args.quick)
    names = [n.strip() for n in args.workload.split(",") if n.strip()]
    references = {"float32": _reference_rate()}
    bandwidth = _bandwidth() if "generate" in names else None
    results = []
    for name in names:
        print(f"profiling {name} ...", file=sys.stderr, flush=True)
        results.append(profile_generate(bandwidth) if name == "generate" else profile_compute(name, references))
    text = markdown(results, references, bandwidth)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
