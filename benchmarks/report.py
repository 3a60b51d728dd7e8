"""Turning a run's results into figures: the machine's limits, ratios against SPEC.md's targets, tables.

:func:`build_summary` computes every figure once (as plain data, also written
to JSON); :func:`print_all` prints them, :func:`markdown` writes the summary
as a Markdown results section.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import common

Results = dict[str, dict[str, Any]]

# SPEC.md's targets for numpygpt / peer (time, or peak RSS for memory): at most this.
TARGETS: dict[tuple[str, str], float] = {
    ("forward", "transformers"): 0.80,
    ("train", "torch"): 0.70,
    ("generate", "transformers"): 0.55,
    ("memory", "torch"): 0.70,
    ("forward_f64", "torch"): 0.80,
    ("train_f64", "torch"): 0.80,
    ("forward_long", "transformers"): 0.80,
    ("train_long", "torch"): 0.70,
    ("forward_medium", "transformers"): 0.80,
    ("train_medium", "torch"): 0.70,
    ("load", "safetensors"): 1.5,
}
# ... and the fractions of a machine limit numpygpt must reach: at least this.
MFU_TARGETS = {"forward": 0.88, "train": 0.75}
BANDWIDTH_TARGET = 0.85

LABELS = {
    "numpygpt": "numpygpt",
    "torch": "PyTorch eager (seed model)",
    "transformers": "transformers GPT2LMHeadModel",
    "numpy": "NumPy reference",
    "safetensors": "safetensors.numpy.load_file",
}
MIB = 1024.0**2


def _ok(r: dict[str, Any] | None) -> bool:
    return bool(r) and r.get("status") == "ok"


def _times(r: dict[str, Any] | None) -> list[float]:
    return list(r.get("times_s", [])) if _ok(r) else []


def limits_of(all_results: dict[str, Results], limits: Results) -> dict[str, Any]:
    """The two limits: the best matmul FLOP/s and the best bandwidth seen anywhere in the run."""
    matmul_times = _times(limits.get("matmul"))
    bandwidth_times = _times(limits.get("bandwidth"))
    for name, results in all_results.items():
        numpy_side = results.get("numpy")
        if common.workload(name).kind == "generate":
            bandwidth_times += _times(numpy_side)
        else:
            matmul_times += _times(numpy_side)
    n, reps = common.matmul_size()
    rows, cols, bw_reps = common.bandwidth_size()
    return {
        "matmul_gflops": common.matmul_flop() / min(matmul_times) / 1e9 if matmul_times else None,
        "matmul": f"{reps} x float32 ({n}, {n}) @ ({n}, {n}), best of {len(matmul_times)}",
        "bandwidth_gbs": common.bandwidth_bytes() / min(bandwidth_times) / 1e9 if bandwidth_times else None,
        "bandwidth": (f"{bw_reps} x float32 ({rows}, {cols}) @ ({cols},) "
                      f"({rows * cols * 4 / 1e6:.0f} MB matrix), best of {len(bandwidth_times)}"),
    }


def _row(workload: str, metric: str, side: str, value: float | None, target: float | None,
         higher_is_better: bool, **extra: Any) -> dict[str, Any]:
    met = None
    if value is not None and target is not None:
        met = value >= target if higher_is_better else value <= target
    return {"workload": workload, "metric": metric, "side": side, "value": value, "target": target,
            "op": ">=" if higher_is_better else "<=", "met": met, **extra}


def _ratio_rows(name: str, results: Results, sides: tuple[str, ...]) -> list[dict[str, Any]]:
    """numpygpt / peer for every peer: best over best, and the median of same-round quotients."""
    kind = common.workload(name).kind
    key = "peak_rss_mib" if kind == "memory" else "best_s"
    ours = results.get("numpygpt")
    rows = []
    for side in sides[1:]:
        if side == "numpy":
            continue
        theirs = results.get(side)
        ratio = per_round = None
        if _ok(ours) and _ok(theirs) and theirs.get(key):
            ratio = ours[key] / theirs[key]
            pairs = [a / b for a, b in zip(_times(ours), _times(theirs)) if b > 0]
            per_round = statistics.median(pairs) if pairs else None
        status = None if _ok(theirs) else (theirs or {}).get("status", "not run")
        if not _ok(ours):
            status = (ours or {}).get("status", "not run") + " (numpygpt)"
        rows.append(_row(name, "peak RSS" if kind == "memory" else "time", side, ratio,
                         TARGETS.get((name, side)), False, per_round=per_round, status=status))
    return rows


def _mfu_rows(name: str, results: Results, lim: dict[str, Any]) -> list[dict[str, Any]]:
    """Achieved FLOP/s over the matmul limit, for every side of a float32 forward or train workload."""
    w = common.workload(name)
    flops = common.workload_flops(w)
    if flops is None or w.dtype != "float32" or not lim.get("matmul_gflops"):
        return []
    rows = []
    ceiling = lim["matmul_gflops"] * 1e9
    in_round = _times(results.get("numpy"))
    for side, r in results.items():
        if side == "numpy" or not _ok(r):
            continue
        pairs = [(flops / t) / (common.matmul_flop() / m) for t, m in zip(_times(r), in_round)]
        rows.append(_row(name, "MFU", side, flops / r["best_s"] / ceiling,
                         MFU_TARGETS[w.kind] if side == "numpygpt" else None, True,
                         gflops=flops / r["best_s"] / 1e9, gflop=flops / 1e9,
                         per_round=statistics.median(pairs) if pairs else None))
    return rows


def _bandwidth_rows(name: str, results: Results, lim: dict[str, Any]) -> list[dict[str, Any]]:
    """Each side's generate time against the time to stream the weights once per new token."""
    if not lim.get("bandwidth_gbs"):
        return []
    w = common.workload(name)
    per_token = common.decode_weight_bytes(w.cfg)
    bound_s = per_token * common.NEW_TOKENS / (lim["bandwidth_gbs"] * 1e9)
    rows = []
    for side, r in results.items():
        if side == "numpy" or not _ok(r):
            continue
        rows.append(_row(name, "bandwidth bound", side, bound_s / r["best_s"],
                         BANDWIDTH_TARGET if side == "numpygpt" else None, True,
                         bound_s=bound_s, bytes_per_token=per_token, how=r.get("how")))
    return rows


