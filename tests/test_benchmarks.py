"""The benchmark harness still runs and still verifies what the trackers stored (a tiny smoke run).

Performance itself is shown by ``python -m benchmarks.compare`` (docs/performance.md), never asserted here.
"""

from __future__ import annotations

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
