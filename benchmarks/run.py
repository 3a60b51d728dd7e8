"""Benchmark numpygpt against PyTorch and transformers on this machine, in one run.

    python benchmarks/run.py [--workload forward|train|generate|memory|mfu|all]
                             [--repeat N] [--warmup N] [--json out.json]

Every (side, workload) pair runs in its own subprocess (``worker.py``); this
script collects the results, prints one table per workload with the ratio
numpygpt / peer, and optionally writes everything as JSON. See README.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
from typing import Any

import common
from worker import PREFIX

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
           f"({common.MATMUL_REPS} x {common.MATMUL_N}x{common.MATMUL_N} @ {common.MATMUL_N}x{common.MATMUL_N}),\n"
           "timed in the same rounds as the workload",
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


def _worker_cmd(side: str, workload: str) -> list[str]:
    return [sys.executable, str(common.BENCH_DIR / "worker.py"), "--side", side, "--workload", workload]


class WorkerError(Exception):
    """A served worker died, timed out or broke the protocol."""


class Worker:
    """A ``worker.py --serve`` process: build once, then timed steps on command."""

    def __init__(self, side: str, workload: str, timeout: float) -> None:
        self.side, self.workload, self.timeout = side, workload, timeout
        self.proc = subprocess.Popen(
            [*_worker_cmd(side, workload), "--serve"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.replies: queue.Queue[str | None] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=5)
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                self.replies.put(line[len(PREFIX):].rstrip("\n"))
        self.replies.put(None)  # end of output: the process is gone

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.strip():
                self.stderr_tail.append(line.strip())

    def reply(self) -> tuple[str, str]:
        """The next protocol reply as (kind, payload)."""
        try:
            line = self.replies.get(timeout=self.timeout)
        except queue.Empty:
            self.kill()
            raise WorkerError(f"timed out after {self.timeout:.0f} s")
        if line is None:
            self.proc.wait()
            raise WorkerError(f"worker exited with {self.proc.returncode}: "
                              + " | ".join(list(self.stderr_tail)[-3:]))
        kind, _, payload = line.partition(" ")
        return kind, payload

    def command(self, cmd: str) -> tuple[str, str]:
        """Send one command and wait for its reply."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # reply() reports how the process ended
        return self.reply()

    def kill(self) -> None:
        """End this worker's process (only ever our own child)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _failed(side: str, workload: str, message: str) -> dict[str, Any]:
    return {"side": side, "workload": workload, "status": "error", "message": message}


def _final(worker: Worker) -> dict[str, Any]:
    """Ask a worker to quit and return its result JSON."""
    try:
        kind, payload = worker.command("quit")
        while kind != "result":
            kind, payload = worker.reply()
        result = json.loads(payload)
    except WorkerError as exc:
        result = _failed(worker.side, worker.workload, str(exc))
    worker.kill()
    return result


def _log_result(result: dict[str, Any]) -> None:
    side, workload = result["side"], result["workload"]
    if result["status"] != "ok":
        log(f"  {workload:<9} {side:<13} {result['status']}: {result.get('message', '')}")
    elif workload == "memory":
        log(f"  {workload:<9} {side:<13} peak {result['peak_rss_mib']:.0f} MiB")
    else:
        log(f"  {workload:<9} {side:<13} best {result['best_s']:.3f} s of {len(result['times_s'])}")


def run_interleaved(workload: str, side_names: list[str], warmup: int, repeat: int,
                    timeout: float) -> dict[str, dict[str, Any]]:
    """Time ``workload`` on every side, one step per side per round.

    All sides are built first (one after another), each warmed up, then
    round r runs one timed step on each side in an order rotated by r, so a
    change in the machine's background load falls on every side alike.
    The side "numpy" always runs the reference matmul: timed in the same
    rounds, it gives the MFU ceiling under the same load.
    """
    results: dict[str, dict[str, Any]] = {}
    live: dict[str, Worker] = {}
    for side in side_names:
        log(f"  {workload:<9} {side:<13} building ...")
        worker = Worker(side, "matmul" if side == "numpy" else workload, timeout)
        try:
            kind, payload = worker.reply()
        except WorkerError as exc:
            results[side] = _failed(side, workload, str(exc))
            continue
        if kind == "ready":
            live[side] = worker
        else:  # the build failed: the worker sent its result and exited
            results[side] = json.loads(payload) if kind == "result" else _failed(side, workload, payload)
            worker.kill()
            _log_result(results[side])

    def do(side: str, cmd: str) -> None:
        worker = live[side]
        try:
            kind, payload = worker.command(cmd)
        except WorkerError as exc:
            results[side] = _failed(side, workload, str(exc))
            worker.kill()
            del live[side]
            _log_result(results[side])
            return
        if kind == "error":
            results[side] = _final(worker)
            del live[side]
            _log_result(results[side])

    for side in list(live):
        for _ in range(warmup):
            if side in live:
                do(side, "warmup")
    for r in range(repeat):
        order = list(live)
        order = order[r % len(order):] + order[: r % len(order)] if order else order
        for side in order:
            if side in live:
                do(side, "step")
        log(f"  {workload:<9} round {r + 1}/{repeat} done")
    for side in list(live):
        results[side] = _final(live.pop(side))
        _log_result(results[side])
    return {side: results[side] for side in side_names}


def run_memory(side: str, timeout: float) -> dict[str, Any]:
    """Peak RSS of a fresh process that builds the train model and runs 2 steps."""
    log(f"  {'memory':<9} {side:<13} ...")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        try:
            proc = subprocess.run([*_worker_cmd(side, "memory"), "--out", out],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return _failed(side, "memory", f"timed out after {timeout:.0f} s")
        if proc.returncode != 0 or not os.path.exists(out):
            tail = (proc.stderr or "").strip().splitlines()[-3:]
            return _failed(side, "memory", f"worker exited with {proc.returncode}: {' | '.join(tail)}")
        with open(out) as f:
            result = json.load(f)
    _log_result(result)
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


def paired_ratios(workload: str, results: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Median over rounds of numpygpt's time / the peer's time in the same round.

    Both calls of a round ran back to back, so they saw nearly the same
    background load; on a busy machine this is the steadier estimate.
    """
    ours = results.get("numpygpt", {}).get("times_s")
    out: dict[str, float | None] = {}
    for side in SIDES[workload][1:]:
        theirs = results.get(side, {}).get("times_s")
        if not ours or not theirs or results[side].get("status") != "ok" \
                or results["numpygpt"].get("status") != "ok":
            out[side] = None
            continue
        out[side] = statistics.median(a / b for a, b in zip(ours, theirs) if b > 0)
    return out


