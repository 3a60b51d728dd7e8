"""One side of one workload, in a process of its own, driven by ``run.py``.

Two modes:

``--serve`` (timing). The worker builds the model, prints ``@@ ready``, then
answers commands read from stdin, one per line:

    warmup  -> runs the workload once, untimed, and prints ``@@ ok``
    step    -> runs it once, timed, and prints ``@@ time SECONDS``
    quit    -> prints ``@@ result JSON`` and exits

so that ``run.py`` can interleave the sides round by round: on a busy
machine every side then sees the same background load.

One-shot (memory, or a quick manual check). The worker builds the model,
runs the workload (``memory``: two train steps; otherwise warmup + repeat
timed calls), and writes the result JSON to ``--out`` or stdout.

    python benchmarks/worker.py --side torch --workload train --repeat 3

Result fields: ``status`` ("ok", "unavailable" or "error"), ``message``,
``times_s``, ``median_s``, ``best_s``, ``peak_rss_mib`` (VmHWM of the whole
process), ``rss_after_build_mib``, ``build_s``, ``how`` and ``info``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import traceback
from typing import Any, Callable

import common
import sides

MEMORY_STEPS = 2  # the memory workload: build the model, run this many train steps
PREFIX = "@@ "    # protocol lines start with this; anything else on stdout is ignored


def build(side: str, workload: str, result: dict[str, Any]) -> Callable[[], Any]:
    """Build ``workload`` on ``side`` (untimed), filling ``result``; returns the step.

    Raises :class:`common.Unavailable` when the side cannot run here.
    """
    builders = sides.BUILDERS.get(side, {})
    if workload not in builders:
        raise common.Unavailable(f"{side} has no {workload} workload")
    result["info"] = builders["info"]()
    start = time.perf_counter()
    built = builders[workload]()
    result["build_s"] = time.perf_counter() - start
    step, how = built if isinstance(built, tuple) else (built, None)
    if how:
        result["how"] = how
    result["rss_after_build_mib"] = common.current_rss_mib()
    return step


def timed(step: Callable[[], Any]) -> float:
    """Seconds taken by one call of ``step``, after a garbage collection."""
    gc.collect()
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _fail(result: dict[str, Any], exc: BaseException) -> None:
    if isinstance(exc, common.Unavailable):
        result.update(status="unavailable", message=str(exc))
    else:
        result.update(status="error", message=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())


def _finish(result: dict[str, Any], times: list[float]) -> dict[str, Any]:
    if times:
        result["times_s"] = times
        result.update(common.summarize(times))
    elif result["status"] == "ok" and result["workload"] != "memory":
        result.update(status="error", message="no timed run completed")
    result["peak_rss_mib"] = common.peak_rss_mib()
    return result


def run_once(side: str, workload: str, warmup: int, repeat: int) -> dict[str, Any]:
    """One-shot mode: build, run, and return the result; never raises."""
    result: dict[str, Any] = {"side": side, "workload": workload, "status": "ok"}
    times: list[float] = []
    try:
        step = build(side, workload, result)
        if workload == "memory":
            for _ in range(MEMORY_STEPS):
                step()
            result["steps"] = MEMORY_STEPS
        else:
            for _ in range(warmup):
                step()
            times = [timed(step) for _ in range(repeat)]
    except Exception as exc:
        _fail(result, exc)
    return _finish(result, times)


def _say(*parts: str) -> None:
    sys.stdout.write(PREFIX + " ".join(parts) + "\n")
    sys.stdout.flush()


def serve(side: str, workload: str) -> None:
    """Serve mode: build, then obey warmup/step/quit commands on stdin."""
    result: dict[str, Any] = {"side": side, "workload": workload, "status": "ok"}
    times: list[float] = []
    try:
        step = build(side, workload, result)
    except Exception as exc:
        _fail(result, exc)
        _say("result", json.dumps(_finish(result, times)))
        return
    _say("ready")
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        try:
            if command == "warmup":
                step()
                _say("ok")
            elif command == "step":
                times.append(timed(step))
                _say("time", repr(times[-1]))
            else:
                _say("error", f"unknown command {command!r}")
        except Exception as exc:
            _fail(result, exc)
            _say("error", result["message"].replace("\n", " "))
            break
    _say("result", json.dumps(_finish(result, times)))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description="Run one benchmark workload for one side.")
    p.add_argument("--side", required=True, choices=sorted(sides.BUILDERS))
    p.add_argument("--workload", required=True,
                   choices=["forward", "train", "generate", "memory", "matmul"])
    p.add_argument("--serve", action="store_true", help="take warmup/step/quit commands on stdin")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", help="one-shot mode: write the JSON result here instead of stdout")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be >= 1 and --warmup >= 0")
    if args.serve:
        serve(args.side, args.workload)
        return 0
    text = json.dumps(run_once(args.side, args.workload, args.warmup, args.repeat), indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
