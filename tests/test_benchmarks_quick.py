"""`python benchmarks/run.py --quick`: every benchmark workload runs on tiny models and is reported.

The ratios of a quick run mean nothing (tiny models, one repeat, no warm-up);
what is checked is that every code path runs: each workload prints its table
and every numpygpt row has a time or a peak memory. Peers that cannot run
here (torch or transformers not installed) must be reported as unavailable,
not stop the run, so this test needs neither.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
WORKLOADS = ("forward", "train", "generate", "memory", "forward_f64", "train_f64", "forward_long",
             "train_long", "forward_medium", "train_medium", "load")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict, str]:
    out = tmp_path_factory.mktemp("bench")
    json_path, md_path = out / "results.json", out / "results.md"
    proc = subprocess.run([sys.executable, str(RUN), "--quick", "--json", str(json_path),
                           "--markdown", str(md_path)],
                          check=False, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(json_path.read_text()), md_path.read_text()


def test_every_workload_prints_its_table(quick_run) -> None:
    proc, data, _ = quick_run
    assert list(data["results"]) == list(WORKLOADS)
    for name in WORKLOADS:
        assert any(row["workload"] == name for row in data["summary"]["rows"]) or name == "memory"
        assert f"\n  {name:<15} " in proc.stdout or name == "memory", f"no summary row for {name}"
    for title in ("forward, no_grad", "train step", "generate: greedy", "memory: peak RSS", "load: "):
        assert title in proc.stdout


def test_numpygpt_runs_every_workload(quick_run) -> None:
    _, data, _ = quick_run
    for name in WORKLOADS:
        ours = data["results"][name]["numpygpt"]
        assert ours["status"] == "ok", (name, ours.get("message"))
        key = "peak_rss_mib" if name == "memory" else "best_s"
        assert ours[key] > 0


def test_limits_and_bandwidth_bound_are_reported(quick_run) -> None:
    proc, data, _ = quick_run
    limits = data["summary"]["limits"]
    assert limits["matmul_gflops"] > 0 and limits["bandwidth_gbs"] > 0
    assert "memory bandwidth" in proc.stdout and "matmul FLOP/s" in proc.stdout
    assert "generate: " in proc.stdout and "% of the memory-bandwidth bound (numpygpt)" in proc.stdout


def test_peers_run_or_are_reported_unavailable(quick_run) -> None:
    _, data, _ = quick_run
    have_torch = importlib.util.find_spec("torch") is not None
    for name in WORKLOADS:
        for side in ("torch", "transformers"):
            result = data["results"][name].get(side)
            if result is None:
                continue
            if have_torch and side == "torch":
                assert result["status"] == "ok", (name, side, result.get("message"))
            else:
                assert result["status"] in ("ok", "unavailable"), (name, side, result.get("message"))


def test_markdown_has_every_target(quick_run) -> None:
    _, data, md = quick_run
    assert md.startswith("`python benchmarks/run.py --quick")
    with_target = [row for row in data["summary"]["rows"] if row["target"] is not None]
    assert with_target
    table_rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table_rows) == len(data["summary"]["rows"]) + 1  # + the header
    assert sum(("pass |" in line or "MISS |" in line) for line in table_rows) == sum(
        row["met"] is not None for row in with_target)


def test_breakdown_quick_splits_every_workload(tmp_path: Path) -> None:
    """`benchmarks/breakdown.py --quick`: the profile's buckets for each workload and generation's split."""
    md = tmp_path / "breakdown.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "breakdown.py"), "--quick", "--markdown", str(md)],
                          check=False, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = md.read_text()
    assert proc.stdout == text + "\n"                                   # printed and written alike
    for name in ("forward", "train", "forward_f64", "train_f64"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert row.count("|") == 14 and "Linear" not in row           # 13 cells: time, 8 buckets, rate, MFU, ceiling
    assert "generate, per token:" in text and "tiny weights" in text and "Bandwidth bound reached" in text


def test_breakdown_buckets_hand_numpy_time_to_the_caller() -> None:
    """np.mean's own Python time (called from LayerNorm) is LayerNorm's, not "other"'s."""
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import breakdown
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    import numpy as np
    import numpygpt.nn.functional as F

    import numpygpt
    x = numpygpt.tensor(np.random.default_rng(0).standard_normal((64, 256)), requires_grad=True)
    w, b = numpygpt.ones(256, requires_grad=True), numpygpt.zeros(256, requires_grad=True)
    profile = cProfile.Profile()
    profile.runcall(lambda: [F.layer_norm(x, (256,), w, b).sum().backward() for _ in range(20)])
    split = breakdown.buckets(pstats.Stats(profile))
    assert split["LayerNorm"] > 0 and set(split) <= set(breakdown.BUCKETS)
    assert abs(sum(split.values()) - sum(e[2] for e in pstats.Stats(profile).stats.values())) < 1e-9