def _short(msg: str, width: int = 70) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= width else msg[: width - 3] + "..."


def print_timing_table(workload: str, results: dict[str, dict[str, Any]], rat: dict[str, float | None],
                       paired: dict[str, float | None]) -> None:
    """One workload's table: each side's time (or memory) and the ratio numpygpt / side."""
    print(f"\n{TITLES[workload]}")
    is_mem = workload == "memory"
    head = ("side", "peak RSS" if is_mem else "best", "" if is_mem else "median",
            "numpygpt/side", "target", "" if is_mem else "per-round")
    print(f"  {head[0]:<30} {head[1]:>11} {head[2]:>10} {head[3]:>14} {head[4]:>14} {head[5]:>10}")
    for side in SIDES[workload]:
        r = results.get(side, {})
        label = LABELS[side]
        if r.get("status") != "ok":
            message = r.get("message", "")
            if not message.startswith("numpygpt not available yet"):
                message = f"{r.get('status', 'not run')}: {message}"
            print(f"  {label:<30} {_short(message, 90)}")
            continue
        if is_mem:
            a, b = f"{r['peak_rss_mib']:.0f} MiB", ""
        else:
            a, b = f"{r['best_s']:.3f} s", f"{r['median_s']:.3f} s"
        ratio, target, per_round = "", "", ""
        if side != "numpygpt" and paired.get(side) is not None:
            per_round = f"{paired[side]:.2f}"
        if side != "numpygpt":
            value = rat.get(side)
            ratio = "-" if value is None else f"{value:.2f}"
            limit = TARGETS.get((workload, side))
            if limit is not None:
                verdict = "" if value is None else (" met" if value <= limit else " MISSED")
                target = f"<= {limit:.1f}{verdict}"
        print(f"  {label:<30} {a:>11} {b:>10} {ratio:>14} {target:>14} {per_round:>10}")
        if r.get("how"):
            print(f"  {'':<30}   {r['how']}")


