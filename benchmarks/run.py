"""Benchmark numpygpt against PyTorch and transformers on this machine, in one run.

    python benchmarks/run.py [--workload forward|train|generate|memory|mfu|all]
                             [--repeat N] [--warmup N] [--json out.json]

Every (side, workload) pair runs in its own subprocess (``worker.py``); this
script collects the results, prints one table per workload with the ratio
numpygpt / peer, and optionally writes everything as JSON. See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from typing import Any

import common

WORKLOADS = ("forward", "train", "generate", "memory", "mfu")

# Which sides run each workload; the first is numpygpt, the rest are peers.
SIDES = {
    "forward": ("numpygpt", "torch", "transformers"),
    "train": ("numpygpt", "torch"),
    "generate": ("numpygpt", "transformers", "torch"),
    "memory": ("numpygpt", "torch"),
}

# SPEC.md's targets: the ratio numpygpt / peer must not exceed these.
TARGETS = {
    ("forward", "transformers"): 1.1,
    ("train", "torch"): 1.0,
    ("generate", "transformers"): 1.0,
    ("memory", "torch"): 1.0,
}

TITLES = {
    "forward": f"forward: no_grad, batch ({common.BATCH}, {common.SEQ_LEN}), GPT_CONFIG_124M, float32, eval",
    "train": (f"train step: batch ({common.BATCH}, {common.SEQ_LEN}), context_length "
              f"{common.TRAIN_CONTEXT_LENGTH}, dropout 0, forward + cross-entropy + backward + AdamW"),
    "generate": f"generate: greedy, {common.NEW_TOKENS} new tokens after \"Hello, I am\", batch 1",
    "memory": "memory: peak RSS of a whole process that builds the model and runs 2 train steps",
    "mfu": "MFU: achieved FLOP/s / FLOP/s of a float32 NumPy matmul "
           f"({common.MATMUL_N}x{common.MATMUL_N} @ {common.MATMUL_N}x{common.MATMUL_N}, best of N)",
}

LABELS = {
    "numpygpt": "numpygpt",
    "torch": "PyTorch eager (seed model)",
    "transformers": "transformers GPT2LMHeadModel",
    "numpy": "NumPy matmul",
}


def log(msg: str) -> None:
    """Progress goes to stderr so stdout holds only the tables."""
    print(msg, file=sys.stderr, flush=True)


def run_worker(side: str, workload: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one (side, workload) in a fresh Python process and return its result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [sys.executable, str(common.BENCH_DIR / "worker.py"), "--side", side,
               "--workload", workload, "--warmup", str(args.warmup),
               "--repeat", str(args.repeat), "--out", out]
        log(f"  {workload:<9} {side:<13} ...")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"side": side, "workload": workload, "status": "error",
                    "message": f"timed out after {args.timeout} s"}
        if proc.returncode != 0 or not os.path.exists(out):
            tail = (proc.stderr or "").strip().splitlines()[-3:]
            return {"side": side, "workload": workload, "status": "error",
                    "message": f"worker exited with {proc.returncode}: {' | '.join(tail)}"}
        with open(out) as f:
            result = json.load(f)
    if result["status"] == "ok":
        detail = (f"peak {result['peak_rss_mib']:.0f} MiB" if workload == "memory"
                  else f"best {result['best_s']:.3f} s")
        log(f"  {workload:<9} {side:<13} {detail}")
    else:
        log(f"  {workload:<9} {side:<13} {result['status']}: {result.get('message', '')}")
    return result


def metric(workload: str, result: dict[str, Any]) -> float | None:
    """The number a ratio is taken of: best time, or peak RSS for memory."""
    if result.get("status") != "ok":
        return None
    return result["peak_rss_mib"] if workload == "memory" else result["best_s"]


def ratios(workload: str, results: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """numpygpt / peer for every peer of ``workload`` (None where a side did not run)."""
    ours = metric(workload, results.get("numpygpt", {}))
    out = {}
    for side in SIDES[workload][1:]:
        theirs = metric(workload, results.get(side, {}))
        out[side] = None if ours is None or theirs is None or theirs == 0 else ours / theirs
    return out


def _short(msg: str, width: int = 70) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= width else msg[: width - 3] + "..."


def print_timing_table(workload: str, results: dict[str, dict[str, Any]], rat: dict[str, float | None]) -> None:
    """One workload's table: each side's time (or memory) and the ratio numpygpt / side."""
    print(f"\n{TITLES[workload]}")
    is_mem = workload == "memory"
    head = ("side", "peak RSS" if is_mem else "best", "" if is_mem else "median",
            "numpygpt/side", "target")
    print(f"  {head[0]:<30} {head[1]:>11} {head[2]:>10} {head[3]:>14} {head[4]:>14}")
    for side in SIDES[workload]:
        r = results.get(side, {})
        label = LABELS[side]
        if r.get("status") != "ok":
            status = "not available yet" if side == "numpygpt" and r.get("status") == "unavailable" \
                else r.get("status", "not run")
            print(f"  {label:<30} {status}: {_short(r.get('message', ''))}")
            continue
        if is_mem:
            a, b = f"{r['peak_rss_mib']:.0f} MiB", ""
        else:
            a, b = f"{r['best_s']:.3f} s", f"{r['median_s']:.3f} s"
        ratio, target = "", ""
        if side != "numpygpt":
            value = rat.get(side)
            ratio = "-" if value is None else f"{value:.2f}"
            limit = TARGETS.get((workload, side))
            if limit is not None:
                verdict = "" if value is None else (" met" if value <= limit else " MISSED")
                target = f"<= {limit:.1f}{verdict}"
        print(f"  {label:<30} {a:>11} {b:>10} {ratio:>14} {target:>14}")
        if r.get("how"):
            print(f"  {'':<30} ({r['how']})")


def mfu_table(all_results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Print and return FLOP/s and MFU of every side's forward and train step."""
    print(f"\n{TITLES['mfu']}")
    peak_r = all_results.get("mfu", {}).get("numpy", {})
    if peak_r.get("status") != "ok":
        print(f"  reference matmul did not run: {peak_r.get('message', '')}")
        return {}
    n = common.MATMUL_N
    peak = 2.0 * n**3 / peak_r["best_s"]
    print(f"  NumPy float32 matmul: {peak / 1e9:.1f} GFLOP/s")
    cfg = common.forward_config()
    flops = {"forward": common.forward_flops(cfg, common.BATCH, common.SEQ_LEN),
             "train": common.train_flops(cfg, common.BATCH, common.SEQ_LEN)}
    out: dict[str, Any] = {"matmul_gflops": peak / 1e9, "workload_gflop":
                           {k: v / 1e9 for k, v in flops.items()}, "sides": {}}
    print(f"  {'workload':<10} {'side':<30} {'GFLOP':>8} {'GFLOP/s':>9} {'MFU':>7}")
    for workload in ("forward", "train"):
        for side in SIDES[workload]:
            r = all_results.get(workload, {}).get(side) or all_results.get("mfu", {}).get(f"{side}:{workload}")
            if not r or r.get("status") != "ok":
                if side == "numpygpt":
                    print(f"  {workload:<10} {LABELS[side]:<30} not available yet")
                continue
            achieved = flops[workload] / r["best_s"]
            out["sides"][f"{side}:{workload}"] = {"gflops": achieved / 1e9, "mfu": achieved / peak}
            print(f"  {workload:<10} {LABELS[side]:<30} {flops[workload] / 1e9:>8.1f} "
                  f"{achieved / 1e9:>9.1f} {100 * achieved / peak:>6.1f}%")
    return out


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cores": common.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import numpy as np
        cfg = np.show_config(mode="dicts")
        info["numpy"] = np.__version__
        info["blas"] = cfg.get("Build Dependencies", {}).get("blas", {}).get("name")
    except Exception:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description="numpygpt vs PyTorch / transformers, same run, same machine.")
    p.add_argument("--workload", default="all", choices=[*WORKLOADS, "all"])
    p.add_argument("--repeat", type=int, default=3, help="timed repeats per pair (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (default 1)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per worker process")
    p.add_argument("--json", metavar="PATH", help="also write all results to this JSON file")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be >= 1 and --warmup >= 0")

    chosen = list(WORKLOADS) if args.workload == "all" else [args.workload]
    info = machine_info()
    log(f"machine: {info.get('cpu', '?')}, {info['cores']} cores, numpy {info.get('numpy')} "
        f"({info.get('blas')}); repeat {args.repeat}, warmup {args.warmup}")

    all_results: dict[str, dict[str, dict[str, Any]]] = {}
    for workload in chosen:
        if workload == "mfu":
            res = {"numpy": run_worker("numpy", "matmul", args)}
            # Alone, MFU needs numpygpt's own forward and train times.
            for w in ("forward", "train"):
                if w not in all_results:
                    res[f"numpygpt:{w}"] = run_worker("numpygpt", w, args)
            all_results["mfu"] = res
        else:
            all_results[workload] = {side: run_worker(side, workload, args) for side in SIDES[workload]}

    print(f"\nnumpygpt benchmarks on {info.get('cpu', '?')} ({info['cores']} cores), "
          f"Python {info['python']}, best of {args.repeat} after {args.warmup} warm-up")
    print("ratios are numpygpt / peer from this run: below 1 means numpygpt is faster (or smaller)")
    summary: dict[str, Any] = {"machine": info, "settings": vars(args), "results": all_results,
                               "ratios": {}}
    for workload in chosen:
        if workload == "mfu":
            summary["mfu"] = mfu_table(all_results)
        else:
            rat = ratios(workload, all_results[workload])
            summary["ratios"][workload] = rat
            print_timing_table(workload, all_results[workload], rat)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
        log(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
