"""Trackio reads its storage folder (TRACKIO_DIR) once per process, when imported: the whole test session
(and the kit's new interpreters, which inherit the environment) writes into one temporary folder, and each
test uses projects of its own."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="trackbridge-trackio-tests-"))
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

pytest_plugins = ["trackbridge.testing.pytest_plugin"]
