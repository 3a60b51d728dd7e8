"""Benchmark numpygpt against PyTorch and transformers on this machine, in one run.

    python benchmarks/run.py [--workload NAME[,NAME...]|all] [--repeat N] [--warmup N]
                             [--quick] [--json out.json] [--markdown results.md]

Every (side, workload) pair runs in its own subprocess (``worker.py``); this
script measures the machine's two limits (matmul FLOP/s, memory bandwidth),
collects the results, prints a summary of every ratio numpygpt / peer against
SPEC.md's targets and one table per workload, and optionally writes
everything as JSON and the summary as Markdown. See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

import common
import report
from pool import Pool, WorkerError, worker_cmd

# Which sides run each workload; the first is numpygpt, the rest are peers.
# "numpy" is the limit measured in the same rounds: the matmul for forward and
# train (MFU), the matrix-vector product for generate (bandwidth).
SIDES: dict[str, tuple[str, ...]] = {
    "forward": ("numpygpt", "torch", "transformers", "numpy"),
    "train": ("numpygpt", "torch", "numpy"),
    "generate": ("numpygpt", "transformers", "torch", "numpy"),
    "memory": ("numpygpt", "torch"),
    "forward_f64": ("numpygpt", "torch"),
    "train_f64": ("numpygpt", "torch"),
    "forward_long": ("numpygpt", "torch", "transformers", "numpy"),
    "train_long": ("numpygpt", "torch", "numpy"),
    "forward_medium": ("numpygpt", "torch", "transformers", "numpy"),
    "train_medium": ("numpygpt", "torch", "numpy"),
    "load": ("numpygpt", "safetensors"),
}
WORKLOADS = tuple(SIDES)
# A gpt2-medium train step holds about 7 GB of weights, gradients and AdamW
# state per side: its sides run one after another, never two at once.
ONE_AT_A_TIME = {"train_medium"}


_START = time.perf_counter()


# The pause before each timed step. After a call, a BLAS's worker threads spin for a while
# waiting for the next one (OpenBLAS's, and PyTorch's OpenMP threads), on the cores the next
# side's step needs: without the pause, numpygpt's forward measured 0.59 to 0.68 s right
# after the reference matmul and 0.56 s right after transformers' forward (0.53 s alone).
SETTLE_S = 0.3


def log(msg: str) -> None:
    """Progress goes to stderr, with the seconds since the start, so stdout holds only the tables."""
    print(f"{time.perf_counter() - _START:7.1f}s {msg}", file=sys.stderr, flush=True)


def _failed(side: str, workload: str, message: str) -> dict[str, Any]:
    return {"side": side, "workload": workload, "status": "error", "message": message}


def _log_result(result: dict[str, Any]) -> None:
    side, workload = result["side"], result["workload"]
    if result["status"] != "ok":
        log(f"  {workload:<14} {side:<13} {result['status']}: {result.get('message', '')}")
    elif "best_s" in result:
        log(f"  {workload:<14} {side:<13} best {result['best_s']:.3f} s of {len(result['times_s'])}")
    else:
        log(f"  {workload:<14} {side:<13} peak {result['peak_rss_mib']:.0f} MiB")


def _build_name(side: str, workload: str) -> str:
    """What a side's worker builds for ``workload``: the numpy side builds one of the two limits."""
    if side != "numpy":
        return workload
    return "bandwidth" if workload in ("generate", "bandwidth") else "matmul"


