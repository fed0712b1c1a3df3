"""A real ``aim server`` for tests, serving its own repo on 127.0.0.1.

It takes ~15 s to answer on this machine, so it is started as soon as collection shows a test that asks for the
``aim_server`` fixture, and runs beside the tests before it; the fixture only waits for it to answer. Stopped at
the end of the session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class AimServer:
    #: ``aim://127.0.0.1:<port>``
    address: str
    #: The directory of the repo it serves (``aim storage --repo <it> reindex`` before reading it).
    repo: Path


def aim_command() -> str:
    """The ``aim`` console script installed next to this Python."""
    return shutil.which("aim", path=os.path.dirname(sys.executable)) or "aim"


class _Started:
    process: subprocess.Popen | None = None
    server: AimServer | None = None
    root: str | None = None


def _start() -> None:
    if _Started.process is not None:
        return
    root = tempfile.mkdtemp(prefix="trackbridge-aim-server-")
    repo = Path(root) / "served"
    repo.mkdir()
    subprocess.run([aim_command(), "init", "--repo", str(repo)], check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _Started.process = subprocess.Popen(
        [aim_command(), "server", "--repo", str(repo), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # `aim server` runs uvicorn as a child: stopped with its whole process group
    )
    _Started.server = AimServer(f"aim://127.0.0.1:{port}", repo)
    _Started.root = root


def pytest_collection_finish(session: pytest.Session) -> None:
    if any("aim_server" in getattr(item, "fixturenames", ()) for item in session.items):
        _start()


def _wait_until_it_answers(server: AimServer, process: subprocess.Popen) -> None:
    from aim import Run

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:  # the port opens before the server answers: ready when a client's run goes through
        try:
            Run(repo=server.address, system_tracking_interval=None, capture_terminal_logs=False).close()
            return
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.5)


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def aim_server() -> Iterator[AimServer]:
    _start()
    assert _Started.process is not None and _Started.server is not None
    try:
        _wait_until_it_answers(_Started.server, _Started.process)
        yield _Started.server
    finally:
        _stop(_Started.process)
        shutil.rmtree(_Started.root or "", ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop a server started at collection that no test used (e.g. the test was skipped)."""
    if _Started.process is not None and _Started.process.poll() is None:
        _stop(_Started.process)
