"""Take the README's screenshots: ``trackbridge demo``'s own results in the MLflow UI.

    python scripts/screenshot_demo.py            # runs the demo into a temporary directory, then shoots
    python scripts/screenshot_demo.py --dir trackbridge-demo --out docs/images

Runs ``trackbridge demo --plugins mlflow,tensorboard`` (unless ``--dir`` already holds a demo's
``mlflow.db``), serves its SQLite store with ``mlflow ui`` on 127.0.0.1, and captures two pages with
headless Chromium (Debian's ``chromium`` package: ``apt-get install chromium``): the experiment's runs table
and its chart view. Needs no network and no account.

Not yet right with MLflow 3.17 (tried 2026-11-28): its UI opens an experiment on the GenAI "Overview" page,
with first-visit pop-ups and the assistant panel, so the captured page shows no runs. Capturing the runs
table needs the UI's "Model training" view, which a plain ``--screenshot`` URL does not select: a driven
browser (Playwright with Debian's Chromium) that clicks it and closes the pop-ups is the next step. The
README shows no screenshot until then.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1600,900",
    "--virtual-time-budget=20000",  # let the UI's JavaScript fetch and draw before the shot
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout}s")
        time.sleep(0.5)


def _shoot(chromium: str, url: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}", url],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB) from {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", help="a demo directory (default: run the demo into a temporary one)")
    parser.add_argument("--out", default="docs/images", help="where the PNG files go")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs Chromium: apt-get install chromium", file=sys.stderr)
        return 1
    demo_dir = Path(args.dir or tempfile.mkdtemp(prefix="trackbridge-demo-")).resolve()
    if not (demo_dir / "mlflow.db").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "trackbridge.cli",
                "demo",
                "--plugins",
                "mlflow,tensorboard",
                "--dir",
                str(demo_dir),
            ],
            check=True,
        )
    from mlflow import MlflowClient

    store = f"sqlite:///{demo_dir / 'mlflow.db'}"
    experiment = MlflowClient(tracking_uri=store).get_experiment_by_name("demo")
    if experiment is None:
        print(f"no MLflow experiment 'demo' in {store}", file=sys.stderr)
        return 1
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/health", timeout=120)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        page = f"{base}/#/experiments/{experiment.experiment_id}"
        _shoot(chromium, page, out / "demo-mlflow-runs.png")
        _shoot(chromium, f"{page}?compareRunsMode=CHART", out / "demo-mlflow-charts.png")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
