"""docs/plugin-authors.md, followed literally: its ``# file:`` blocks become a distribution in a temporary
folder, and its ``# steps`` block runs there, in a new virtual environment: install, the conformance kit
with one real Tune run, ``trackbridge plugins --json``, ``trackbridge check``.

One thing differs from a user's machine, and only to save minutes: TrackBridge is not on a package index
here, so before the steps the new environment gets TrackBridge built from this repository (``pip install
--no-deps``) and sees this test environment's installed packages (Ray, pluggy, pytest, ...) through a
``.pth`` file (outside pip's isolated builds), instead of downloading them again. Everything the guide's own commands install (the guide's
distribution, its build backend) is installed into the new environment by those commands.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "plugin-authors.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in FENCE.findall(GUIDE.read_text())]


def _files() -> dict[str, str]:
    files = {}
    for _, body in _blocks():
        first, _, rest = body.partition("\n")
        if first.startswith("# file: "):
            files[first.removeprefix("# file: ").strip()] = body  # the header line is kept: it is a comment
    return files


def _steps() -> list[str]:
    [steps] = [body for lang, body in _blocks() if lang == "bash" and body.startswith("# steps\n")]
    return [line for line in steps.splitlines()[1:] if line.strip()]


def test_the_guide_has_a_complete_distribution_and_steps():
    files = _files()
    assert set(files) == {
        "pyproject.toml",
        "trackbridge_jsonl/__init__.py",
        "tests/conftest.py",
        "tests/test_conformance.py",
        "tests/test_options.py",
    }
    assert _steps()[0] == "python -m venv .venv"


@pytest.mark.slow
def test_following_the_guide_literally_gives_a_plugin_that_passes_the_kit_and_a_real_tune_run(tmp_path):
    dist = tmp_path / "trackbridge-jsonl"
    for name, text in _files().items():
        (dist / name).parent.mkdir(parents=True, exist_ok=True)
        (dist / name).write_text(text)
    steps = _steps()
    # "python -m venv .venv", then this environment's packages made visible to it (see the module docstring)
    subprocess.run([sys.executable, "-m", "venv", str(dist / ".venv")], check=True)
    venv_python = dist / ".venv" / "bin" / "python"
    venv_site = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    here_site = sysconfig.get_path("purelib")
    # not inside pip's isolated builds (PIP_BUILD_TRACKER is set there): they must see only their own backend
    Path(venv_site, "test_environment.pth").write_text(
        f"import os, site; 'PIP_BUILD_TRACKER' in os.environ or site.addsitedir({here_site!r})\n"
    )
    subprocess.run(
        [str(venv_python), "-m", "pip", "install", "-q", "--no-deps", str(REPO)],
        check=True,
        cwd=tmp_path,
    )
    script = "set -e\n" + "\n".join(steps[1:]) + "\n"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(REPO)))
    run = subprocess.run(["bash", "-c", script], cwd=dist, env=env, capture_output=True, text=True, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert re.search(r"^11 passed", output, re.MULTILINE) or "11 passed" in output, output[-4000:]
    rows = json.loads(output[output.index("[\n") : output.index("\n]") + 2])
    [jsonl] = [r for r in rows if r["name"] == "jsonl"]
    assert jsonl["distribution"] == "trackbridge-jsonl" and jsonl["status"] == "ok"
    assert "trackbridge_flush" in jsonl["hooks"] and "trackbridge_trial_complete" in jsonl["hooks"]
    assert re.search(r"^ok\s+resumed_in_a_new_interpreter", output, re.MULTILINE), output[-3000:]
    # the plugin came from the new environment, not from this one
    assert "trackbridge_jsonl" not in sys.modules