def _start(pool: Pool, sides: list[str], workload: str, arg: str | None,
           results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Send the build command to every side at once, then wait for each; returns the live workers."""
    sent = {}
    for side in sides:
        log(f"  {workload:<14} {side:<13} building ...")
        worker = pool.get(side)
        try:
            worker.send(f"build {_build_name(side, workload)}" + (f" {arg}" if arg else ""))
            sent[side] = worker
        except WorkerError as exc:
            results[side] = _failed(side, workload, str(exc))
    live = {}
    for side, worker in sent.items():
        try:
            kind, payload = worker.reply()
        except WorkerError as exc:
            results[side] = _failed(side, workload, str(exc))
            pool.discard(worker)
            continue
        if kind == "ready":
            live[side] = worker
        else:  # the build failed: the worker sent its result
            results[side] = json.loads(payload) if kind == "result" else _failed(side, workload, payload)
            pool.release(worker)
            _log_result(results[side])
    return live


def _finish(pool: Pool, side: str, worker: Any, workload: str) -> dict[str, Any]:
    try:
        kind, payload = worker.command("finish")
        while kind != "result":
            kind, payload = worker.reply()
        result = json.loads(payload)
        pool.release(worker)
    except WorkerError as exc:
        result = _failed(side, workload, str(exc))
        pool.discard(worker)
    _log_result(result)
    return result


def run_interleaved(workload: str, side_names: list[str], warmup: int, repeat: int, pool: Pool,
                    arg: str | None = None) -> dict[str, dict[str, Any]]:
    """Time ``workload`` on every side, one step per side per round.

    All sides are built first (at the same time, untimed), each warmed up,
    then round r runs one timed step on each side in an order rotated by r, so
    a change in the machine's background load falls on every side alike.
    """
    results: dict[str, dict[str, Any]] = {}
    live = _start(pool, side_names, workload, arg, results)

    def do(side: str, cmd: str) -> None:
        worker = live[side]
        try:
            kind, _ = worker.command(cmd)
        except WorkerError as exc:
            results[side] = _failed(side, workload, str(exc))
            pool.discard(worker)
            del live[side]
            _log_result(results[side])
            return
        if kind == "error":
            results[side] = _finish(pool, side, live.pop(side), workload)

    for side in list(live):
        for _ in range(warmup):
            if side in live:
                do(side, "warmup")
    for r in range(repeat):
        order = list(live)
        order = order[r % len(order):] + order[: r % len(order)] if order else order
        for side in order:
            if side in live:
                time.sleep(SETTLE_S)
                do(side, "step")
        log(f"  {workload:<14} round {r + 1}/{repeat} done")
    for side in list(live):
        results[side] = _finish(pool, side, live.pop(side), workload)
    return {side: results[side] for side in side_names}


def run_workload(workload: str, warmup: int, repeat: int, pool: Pool,
                 arg: str | None = None) -> dict[str, dict[str, Any]]:
    """Interleaved rounds, or for the largest workloads one side after another."""
    sides = list(SIDES.get(workload, ("numpy",)))
    if workload not in ONE_AT_A_TIME:
        return run_interleaved(workload, sides, warmup, repeat, pool, arg)
    results: dict[str, dict[str, Any]] = {}
    for side in sides:
        results.update(run_interleaved(workload, [side], warmup, repeat, pool, arg))
    return results


class MemoryRun:
    """A fresh one-shot process that imports its framework, builds the train model and runs 2 steps.

    Started by the constructor, read by :meth:`result`; under ``--quick`` all of
    them start at the beginning of the run, so their imports overlap the rest.
    """

    def __init__(self, side: str, timeout: float, quick: bool) -> None:
        self.side, self.timeout = side, timeout
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "result.json")
        self.proc = subprocess.Popen([*worker_cmd(side, quick), "--workload", "memory", "--out", self.out],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def result(self) -> dict[str, Any]:
        """Wait for the process and return its result (or why it has none)."""
        log(f"  {'memory':<14} {self.side:<13} ...")
        try:
            _, stderr = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            stderr = None
        try:
            if stderr is None:
                return _failed(self.side, "memory", f"timed out after {self.timeout:.0f} s")
            if self.proc.returncode != 0 or not os.path.exists(self.out):
                tail = stderr.strip().splitlines()[-3:]
                return _failed(self.side, "memory", f"worker exited with {self.proc.returncode}: {' | '.join(tail)}")
            with open(self.out) as f:
                result = json.load(f)
        finally:
            self.tmp.cleanup()
        _log_result(result)
        return result


def run_load(warmup: int, repeat: int, pool: Pool, timeout: float, quick: bool) -> dict[str, dict[str, Any]]:
    """Save the load workload's model in a temporary directory, then time loading it on both sides."""
    with tempfile.TemporaryDirectory() as tmp:
        log(f"  {'load':<14} writing the model with numpygpt's save_pretrained ...")
        try:
            proc = subprocess.run([*worker_cmd("numpygpt", quick), "--make-checkpoint", tmp],
                                  check=False, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc = None
        if proc is None or proc.returncode != 0:
            tail = "timed out" if proc is None else " | ".join(proc.stderr.strip().splitlines()[-3:])
            return {side: _failed(side, "load", f"could not write the model: {tail}")
                    for side in SIDES["load"]}
        file_bytes = json.loads(proc.stdout.strip().splitlines()[-1])["bytes"]
        results = run_interleaved("load", list(SIDES["load"]), warmup, repeat, pool, tmp)
    for r in results.values():
        r["file_bytes"] = file_bytes
    return results


def measure_limits(warmup: int, repeat: int, pool: Pool) -> dict[str, dict[str, Any]]:
    """The machine's two limits, each timed on its own before the workloads (best of ``repeat``)."""
    results = {}
    for name in ("matmul", "bandwidth"):
        results[name] = run_interleaved(name, ["numpy"], warmup, max(repeat, 3), pool)["numpy"]
    return results


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cores": common.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M %Z")}
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
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["blas"] = " ".join(str(blas.get(k, "")) for k in ("name", "version")).strip()
    except Exception:  # noqa: BLE001, S110 - an older NumPy: the versions are only missing from the report
        pass
    return info


