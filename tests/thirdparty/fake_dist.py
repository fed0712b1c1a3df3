"""Make a throw-away 'installed distribution' that registers a plugin through the `trackbridge` entry point.

This is exactly what a third party's wheel puts into site-packages: a module and a ``*.dist-info`` folder whose
``entry_points.txt`` names the plugin. Putting the folder on ``sys.path`` (or PYTHONPATH) installs it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

RECORDER_MODULE = '''
"""A third-party plugin that records every hook it receives, with its options."""
from trackbridge.testing import RecordingPlugin


class EntryPointRecorder(RecordingPlugin):
    def __init__(self, label="default", sleep=0.0):
        super().__init__(name="recorder", sleep=sleep)
        if not isinstance(label, str):
            raise TypeError("label must be a string")
        self.label = label
'''

HOOK_MODULE = '''
"""A plugin shipped as a module of hook functions."""
from trackbridge import hookimpl

SEEN = []


@hookimpl
def trackbridge_trial_result(trial, step):
    SEEN.append((trial.trial_id, step))
'''

NEEDS_SDK_MODULE = """
from trackbridge import hookimpl


class NeedsMissingSdk:
    requires = ("surely_not_an_installed_sdk_xyz",)
    install_hint = 'pip install "acme-tracker[sdk]"'

    @hookimpl
    def trackbridge_flush(self):
        pass
"""


def make_distribution(root: Path, name: str = "acme_trackbridge_recorder", version: str = "1.2.3") -> Path:
    """Write the module and its dist-info under ``root``; return ``root`` (to put on sys.path)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "acme_recorder.py").write_text(RECORDER_MODULE)
    (root / "acme_hooks.py").write_text(HOOK_MODULE)
    (root / "acme_needs_sdk.py").write_text(NEEDS_SDK_MODULE)
    info = root / f"{name}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        textwrap.dedent(
            f"""\
            Metadata-Version: 2.1
            Name: {name}
            Version: {version}
            """
        )
    )
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [trackbridge]
            recorder = acme_recorder:EntryPointRecorder
            acme_hooks = acme_hooks
            needs_sdk = acme_needs_sdk:NeedsMissingSdk
            """
        )
    )
    (info / "RECORD").write_text("")
    return root
