"""The benchmark harness still runs and still verifies what the trackers stored (a tiny smoke run).

Performance itself is shown by ``python -m benchmarks.compare`` (docs/performance.md), never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_compare_smoke_run_verifies_every_tracker(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.compare",
            "--configs",
            "none,tb-all",
            "--trials",
            "1",
            "--results",
            "5",
            "--repeats",
            "1",
            "--no-direct",
            "--no-bridge",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    [table] = tmp_path.glob("compare-1x5.md")
    row = next(line for line in table.read_text().splitlines() if "`tb-all`" in line)
    assert "wandb 60/60, mlflow 60/60, tb 60/60" in row and row.rstrip(" |").endswith("ok"), row


def test_in_trial_smoke_run_times_the_calls_and_verifies_every_in_trial_point(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.compare",
            "--in-trial-logs",
            "2",
            "--configs",
            "tb-all",
            "--no-results-only",
            "--trials",
            "1",
            "--results",
            "3",
            "--repeats",
            "1",
            "--cpus",
            "2",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    [table] = tmp_path.glob("in-trial-1x3x2.md")
    lines = [line for line in table.read_text().splitlines() if line.startswith("| ")]
    baseline = next(line for line in lines if "`none`" in line)
    assert "0 (2 do-nothing calls)" in baseline and baseline.rstrip(" |").endswith("ok"), baseline
    row = next(line for line in lines if "`tb-all`" in line)
    # 1 trial x 3 results x 12 metrics; 1 x 3 x 2 calls x 3 in-trial metrics, read back from each tracker
    assert "wandb 36/36, mlflow 36/36, tb 36/36" in row and "wandb 18/18, mlflow 18/18, tb 18/18" in row, row
    assert row.rstrip(" |").endswith("ok"), row
    [run] = [r for r in json.loads((tmp_path / "in-trial-1x3x2.json").read_text())["runs"] if r["in_trial_call"]]
    assert run["call_us_median"] > 0 and run["call_us_p99"] >= run["call_us_median"]