def _versions(all_results: dict[str, dict[str, dict[str, Any]]], info: dict[str, Any]) -> None:
    """Copy the peers' versions (reported by their workers) into the machine facts."""
    for results in all_results.values():
        for r in results.values():
            for key in ("torch", "transformers", "safetensors", "numpygpt"):
                if key in r.get("info", {}):
                    info.setdefault(key, r["info"][key])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="numpygpt vs PyTorch / transformers, same run, same machine.")
    p.add_argument("--workload", default="all",
                   help=f"all (default), or one or more of {', '.join(WORKLOADS)}, comma-separated")
    p.add_argument("--repeat", type=int, default=None, help="timed repeats per pair (default 3; 1 with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls before timing (default 1; 0 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="every workload on tiny models, to check that everything runs (ratios meaningless)")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds allowed for one build or one step (default 1800)")
    p.add_argument("--json", metavar="PATH", help="also write all results to this JSON file")
    p.add_argument("--markdown", metavar="PATH", help="also write the summary as a Markdown results section")
    args = p.parse_args(argv)
    args.repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 1)
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be >= 1 and --warmup >= 0")
    names = list(WORKLOADS) if args.workload == "all" else [w.strip() for w in args.workload.split(",")]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; choose from all, {', '.join(WORKLOADS)}")
    args.chosen = names
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    common.set_quick(args.quick)
    info = machine_info()
    log(f"machine: {info.get('cpu', '?')}, {info['cores']} cores, numpy {info.get('numpy')} "
        f"({info.get('blas')}); repeat {args.repeat}, warmup {args.warmup}"
        + ("; --quick: tiny models" if args.quick else ""))

    all_results: dict[str, dict[str, dict[str, Any]]] = {}
    with Pool(args.timeout, shared=args.quick, quick=args.quick) as pool:
        early = {}
        if args.quick:  # start every process now: their imports overlap (the sizes are tiny)
            pool.prestart([s for name in args.chosen for s in SIDES[name]])
            if "memory" in args.chosen:
                early = {side: MemoryRun(side, args.timeout, True) for side in SIDES["memory"]}
        limits = measure_limits(args.warmup, args.repeat, pool)
        for workload in args.chosen:
            if workload == "memory":
                all_results[workload] = {
                    side: (early.get(side) or MemoryRun(side, args.timeout, args.quick)).result()
                    for side in SIDES[workload]}
            elif workload == "load":
                all_results[workload] = run_load(args.warmup, args.repeat, pool, args.timeout, args.quick)
            else:
                all_results[workload] = run_workload(workload, args.warmup, args.repeat, pool)
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = round(os.getloadavg()[0], 2)
    _versions(all_results, info)

    summary = report.build_summary(all_results, limits, SIDES)
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report.print_all(summary, all_results, info, args, SIDES)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "settings": {k: v for k, v in vars(args).items()},
                       "command": command.strip(), "limits": limits, "summary": summary,
                       "results": all_results}, f, indent=1)
        log(f"\nwrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report.markdown(summary, info, args, command.strip()))
        log(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
