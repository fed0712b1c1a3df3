"""Shared fixtures: one Ray session for the whole suite, offline trackers, a fresh directory per test."""

from __future__ import annotations

import os

# Set before Ray, wandb or mlflow are imported anywhere in the test process.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_RESULT_BUFFER_LENGTH", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.pop("WANDB_API_KEY", None)
# Ray's worker processes import trainables defined in test modules by module name: let them find the tests.
_TESTS = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_TESTS, os.path.dirname(_TESTS)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
os.environ.pop("MLFLOW_TRACKING_URI", None)

import pytest  # noqa: E402

# The `mlflow_server` fixture: a real `mlflow server` on 127.0.0.1, started once per session when asked for.
# and `s3_server` (moto S3 on 127.0.0.1), `aim_server` (a real `aim server` on 127.0.0.1, started at collection).
pytest_plugins = ["tests.mlflow_server", "tests.s3_server", "tests.aim_server"]


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance (2 CPUs) shared by every test that runs Tune."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def ray_cpus_given_back(request):
    """After each test, wait (up to 20 s) until the shared Ray session has all its CPUs free again, and warn,
    naming the test, when it has not: a CPU still held makes a later two-trial test wait forever."""
    yield
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    import time
    import warnings

    deadline = time.monotonic() + 20
    while True:
        total, free = ray.cluster_resources().get("CPU", 0), ray.available_resources().get("CPU", 0)
        if free >= total or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if free < total:
        groups = {k: v.get("state") for k, v in ray.util.placement_group_table().items() if v.get("state") != "REMOVED"}
        warnings.warn(
            f"{request.node.nodeid} left {total - free} of {total} CPUs of the Ray session held; "
            f"placement groups not removed: {groups}",
            stacklevel=1,
        )


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh directory, also the current directory, for one test's stores and Tune storage."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
