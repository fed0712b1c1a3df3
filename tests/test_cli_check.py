"""``trackbridge plugins`` with broken entry points, and ``trackbridge check NAME``, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

BROKEN_IMPORT = "import acme_sdk_internal_that_does_not_exist\n"
BROKEN_SYNTAX = "def trackbridge_flush(:\n"
NAN_HATER = '''
import math
from trackbridge import hookimpl


class NanHater:
    """Raises on NaN, as a tracker SDK that validates values would."""

    @hookimpl
    def trackbridge_trial_result(self, metrics):
        for key, value in metrics.items():
            if isinstance(value, float) and math.isnan(value):
                raise ValueError(f"metric {key!r} is NaN, refused")
'''
CHATTY = """
from trackbridge import hookimpl


class Chatty:
    \"\"\"Prints from its hooks, as some tracker SDKs do.\"\"\"

    @hookimpl
    def trackbridge_trial_result(self, metrics):
        print("chatty: got", sorted(metrics))
"""
NEEDS_SDK = """
from trackbridge import hookimpl


class NeedsSdk:
    requires = ("acme_sdk_not_installed_xyz",)
    install_hint = 'pip install "acme-tracker[sdk]"'

    @hookimpl
    def trackbridge_flush(self):
        pass
"""
READER = """
from mlflow import MlflowClient
from trackbridge.testing import StoredRuns

STATUS = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "unfinished"}


def read_back(directory):
    client = MlflowClient(tracking_uri=f"sqlite:///{directory}/mlflow.db")
    stored = StoredRuns()
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            tid = run.data.tags["trial_id"]
            stored.runs_per_trial[tid] = stored.runs_per_trial.get(tid, 0) + 1
            history = sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: (m.timestamp, m.step))
            stored.steps[tid] = [m.step for m in history]
            stored.statuses[tid] = STATUS.get(run.info.status, run.info.status)
    return stored
