"""Run one workload for one side in this process and write the result as JSON.

Each (side, workload) pair runs in a fresh process started by ``run.py``, so
one framework's thread pool or allocator never slows another, and the
process's peak RSS belongs to that pair alone.

    python benchmarks/worker.py --side torch --workload train --repeat 3 --out r.json

Result fields: ``status`` ("ok", "unavailable" or "error"), ``message``,
``times_s``, ``median_s``, ``best_s``, ``peak_rss_mib`` (VmHWM of the whole
process), ``rss_after_build_mib``, ``build_s``, ``how`` and ``info``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from typing import Any

import common
import sides

MEMORY_STEPS = 2  # the memory workload: build the model, run this many train steps


def run(side: str, workload: str, warmup: int, repeat: int) -> dict[str, Any]:
    """Build and time ``workload`` on ``side``; never raises."""
    result: dict[str, Any] = {"side": side, "workload": workload, "status": "ok"}
    builders = sides.BUILDERS.get(side, {})
    if workload not in builders:
        return {**result, "status": "unavailable", "message": f"{side} has no {workload} workload"}
    try:
        result["info"] = builders["info"]()
        start = time.perf_counter()
        built = builders[workload]()
        result["build_s"] = time.perf_counter() - start
        step, how = built if isinstance(built, tuple) else (built, None)
        if how:
            result["how"] = how
        result["rss_after_build_mib"] = common.current_rss_mib()
        if workload == "memory":
            for _ in range(MEMORY_STEPS):
                step()
            result["steps"] = MEMORY_STEPS
        else:
            times = common.time_calls(step, warmup=warmup, repeat=repeat)
            result["times_s"] = times
            result.update(common.summarize(times))
    except sides.Unavailable as exc:
        result.update(status="unavailable", message=str(exc))
    except Exception as exc:
        result.update(status="error", message=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())
    result["peak_rss_mib"] = common.peak_rss_mib()
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run one pair, write JSON to --out (or stdout)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", required=True, choices=sorted(sides.BUILDERS))
    p.add_argument("--workload", required=True,
                   choices=["forward", "train", "generate", "memory", "matmul"])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", help="write the JSON result here instead of stdout")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be >= 1 and --warmup >= 0")
    result = run(args.side, args.workload, args.warmup, args.repeat)
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
