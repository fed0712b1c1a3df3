"""The versions we claim are the versions we test: install the lowest version every requirement in
``pyproject.toml`` allows, then run one real Tune experiment into every tracker and read it back.

    python scripts/check_lowest_versions.py                 # a new virtual environment under .venv-lowest
    python scripts/check_lowest_versions.py --venv /tmp/low --extras wandb,mlflow,tensorboard,aim,comet

Each ``name>=X`` (in ``dependencies`` and in the chosen extras) is installed as ``name==X`` (a floor given as
``2.40`` is ``2.40.0``), everything else at what pip resolves beside those pins; TrackBridge itself without
its declared dependencies (``--no-deps``). Then ``trackbridge demo`` runs in that environment: a Tune run with
ASHA, checkpoints and a failing trial into each tracker, and its exit code says whether every tracker holds,
read back with its own reader, one run per trial, every metric point and every status Tune reported. Exit
code: the demo's (0: the floors work).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The trackers checked by default: those whose SDK floors the README states.
DEFAULT_EXTRAS = ("wandb", "mlflow", "tensorboard")
_FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*>=\s*([0-9][^,;\s]*)")


def lowest_pins(extras: tuple[str, ...]) -> list[str]:
    """``name==floor`` for the core requirements and each extra's (extras that name other extras are skipped)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += [r for r in project["optional-dependencies"][extra] if not r.startswith("trackbridge")]
    pins = []
    for requirement in requirements:
        found = _FLOOR.match(requirement)
        if not found:
            raise SystemExit(f"{requirement!r}: no '>=' floor to test")
        name, floor = found.groups()
        pins.append(f"{name}=={floor}")
    return pins


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", default=str(ROOT / ".venv-lowest"), help="where the environment is created")
    parser.add_argument("--extras", default=",".join(DEFAULT_EXTRAS), help="the trackers whose floors are tested")
    args = parser.parse_args()
    extras = tuple(e for e in args.extras.split(",") if e)
    pins = lowest_pins(extras)
    print("lowest allowed versions:", " ".join(pins), flush=True)
    venv = Path(args.venv)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *pins], check=True)
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    versions = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True, text=True
    ).stdout
    wanted = {re.split(r"[\[=]", p)[0].lower().replace("_", "-") for p in pins}
    print(
        "installed:", " ".join(line for line in versions.split() if line.split("==")[0].lower() in wanted), flush=True
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory(prefix="trackbridge-lowest-") as directory:
        demo = [python, "-m", "trackbridge.cli", "demo", "--plugins", ",".join(extras), "--trials", "3"]
        done = subprocess.run([*demo, "--results", "8", "--dir", directory], env=env, cwd=directory)
    print(f"lowest versions: {'PASS' if done.returncode == 0 else 'FAIL'} ({' '.join(pins)})")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
