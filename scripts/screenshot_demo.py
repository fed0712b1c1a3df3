"""Take the README's screenshot: ``trackbridge demo``'s own results in the MLflow UI.

    pip install -e ".[screenshots]"              # Playwright (its Python package only)
    apt-get install chromium                     # the browser it drives: Debian's, no download
    python scripts/screenshot_demo.py            # runs the demo into a temporary directory, then shoots
    python scripts/screenshot_demo.py --dir trackbridge-demo --out docs/images

Runs ``trackbridge demo --plugins mlflow,tensorboard`` (unless ``--dir`` already holds a demo's
``mlflow.db``), serves its SQLite store with ``mlflow ui`` on 127.0.0.1, and captures the experiment's
"Model training" runs page in chart view with headless Chromium, driven by Playwright: MLflow 3's UI opens an
experiment on its GenAI overview and opens an assistant panel on a first visit, so the script selects the
view by URL (``workflowType=machine_learning``, ``compareRunsMode=CHART``) and closes the panel. Needs no
network and no account. The PNG carries text chunks saying what made it (the script, MLflow's version, the
demo's command).
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

DEMO_PLUGINS = "mlflow,tensorboard"
VIEWPORT = {"width": 1600, "height": 1180}
#: How long the UI may take to fetch the runs and draw the charts, in milliseconds.
DRAW_WAIT_MS = 8000


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


def _run_demo(demo_dir: Path) -> list[str]:
    command = ["trackbridge", "demo", "--plugins", DEMO_PLUGINS, "--dir", str(demo_dir)]
    subprocess.run([sys.executable, "-m", "trackbridge.cli", *command[1:]], check=True)
    return command


def _shoot(chromium: str, page_url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.goto(page_url)
            page.get_by_text("eval/loss", exact=True).first.wait_for(timeout=60_000)  # the first chart
            close_assistant = page.get_by_label("Close", exact=True)
            if close_assistant.count():
                close_assistant.first.click()
            page.wait_for_timeout(DRAW_WAIT_MS)
            page.screenshot(path=str(out))
        finally:
            browser.close()


def _label(out: Path, text: dict[str, str]) -> None:
    """Write what made the picture into the PNG's text chunks (``identify -verbose`` or Pillow show them)."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    with Image.open(out) as image:
        image.load()
        image.save(out, pnginfo=info, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", help="a demo directory (default: run the demo into a temporary one)")
    parser.add_argument("--out", default="docs/images", help="where the PNG goes")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs Chromium: apt-get install chromium", file=sys.stderr)
        return 1
    try:
        import playwright  # noqa: F401
    except ImportError:
        print('needs Playwright: pip install -e ".[screenshots]"', file=sys.stderr)
        return 1
    demo_dir = Path(args.dir or tempfile.mkdtemp(prefix="trackbridge-demo-")).resolve()
    demo_command = ["(an existing demo directory)"]
    if not (demo_dir / "mlflow.db").exists():
        demo_command = _run_demo(demo_dir)
    import mlflow
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
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / "demo-mlflow-charts.png"
        page = (
            f"{base}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning&compareRunsMode=CHART"
        )
        _shoot(chromium, page, out)
    finally:
        server.terminate()
        server.wait(timeout=30)
    _label(
        out,
        {
            "Software": "scripts/screenshot_demo.py (TrackBridge)",
            "Description": f"MLflow {mlflow.__version__} UI, runs of: {' '.join(demo_command)}",
        },
    )
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
