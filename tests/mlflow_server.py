"""A real ``mlflow server`` for tests: started once per session on 127.0.0.1, torn down at the end.

Import the fixture into a test module (``from tests.mlflow_server import mlflow_server``) or a conftest.
The server gets its own SQLite backend store and artifact directory under a session temp directory, so
tests read back exactly what went over the REST API, not a shared local file.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: How long the server may take to answer /health (the first start creates the database schema).
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class MlflowServer:
    """What a test needs to talk to the server and inspect what it stored."""

    url: str
    backend_store_uri: str
    artifacts_dir: Path
    log_path: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mlflow_executable() -> list[str]:
    exe = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or shutil.which("mlflow")
    if exe:
        return [exe]
    return [sys.executable, "-m", "mlflow"]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(root: Path, port: int | None = None) -> tuple[subprocess.Popen, MlflowServer]:
    """Start ``mlflow server`` with its stores under ``root`` (on ``port``, else a free one); return once
    /health answers. Starting again with the same root and port brings the same server back."""
    root.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    backend = f"sqlite:///{root / 'server.db'}"
    artifacts = root / "artifacts"
    artifacts.mkdir(exist_ok=True)
    log_path = root / f"server-{int(time.time() * 1000)}.log"
    url = f"http://127.0.0.1:{port}"
    cmd = _mlflow_executable() + [
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",  # 2 shared CPUs: one worker is plenty for tests
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(artifacts),
    ]
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=str(root), start_new_session=True
    )
    log_file.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        if _healthy(url):
            return proc, MlflowServer(url, backend, artifacts, log_path)
        time.sleep(0.25)
    stop_server(proc)
    raise RuntimeError(
        f"mlflow server did not answer /health within {START_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}"
    )


def stop_server(proc: subprocess.Popen) -> None:
    """Terminate the server and its worker processes (its own process group), politely first."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A running ``mlflow server`` (session-scoped: started once)."""
    proc, server = start_server(tmp_path_factory.mktemp("mlflow_server"))
    try:
        yield server
    finally:
        stop_server(proc)
