"""Continue a scenario in a new Python interpreter, as ``Tuner.restore`` does after the driver died: the
plugin is unpickled there from the bytes pickled before the run, and the rest of the script is played into it.

The parent runs ``python -m trackbridge.testing.new_interpreter <payload>`` with its own ``sys.path``, so a
plugin class importable in the author's test session is importable in the child too.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

from trackbridge.testing.script import LifecycleScript, Played

#: Seconds the child may take beyond the scenario's timeout (starting Python, importing the tracker SDK).
_START_GRACE = 120.0


def continue_in_new_interpreter(
    pickled_plugin: bytes, script: LifecycleScript, directory: Path, timeout: float
) -> list[str]:
    """Play ``script`` into ``pickle.loads(pickled_plugin)`` in a new interpreter; the problems found."""
    payload = directory / "new_interpreter_payload.pkl"
    outcome = directory / "new_interpreter_outcome.json"
    payload.write_bytes(
        pickle.dumps(
            {"plugin": pickled_plugin, "experiment": script.experiment, "calls": script.calls, "timeout": timeout}
        )
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    command = [sys.executable, "-m", "trackbridge.testing.new_interpreter", str(payload), str(outcome)]
    try:
        child = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout + _START_GRACE)
    except subprocess.TimeoutExpired:
        return [f"the new interpreter did not finish within {timeout + _START_GRACE:g}s (a hook that never returns?)"]
    if child.returncode != 0 or not outcome.exists():
        tail = "\n".join((child.stderr or child.stdout).strip().splitlines()[-12:])
        return [f"the new interpreter failed (exit code {child.returncode}):\n{tail}"]
    found = json.loads(outcome.read_text())
    problems: list[str] = list(found["errors"])
    if found["unfinished"]:
        problems.append(found["unfinished"])
    elif found["dropped"]:
        problems.append(f"{found['dropped']} events were never delivered in the new interpreter")
    if found["pid"] == os.getpid():  # pragma: no cover - a guard on the kit itself
        problems.append("the kit did not start a new interpreter")
    return [f"in the new interpreter: {p}" for p in problems]


def _main(payload_path: str, outcome_path: str) -> int:
    payload = pickle.loads(Path(payload_path).read_bytes())
    plugin = pickle.loads(payload["plugin"])  # what Tuner.restore does with tuner.pkl
    script = LifecycleScript(payload["experiment"])
    script.calls.extend(payload["calls"])
    played: Played = script.run(plugin, timeout=payload["timeout"])
    outcome = {
        "pid": os.getpid(),
        "errors": played.errors,
        "unfinished": played.unfinished,
        "dropped": played.stats.dropped,
    }
    Path(outcome_path).write_text(json.dumps(outcome))
    if played.unfinished:
        # A plugin thread still blocked in a hook must not keep the interpreter alive (the parent reports it);
        # a plugin that finished gets a normal exit, with its SDK's exit handlers.
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:3]))