def build_summary(all_results: dict[str, Results], limits: Results,
                  sides: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """Every figure of the run: the limits and one row per ratio or fraction, with its target."""
    lim = limits_of(all_results, limits)
    rows: list[dict[str, Any]] = []
    for name, results in all_results.items():
        rows += _ratio_rows(name, results, sides[name])
        kind = common.workload(name).kind
        if kind in ("forward", "train"):
            rows += _mfu_rows(name, results, lim)
            if name.endswith(("_long", "_medium")):
                rows += _peak_rows(name, results)
        elif kind == "generate":
            rows += _bandwidth_rows(name, results, lim)
    return {"limits": lim, "rows": rows}


def _peak_rows(name: str, results: Results) -> list[dict[str, Any]]:
    """Peak RSS of the long-context workers, numpygpt / peer, beside one (B, nh, T, T) float32 array."""
    w = common.workload(name)
    scores = common.attention_scores_bytes(w.cfg, w.batch, w.seq_len)
    ours = results.get("numpygpt")
    rows = []
    for side, r in results.items():
        if side in ("numpygpt", "numpy") or not (_ok(ours) and _ok(r)):
            continue
        rows.append(_row(name, "peak RSS", side, ours["peak_rss_mib"] / r["peak_rss_mib"], None, False,
                         ours_mib=ours["peak_rss_mib"], theirs_mib=r["peak_rss_mib"],
                         scores_mib=scores / MIB))
    return rows


# --------------------------------------------------------------------------- printing

def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _verdict(row: dict[str, Any]) -> str:
    if row["target"] is None:
        return ""
    target = _pct(row["target"]) if row["metric"] in ("MFU", "bandwidth bound") else f"{row['target']:.2f}"
    mark = {True: "pass", False: "MISS", None: "-"}[row["met"]]
    return f"{row['op']} {target} {mark}"


def _value(row: dict[str, Any]) -> str:
    return _pct(row["value"]) if row["metric"] in ("MFU", "bandwidth bound") else _num(row["value"])


def print_summary(summary: dict[str, Any]) -> None:
    """The limits, then every ratio and fraction with its target and pass/MISS."""
    lim = summary["limits"]
    print("\nmachine limits, measured in this run:")
    print(f"  matmul FLOP/s     {_num(lim['matmul_gflops'], '.1f')} GFLOP/s   ({lim['matmul']})")
    print(f"  memory bandwidth  {_num(lim['bandwidth_gbs'], '.1f')} GB/s      ({lim['bandwidth']})")
    for row in summary["rows"]:
        if row["metric"] == "bandwidth bound":
            print(f"generate: {_pct(row['value'])} of the memory-bandwidth bound ({LABELS[row['side']]})")
    print("\nsummary (time and peak RSS: numpygpt / peer, below 1 is better; MFU and bandwidth"
          " bound: numpygpt's fraction of the limit)")
    print(f"  {'workload':<15} {'measure':<16} {'peer / side':<30} {'value':>7} {'per-round':>9}  target")
    for row in summary["rows"]:
        if row["metric"] == "peak RSS" and row["workload"] != "memory":
            continue  # the long-context peaks are in their own tables
        per_round = row.get("per_round")
        pr = (_pct(per_round) if row["metric"] == "MFU" else _num(per_round)) if per_round else ""
        value = _value(row) if row.get("status") is None else row["status"]
        print(f"  {row['workload']:<15} {row['metric']:<16} {LABELS[row['side']]:<30} {value:>7} "
              f"{pr:>9}  {_verdict(row)}")


def _short(msg: str, width: int = 90) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= width else msg[: width - 3] + "..."


def print_workload(name: str, results: Results, summary: dict[str, Any]) -> None:
    """One workload's table: each side's time, peak RSS and (float32 forward/train) MFU."""
    w = common.workload(name)
    print(f"\n{w.title}")
    if w.kind == "memory":
        return _print_memory(results)
    mfu = {r["side"]: r for r in summary["rows"] if r["workload"] == name and r["metric"] == "MFU"}
    ratio = {r["side"]: r for r in summary["rows"] if r["workload"] == name and r["metric"] == "time"}
    print(f"  {'side':<30} {'best':>9} {'median':>9} {'numpygpt/side':>13} {'per-round':>9} "
          f"{'peak RSS':>10} {'MFU':>5}")
    for side, r in results.items():
        label = LABELS[side] if side != "numpy" else f"NumPy {r.get('how', 'reference')}"
        if not _ok(r):
            print(f"  {LABELS[side]:<30} {_short(r.get('status', 'not run') + ': ' + r.get('message', ''))}")
            continue
        rr = ratio.get(side, {})
        print(f"  {label[:30]:<30} {r['best_s']:>8.3f}s {r['median_s']:>8.3f}s {_num(rr.get('value')):>13} "
              f"{_num(rr.get('per_round')) if rr else '':>9} {r['peak_rss_mib']:>6.0f} MiB "
              f"{_pct(mfu[side]['value']) if side in mfu else '':>5}")
        if r.get("how") and side != "numpy":
            print(f"  {'':<30}   {r['how']}")
    if name.endswith(("_long", "_medium")):
        scores = common.attention_scores_bytes(w.cfg, w.batch, w.seq_len) / MIB
        print(f"  one (B, nh, T, T) float32 attention array: {scores:.0f} MiB per layer, "
              f"{scores * w.cfg['n_layers']:.0f} MiB over {w.cfg['n_layers']} layers")
    if w.kind == "load" and results.get("numpygpt", {}).get("file_bytes"):
        print(f"  model.safetensors: {results['numpygpt']['file_bytes'] / 1e6:.0f} MB, read once before timing")


def _print_memory(results: Results) -> None:
    print(f"  {'side':<30} {'after import':>12} {'after build':>12} {'peak VmHWM':>11} {'ru_maxrss':>10}")
    for side, r in results.items():
        if not _ok(r):
            print(f"  {LABELS[side]:<30} {_short(r.get('status', 'not run') + ': ' + r.get('message', ''))}")
            continue
        print(f"  {LABELS[side]:<30} {r.get('rss_after_import_mib') or 0:>8.0f} MiB "
              f"{r.get('rss_after_build_mib') or 0:>8.0f} MiB {r['peak_rss_mib']:>7.0f} MiB "
              f"{r['ru_maxrss_mib']:>6.0f} MiB")


def print_all(summary: dict[str, Any], all_results: dict[str, Results], info: dict[str, Any],
              args: argparse.Namespace, sides: dict[str, tuple[str, ...]]) -> None:
    """Everything the run found, on stdout."""
    print(f"\nnumpygpt benchmarks on {info.get('cpu', '?')} ({info['cores']} cores), Python {info['python']}, "
          f"numpy {info.get('numpy')} ({info.get('blas')}), torch {info.get('torch', '-')}, "
          f"transformers {info.get('transformers', '-')}; best of {args.repeat} after {args.warmup} warm-up"
          + ("; --quick: tiny models, the ratios mean nothing" if args.quick else ""))
    start = info.get("load_average_at_start", [0.0])[0]
    end = info.get("load_average_at_end", 0.0)
    print(f"1-minute load average: {start:.2f} at start, {end:.2f} at end")
    if max(start, end) > info["cores"]:
        print("warning: other processes were competing for the cores; absolute times are inflated,"
              " ratios less so (the sides ran interleaved)")
    print_summary(summary)
    for name, results in all_results.items():
        print_workload(name, {s: results[s] for s in sides[name] if s in results}, summary)


def _markdown_row(row: dict[str, Any]) -> str:
    """One summary row as a Markdown table row: workload, measure, against what, value, target, result."""
    if row["metric"] in ("MFU", "bandwidth bound"):
        measure = f"{row['metric']}, {LABELS[row['side']]}"
        against = "matmul limit" if row["metric"] == "MFU" else "bandwidth limit"
    else:
        measure, against = f"{row['metric']}, numpygpt / peer", LABELS[row["side"]]
    if row.get("status"):
        value = row["status"]
    elif row["metric"] == "peak RSS" and row["workload"] != "memory":
        value = (f"{_num(row['value'])} ({row['ours_mib']:.0f} vs {row['theirs_mib']:.0f} MiB; one "
                 f"(B, nh, T, T) float32 array: {row['scores_mib']:.0f} MiB per layer)")
    else:
        value = _value(row)
    target, result = "", ""
    if row["target"] is not None:
        target, result = _verdict(row).rsplit(" ", 1)
        target = target.replace("<=", "≤").replace(">=", "≥")
    return f"| {row['workload']} | {measure} | {against} | {value} | {target} | {result} |"


def markdown(summary: dict[str, Any], info: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    """The summary as Markdown, ready to paste under a README's "## Results" heading."""
    lim = summary["limits"]
    load = (f"1-minute load {info.get('load_average_at_start', [0])[0]:.2f} at start, "
            f"{info.get('load_average_at_end', 0):.2f} at end")
    lines = [
        (f"`{command}` on {info.get('cpu', '?')}, {info['cores']} cores, {info.get('date', '')}; "
         f"Python {info['python']}, numpy {info.get('numpy')} (BLAS: {info.get('blas')}), "
         f"torch {info.get('torch', '-')}, transformers {info.get('transformers', '-')}; "
         f"best of {args.repeat} after {args.warmup} warm-up; {load}."),
        "",
        (f"Machine limits in the same run: matmul {_num(lim['matmul_gflops'], '.1f')} GFLOP/s "
         f"({lim['matmul']}); memory bandwidth {_num(lim['bandwidth_gbs'], '.1f')} GB/s ({lim['bandwidth']})."),
        "",
        "| workload | measure | against | value | target | |",
        "|---|---|---|---|---|---|",
    ]
    lines += [_markdown_row(row) for row in summary["rows"]]
    return "\n".join(lines) + "\n"