def mfu_table(all_results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Print and return FLOP/s and MFU of every side's forward and train step.

    The ceiling of each workload is the NumPy matmul timed in that workload's
    rounds. "MFU" divides best by best; "per-round" is the median over rounds
    of (workload FLOP/s / matmul FLOP/s) in the same round.
    """
    print(f"\n{TITLES['mfu']}")
    n = common.MATMUL_N
    matmul_flop = common.MATMUL_REPS * 2.0 * n**3
    cfg = common.forward_config()
    flops = {"forward": common.forward_flops(cfg, common.BATCH, common.SEQ_LEN),
             "train": common.train_flops(cfg, common.BATCH, common.SEQ_LEN)}
    out: dict[str, Any] = {"workload_gflop": {k: v / 1e9 for k, v in flops.items()},
                           "matmul_gflops": {}, "sides": {}}
    print(f"  {'workload':<10} {'side':<30} {'GFLOP':>8} {'GFLOP/s':>9} {'MFU':>7} {'per-round':>10}")
    for workload in ("forward", "train"):
        results = all_results.get(workload) or all_results.get("mfu", {}).get(workload, {})
        ceiling_r = results.get("numpy", {})
        if ceiling_r.get("status") != "ok":
            print(f"  {workload:<10} reference matmul did not run: {ceiling_r.get('message', '')}")
            continue
        peak = matmul_flop / ceiling_r["best_s"]
        out["matmul_gflops"][workload] = peak / 1e9
        print(f"  {workload:<10} {LABELS['numpy']:<30} {matmul_flop / 1e9:>8.1f} {peak / 1e9:>9.1f}")
        for side in SIDES[workload]:
            r = results.get(side)
            if not r or r.get("status") != "ok":
                if side == "numpygpt":
                    print(f"  {workload:<10} {LABELS[side]:<30} not available yet")
                continue
            achieved = flops[workload] / r["best_s"]
            per_round = statistics.median(
                (flops[workload] / t) / (matmul_flop / m)
                for t, m in zip(r["times_s"], ceiling_r["times_s"]))
            out["sides"][f"{side}:{workload}"] = {"gflops": achieved / 1e9, "mfu": achieved / peak,
                                                  "mfu_per_round": per_round}
            print(f"  {workload:<10} {LABELS[side]:<30} {flops[workload] / 1e9:>8.1f} "
                  f"{achieved / 1e9:>9.1f} {100 * achieved / peak:>6.1f}% {100 * per_round:>9.1f}%")
    return out


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cores": common.cpu_count()}
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
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
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds allowed for one build or one step (default 1800)")
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
        if workload == "memory":
            all_results[workload] = {side: run_memory(side, args.timeout) for side in SIDES[workload]}
        elif workload == "mfu":
            # Alone, MFU needs numpygpt's own forward and train times (with the matmul).
            all_results["mfu"] = {w: run_interleaved(w, ["numpygpt", "numpy"], args.warmup,
                                                     args.repeat, args.timeout)
                                  for w in ("forward", "train") if w not in all_results}
        else:
            names = list(SIDES[workload])
            if "mfu" in chosen and workload in ("forward", "train"):
                names.append("numpy")  # the MFU ceiling, measured in the same rounds
            all_results[workload] = run_interleaved(
                workload, names, args.warmup, args.repeat, args.timeout)

    print(f"\nnumpygpt benchmarks on {info.get('cpu', '?')} ({info['cores']} cores), "
          f"Python {info['python']}, best of {args.repeat} after {args.warmup} warm-up")
    print("ratios are numpygpt / peer from this run: below 1 means numpygpt is faster (or smaller);")
    print("numpygpt/side compares best times, per-round is the median of same-round ratios")
    if hasattr(os, "getloadavg"):
        start_load = info.get("load_average_at_start", [0.0])[0]
        end_load = os.getloadavg()[0]
        info["load_average_at_end"] = round(end_load, 2)
        print(f"1-minute load average: {start_load:.2f} at start, {end_load:.2f} at end")
        if max(start_load, end_load) > info["cores"]:
            print("warning: other processes were competing for the cores; absolute times are inflated,"
                  " ratios less so (the sides ran interleaved)")
    summary: dict[str, Any] = {"machine": info, "settings": vars(args), "results": all_results,
                               "ratios": {}}
    for workload in chosen:
        if workload == "mfu":
            summary["mfu"] = mfu_table(all_results)
        else:
            rat = ratios(workload, all_results[workload])
            paired = {} if workload == "memory" else paired_ratios(workload, all_results[workload])
            summary["ratios"][workload] = rat
            if paired:
                summary.setdefault("per_round_ratios", {})[workload] = paired
            print_timing_table(workload, all_results[workload], rat, paired)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
        log(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
