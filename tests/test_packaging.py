"""A plain wheel (not only ``pip install -e .``) carries every package and the entry points."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_core_plugins_and_entry_points(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    [wheel] = tmp_path.glob("trackbridge-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        [ep_name] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(ep_name).decode()
        [meta_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = zf.read(meta_name).decode()
    for module in (
        "trackbridge/__init__.py",
        "trackbridge/hookspecs.py",
        "trackbridge/testing/__init__.py",
        "trackbridge_wandb/__init__.py",
        "trackbridge_mlflow/__init__.py",
        "trackbridge_tensorboard/__init__.py",
        "trackbridge_aim/__init__.py",
        "trackbridge_comet/__init__.py",
    ):
        assert module in names, module
    assert "[trackbridge]" in entry_points
    for line in (
        "wandb = trackbridge_wandb:WandbPlugin",
        "mlflow = trackbridge_mlflow:MlflowPlugin",
        "tensorboard = trackbridge_tensorboard:TensorBoardPlugin",
        "aim = trackbridge_aim:AimPlugin",
        "comet = trackbridge_comet:CometPlugin",
        "trackbridge = trackbridge.cli:main",
    ):
        assert line in entry_points, line
    for extra in ("wandb", "mlflow", "tensorboard", "aim", "comet", "all", "dev"):
        assert f"Provides-Extra: {extra}" in metadata
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
