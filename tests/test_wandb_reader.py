"""``trackbridge_wandb_reader`` on offline runs written by wandb itself (no TrackBridge involved), on damaged
files, and as a command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trackbridge_wandb_reader import CorruptLog, iter_records, read_run, read_runs, run_files, runs_by_id

HEADER_LEN = 7  # the file header and every chunk header are 7 bytes


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """Two offline runs written by the W&B SDK alone: one that succeeds, one that ends with exit code 1."""
    wandb = pytest.importorskip("wandb")
    root = tmp_path_factory.mktemp("wandb_reader")
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in (("WANDB_DATA_DIR", "data"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config")):
            mp.setenv(var, str(home / sub))
        mp.delenv("WANDB_API_KEY", raising=False)
        mp.setenv("WANDB_SILENT", "true")
        settings = wandb.Settings(console="off", x_disable_stats=True, quiet=True)
        run = wandb.init(
            mode="offline",
            dir=str(root / "out"),
            project="reader",
            id="ok-run",
            name="ok",
            group="g",
            tags=["t1"],
            config={"lr": 0.1, "model": {"width": 8}},
            settings=settings,
        )
        run.log({"loss": 1.0, "note": "first"})
        run.log({"loss": 0.5})
        run.log({"loss": 0.25, "note": "last"}, step=5)
        run.finish()
        failed = wandb.init(
            mode="offline",
            dir=str(root / "out"),
            project="reader",
            id="bad-run",
            settings=settings,
            reinit="create_new",
        )
        failed.log({"loss": 9.0})
        failed.finish(exit_code=1)
    return root / "out"


def test_reads_back_what_wandb_wrote(written):
    runs = runs_by_id(str(written))
    assert set(runs) == {"ok-run", "bad-run"}
    [ok] = runs["ok-run"]
    assert (ok.name, ok.group, ok.project, ok.tags) == ("ok", "g", "reader", ["t1"])
    assert ok.config == {"lr": 0.1, "model": {"width": 8}}
    assert [row["_step"] for row in ok.history] == [0, 1, 5]
    assert [row["loss"] for row in ok.history] == [1.0, 0.5, 0.25]
    assert [row.get("note") for row in ok.history] == ["first", None, "last"]
    assert ok.summary["loss"] == 0.25 and ok.summary["note"] == "last"
    assert ok.exit_code == 0 and ok.artifacts == []
    assert Path(ok.run_dir).name.startswith("offline-run-") and Path(ok.path).name == "run-ok-run.wandb"
    [bad] = runs["bad-run"]
    assert [row["loss"] for row in bad.history] == [9.0] and bad.exit_code == 1
    # the latest-run symlink does not count a run twice
    assert len(run_files(str(written))) == 2 and len(read_runs(str(written))) == 2


@pytest.mark.parametrize("where", ["file header", "first record"])
def test_a_flipped_byte_raises_corrupt_log(written, tmp_path, where):
    [source] = [p for p in run_files(str(written)) if p.endswith("run-ok-run.wandb")]
    damaged = tmp_path / "run-damaged.wandb"
    shutil.copyfile(source, damaged)
    data = bytearray(damaged.read_bytes())
    position = 1 if where == "file header" else HEADER_LEN + HEADER_LEN + 2  # inside the first chunk's data
    data[position] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(CorruptLog):
        list(iter_records(str(damaged)))
    with pytest.raises(CorruptLog):
        read_run(str(damaged), wait=False)
    assert read_run(source, wait=False).exit_code == 0  # the original still reads


def test_command_line_prints_one_line_per_run(written, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-m", "trackbridge_wandb_reader", str(written)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    [ok] = [line for line in lines if line.startswith("ok-run ")]
    assert "name='ok' group='g' rows=3 artifacts=0 exit_code=0" in ok and ok.endswith("run-ok-run.wandb")
    [bad] = [line for line in lines if line.startswith("bad-run ")]
    assert "rows=1" in bad and "exit_code=1" in bad
    empty = subprocess.run(
        [sys.executable, "-m", "trackbridge_wandb_reader", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert empty.returncode == 1 and "no run-*.wandb files" in empty.stdout
