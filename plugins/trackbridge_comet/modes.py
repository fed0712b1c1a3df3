"""Online or offline: when the plugin decides, what that means for the delivery journal, and how the decision
survives ``Tuner.restore``.

- **When**: ``early_mode`` decides from the options and ``$COMET_API_KEY`` alone (no I/O), when the plugin is
  built and again when it is unpickled in a restored driver: the ``mode`` option, else online when the
  ``api_key`` option or ``$COMET_API_KEY`` is set. Only when neither says, the plugin asks Comet's config file
  (``comet login``) at setup, which needs comet_ml.
- **Durability** (``durable_after_flush``, read by TrackBridge's transport when the run starts, so it must be
  known that early): an online experiment's ``flush()`` returns once Comet's server has everything logged so
  far, so what was flushed survives a SIGKILL of the driver. An offline experiment keeps everything in a
  temporary directory until ``end()`` writes the archive: nothing is durable before. Declaring data durable
  when it is not loses it for good after a SIGKILL (TrackBridge skips the steps the journal names); declaring
  it not durable when it is only sends the steps after the trial's last checkpoint again (online, Comet then
  holds them twice). So the plugin declares it durable only when ``early_mode`` already says online; the
  config-file case counts as not durable.
- **Restore**: the ``api_key`` option is a secret and is never pickled into ``tuner.pkl`` (neither are the
  environment of the first driver nor its config file). A restored driver with no key would decide offline and
  quietly write archives for trials whose experiments are online. So every Tune experiment records the mode
  it ran in (``MODE_FILE`` in the experiment directory, when ``mode`` was left to the plugin), and a restored
  experiment whose record says online refuses to go offline: ``restore_refusal``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from trackbridge import ExperimentInfo, experiment_files

#: The file, in the Tune experiment's directory, recording the mode the plugin decided for the experiment.
MODE_FILE = "trackbridge_comet.json"


def early_mode(mode: str | None, api_key: str | None) -> str | None:
    """The mode as far as the options and ``$COMET_API_KEY`` tell; None: Comet's config file decides."""
    if mode:
        return mode
    if api_key or os.environ.get("COMET_API_KEY"):
        return "online"
    return None


def recorded_mode(experiment: ExperimentInfo) -> str | None:
    """The mode an earlier run of ``experiment`` recorded; None when none did (or the record is unreadable)."""
    try:
        text = experiment_files.read_text(experiment, MODE_FILE)
        record: Any = json.loads(text) if text else None
    except Exception:  # unreadable (storage errors are not all OSError): as if there were none
        return None
    mode = record.get("mode") if isinstance(record, dict) else None
    return mode if isinstance(mode, str) else None


def record_mode(experiment: ExperimentInfo, mode: str) -> None:
    """Record ``mode`` for ``experiment`` (replacing an earlier record); raises when the storage refuses."""
    experiment_files.write_text(experiment, MODE_FILE, json.dumps({"plugin": "comet", "mode": mode}))


def restore_refusal(experiment: ExperimentInfo) -> RuntimeError:
    """The error every hook of a restored experiment raises when it ran online before and no key is found now."""
    return RuntimeError(
        f"trackbridge: comet: experiment {experiment.name!r} logged to Comet online before it was restored, but "
        "no Comet API key is configured in this process (the api_key option is never stored in tuner.pkl): set "
        "$COMET_API_KEY (or run `comet login`) and restore again. Nothing is written offline in the meantime"
    )


def check_restored(experiment: ExperimentInfo, mode: str, warn: Callable[[str, str], None]) -> RuntimeError | None:
    """At experiment start, when the plugin decided the mode: the refusal for a restored experiment that ran
    online and would now go offline; else None, with ``mode`` recorded (best effort: warned about once)."""
    recorded = recorded_mode(experiment)
    if experiment.resumed and recorded == "online" and mode == "offline":
        return restore_refusal(experiment)
    if recorded != mode:
        try:
            record_mode(experiment, mode)
        except Exception as exc:  # only a later restore without a key would miss the record
            warn("mode-record", f"could not record the mode in the experiment directory ({exc})")
    return None