"""


ROW_KEYS = ("name", "value", "distribution", "version", "hooks", "sdk", "state", "error", "status")


def _site(root: Path) -> Path:
    """A folder that, on PYTHONPATH, is an installed distribution with four plugins: two broken, one that fails
    the kit, one that prints."""
    root.mkdir(parents=True)
    (root / "acme_broken_import.py").write_text(BROKEN_IMPORT)
    (root / "acme_broken_syntax.py").write_text(BROKEN_SYNTAX)
    (root / "acme_nan_hater.py").write_text(textwrap.dedent(NAN_HATER))
    (root / "acme_chatty.py").write_text(CHATTY)
    (root / "acme_needs_sdk.py").write_text(NEEDS_SDK)
    (root / "acme_mlflow_reader.py").write_text(READER)
    info = root / "acme_broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme_broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[trackbridge]\n"
        "broken_import = acme_broken_import:Plugin\n"
        "broken_syntax = acme_broken_syntax:Plugin\n"
        "nan_hater = acme_nan_hater:NanHater\n"
        "chatty = acme_chatty:Chatty\n"
        "needs_sdk = acme_needs_sdk:NeedsSdk\n"
    )
    return root


def _run(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "trackbridge.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_a_broken_entry_point_is_listed_as_broken_and_never_hides_or_breaks_the_others(tmp_path):
    site = _site(tmp_path / "site")
    out = _run(site, "plugins", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["broken_import"]["state"] == "broken"
    assert (
        rows["broken_import"]["error"] == "ModuleNotFoundError: No module named 'acme_sdk_internal_that_does_not_exist'"
    )
    assert rows["broken_syntax"]["state"] == "broken" and rows["broken_syntax"]["error"].startswith("SyntaxError")
    assert rows["broken_import"]["distribution"] == "acme_broken" and rows["broken_import"]["hooks"] == []
    for name in ("wandb", "mlflow", "tensorboard", "aim", "comet", "nan_hater"):
        assert rows[name]["state"] == "ok" and rows[name]["error"] is None and rows[name]["hooks"], rows[name]
    assert rows["mlflow"]["status"] == "ok" and rows["broken_import"]["status"].startswith("cannot load: ")
    needs = rows["needs_sdk"]
    assert (needs["state"], needs["error"], needs["sdk"]) == (
        "missing-sdk",
        'pip install "acme-tracker[sdk]"',
        "acme_sdk_not_installed_xyz",
    )
    assert all(set(r) == set(ROW_KEYS) for r in rows.values())

    text = _run(site, "plugins").stdout
    assert "broken_import  (acme_broken 0.1; acme_broken_import:Plugin)  BROKEN: ModuleNotFoundError" in text
    assert "tracker SDK: mlflow: importable" in text

    resolution = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trackbridge.loading import resolve\n"
            "from trackbridge.discovery import usable_plugin_names\n"
            "print([p.name for p in resolve(['mlflow'])], usable_plugin_names())\n"
            "try:\n    resolve(['broken_import'])\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(site)),
        timeout=120,
    )
    lines = resolution.stdout.splitlines()
    assert lines[0].startswith("['mlflow'] [") and "broken_import" not in lines[0] and "'nan_hater'" in lines[0]
    assert lines[1] == (
        "MissingTrackerError trackbridge: plugin 'broken_import' (acme_broken_import:Plugin) could not be imported: "
        "No module named 'acme_sdk_internal_that_does_not_exist'"
    )


def test_check_runs_the_kit_on_an_installed_plugin_with_and_without_a_reader(tmp_path):
    site = _site(tmp_path / "site")
    out = _run(site, "check", "mlflow", "--scenario", "odd_values", "--scenario", "lifecycle")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == (
        "trackbridge check mlflow: 2 scenarios, checking only that no hook failed (no --reader)\n"
        "ok   lifecycle\nok   odd_values\n2 passed, 0 failed\n"
    )

    read = _run(
        site,
        "check",
        "mlflow",
        "--scenario",
        "lifecycle",
        "--scenario",
        "odd_values",
        "--reader",
        "acme_mlflow_reader:read_back",
    )
    assert read.returncode == 0, read.stdout + read.stderr
    assert "checking what the tracker stored (--reader)" in read.stdout and "2 passed, 0 failed" in read.stdout

    kept = tmp_path / "kept"
    as_json = _run(
        site,
        "check",
        "mlflow",
        "--scenario",
        "lifecycle",
        "--reader",
        "acme_mlflow_reader:read_back",
        "--json",
        "--dir",
        str(kept),
    )
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    assert json.loads(as_json.stdout) == {
        "plugin": "mlflow",
        "reader": "acme_mlflow_reader:read_back",
        "directory": str(kept),
        "ok": True,
        "scenarios": [{"scenario": "lifecycle", "ok": True, "problems": []}],
    }
    assert (kept / "lifecycle" / "mlflow.db").is_file()


def test_check_json_stays_parseable_when_the_plugin_prints(tmp_path):
    site = _site(tmp_path / "site")
    out = _run(site, "check", "chatty", "--scenario", "lifecycle", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["ok"] and json.loads(out.stdout)["directory"] is None
    assert "chatty: got ['loss'" in out.stderr


def test_check_fails_a_plugin_that_raises_on_nan_naming_the_hook_and_the_error(tmp_path):
    site = _site(tmp_path / "site")
    out = _run(site, "check", "nan_hater", "--scenario", "odd_values", "--scenario", "lifecycle")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ok   lifecycle" in out.stdout and "FAIL odd_values" in out.stdout
    assert "- trackbridge_trial_result raised ValueError: metric 'nan' is NaN, refused (trial o; step 1;" in out.stdout
    assert "1 passed, 1 failed: odd_values" in out.stdout


def test_check_usage_errors_exit_2_with_a_clear_message(tmp_path):
    site = _site(tmp_path / "site")
    unknown = _run(site, "check", "nope")
    assert unknown.returncode == 2 and "unknown plugin 'nope'; installed plugins: " in unknown.stderr
    assert "mlflow" in unknown.stderr and "Traceback" not in unknown.stderr
    scenario = _run(site, "check", "mlflow", "--scenario", "everything")
    assert (
        scenario.returncode == 2 and "unknown scenario(s) everything; the scenarios are: lifecycle" in scenario.stderr
    )
    broken = _run(site, "check", "broken_import")
    assert broken.returncode == 2 and "could not be imported" in broken.stderr and "Traceback" not in broken.stderr
    option = _run(site, "check", "mlflow", "--option", "trackng_uri=x")
    assert option.returncode == 2 and "unknown option 'trackng_uri' for plugin 'mlflow'" in option.stderr
    reader = _run(site, "check", "mlflow", "--reader", "acme_broken_syntax:read_back")
    assert (
        reader.returncode == 2
        and "--reader 'acme_broken_syntax:read_back': importing acme_broken_syntax failed: SyntaxError" in reader.stderr
    )
    assert "Traceback" not in reader.stderr
    missing = _run(site, "check", "needs_sdk")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "needs acme_sdk_not_installed_xyz, which is not installed; install it with: pip install" in missing.stderr
    timeout = _run(site, "check", "mlflow", "--timeout", "0")
    assert timeout.returncode == 2 and "'0' is not a positive number of seconds" in timeout.stderr
