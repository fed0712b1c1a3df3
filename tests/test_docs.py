"""The documentation cannot drift from the hook specification."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from trackbridge import hookspecs

ROOT = Path(__file__).resolve().parents[1]


def test_every_hook_has_a_docstring_and_pinned_parameters():
    expected = {
        "trackbridge_setup": [],
        "trackbridge_experiment_start": ["experiment"],
        "trackbridge_trial_start": ["trial", "resumed", "last_step"],
        "trackbridge_trial_config_update": ["trial", "step", "changes"],
        "trackbridge_trial_result": ["trial", "step", "metrics", "timestamp"],
        "trackbridge_trial_checkpoint": ["trial", "checkpoint"],
        "trackbridge_trial_log": ["trial", "step", "values", "files", "timestamp"],
        "trackbridge_trial_complete": ["trial", "status", "error"],
        "trackbridge_flush": [],
        "trackbridge_experiment_end": ["experiment"],
    }
    assert set(hookspecs.ALL_HOOKS) == set(expected)
    for name, params in expected.items():
        fn = getattr(hookspecs, name)
        assert list(inspect.signature(fn).parameters) == params, name
        assert len(inspect.getdoc(fn) or "") > 80, f"{name} needs a real docstring"


def test_hook_reference_is_generated_from_the_spec():
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_hooks.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_names_every_builtin_plugin_and_both_setup_commands():
    readme = (ROOT / "README.md").read_text()
    for name in ("wandb", "mlflow", "tensorboard"):
        assert f'"{name}"' in readme or f"`{name}`" in readme
    assert "trackbridge demo" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    test_line = next(line for line in readme.splitlines() if "pytest" in line and "pip install" in line)
    assert test_line.strip().strip("`") in ci
