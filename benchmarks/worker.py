"""One side of the benchmarks, in a process of its own, driven by ``run.py``.

Two modes:

``--serve`` (timing). The worker reads commands from stdin, one per line,
and answers each with one line starting with ``@@``:

    build NAME [DIR] -> builds workload NAME (a name of common.workload, or
                        "matmul" / "bandwidth" for the numpy side; DIR is the
                        saved model of "load"); prints ``@@ ready``, or
                        ``@@ result JSON`` if it cannot be built
    warmup           -> runs it once, untimed: ``@@ ok``
    step             -> runs it once, timed: ``@@ time SECONDS``
    finish           -> ``@@ result JSON`` of the workload built last
    quit             -> exits

so that ``run.py`` can interleave the sides round by round: on a busy
machine every side then sees the same background load. Normally a worker
builds one workload and is then ended, so every workload runs in a fresh
process; under ``--quick`` one worker per side serves every workload in turn
(importing transformers alone takes seconds), its peak RSS reset at each build.

One-shot (memory, or a quick manual check). The worker imports its framework,
builds the model, runs the workload (``memory``: two train steps; otherwise
warmup + repeat timed calls), and writes the result JSON to ``--out`` or stdout.

    python benchmarks/worker.py --side torch --workload train --repeat 3
    python benchmarks/worker.py --side numpygpt --workload memory

Result fields: ``status`` ("ok", "unavailable" or "error"), ``message``,
``times_s``, ``median_s``, ``best_s``, ``peak_rss_mib`` (VmHWM: the peak
resident set of the process, since the build under --serve), ``ru_maxrss_mib``,
``rss_after_import_mib``, ``rss_after_build_mib``, ``build_s``, ``how`` and ``info``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import common
import sides

PREFIX = "@@ "    # protocol lines start with this; anything else on stdout is ignored
REFERENCES = ("matmul", "bandwidth")   # the numpy side's two limits: not model workloads


def build(side: str, name: str, result: dict[str, Any], arg: str | None = None) -> Callable[[], Any]:
    """Build workload ``name`` on ``side`` (untimed), filling ``result``; returns the step.

    Raises :class:`common.Unavailable` when the side cannot run here.
    """
    builders = sides.BUILDERS.get(side, {})
    kind = name if name in REFERENCES else common.workload(name).kind
    if kind not in builders:
        raise common.Unavailable(f"{side} has no {name} workload")
    result["info"] = builders["info"]()          # imports the framework
    result["rss_after_import_mib"] = common.current_rss_mib()
    start = time.perf_counter()
    built = builders[kind](None if name in REFERENCES else common.workload(name), arg)
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
    result["ru_maxrss_mib"] = common.ru_maxrss_mib()
    return result


def run_once(side: str, name: str, warmup: int, repeat: int, arg: str | None = None) -> dict[str, Any]:
    """One-shot mode: build, run, and return the result; never raises."""
    result: dict[str, Any] = {"side": side, "workload": name, "status": "ok"}
    times: list[float] = []
    try:
        step = build(side, name, result, arg)
        if name == "memory":
            for _ in range(common.MEMORY_STEPS):
                step()
            result["steps"] = common.MEMORY_STEPS
        else:
            for _ in range(warmup):
                step()
            times = [timed(step) for _ in range(repeat)]
    except Exception as exc:  # noqa: BLE001 - any failure is reported as the side's result
        _fail(result, exc)
    return _finish(result, times)


def _say(*parts: str) -> None:
    sys.stdout.write(PREFIX + " ".join(parts) + "\n")
    sys.stdout.flush()


def serve(side: str) -> None:
    """Serve mode: obey build/warmup/step/finish/quit commands on stdin."""
    step: Callable[[], Any] | None = None
    result: dict[str, Any] = {}
    times: list[float] = []
    try:  # import the framework before the first command (build measures it again; a failure waits)
        sides.BUILDERS[side]["info"]()
    except Exception:  # noqa: BLE001, S110 - the build reports it
        pass
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "quit":
            break
        if command == "build":
            name, _, directory = arg.partition(" ")
            step, times = None, []
            result = {"side": side, "workload": name, "status": "ok"}
            gc.collect()
            result["peak_reset"] = common.reset_peak_rss()
            try:
                step = build(side, name, result, directory or None)
                _say("ready")
            except Exception as exc:  # noqa: BLE001 - any failure is reported as the side's result
                _fail(result, exc)
                _say("result", json.dumps(_finish(result, times)))
        elif command == "finish":
            _say("result", json.dumps(_finish(result, times)))
            step = None
        elif command in ("warmup", "step") and step is not None:
            try:
                if command == "warmup":
                    step()
                    _say("ok")
                else:
                    times.append(timed(step))
                    _say("time", repr(times[-1]))
            except Exception as exc:  # noqa: BLE001 - any failure is reported as the side's result
                _fail(result, exc)
                step = None
                _say("error", result["message"].replace("\n", " "))
        else:
            _say("error", f"unknown command {line.strip()!r} (or nothing built)")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description="Run benchmark workloads for one side.")
    p.add_argument("--side", required=True, choices=sorted(sides.BUILDERS))
    p.add_argument("--workload", help="one-shot mode: the workload to run")
    p.add_argument("--serve", action="store_true", help="take build/warmup/step/finish/quit commands on stdin")
    p.add_argument("--quick", action="store_true", help="the tiny sizes of run.py --quick")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dir", help="the saved model directory of the load workload")
    p.add_argument("--out", help="one-shot mode: write the JSON result here instead of stdout")
    p.add_argument("--make-checkpoint", metavar="DIR",
                   help="write the load workload's model to DIR with numpygpt's save_pretrained")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be >= 1 and --warmup >= 0")
    common.set_quick(args.quick)
    if args.serve:
        serve(args.side)
        return 0
    if args.make_checkpoint:
        size = sides.save_checkpoint(common.workload("load"), args.make_checkpoint)
        sys.stdout.write(json.dumps({"bytes": size}) + "\n")
        return 0
    if not args.workload:
        p.error("give --workload (one-shot), --serve or --make-checkpoint")
    text = json.dumps(run_once(args.side, args.workload, args.warmup, args.repeat, args.dir), indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
