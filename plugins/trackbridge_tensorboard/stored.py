"""What TensorBoard event files hold for one Tune experiment, read with TensorBoard's own reader
(``EventMultiplexer``, as ``tensorboard --logdir`` reads them) for ``trackbridge demo``."""

from __future__ import annotations

import glob
import os

from trackbridge.stored_summary import StoredSummary, is_own_metric

#: The text tag (and hparam) telling how the trial ended (see ``plugin.STATUS_TAG``).
STATUS_TAG = "trial_status"


def _run_directories(logdir: str) -> list[str]:
    """Every directory under ``logdir`` holding event files: one TensorBoard run each."""
    found = {
        os.path.dirname(p)
        for p in glob.glob(os.path.join(glob.escape(logdir), "**", "events.out.tfevents.*"), recursive=True)
    }
    return sorted(found)


def summarize(logdir: str) -> StoredSummary:
    """Every run (a directory of event files) under ``logdir`` holding scalars or a trial status."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    summary = StoredSummary(artifacts=None)  # TensorBoard keeps no files of a run
    for directory in _run_directories(logdir):
        acc = EventAccumulator(directory, size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        tags = acc.Tags()
        scalars = [tag for tag in tags["scalars"] if is_own_metric(tag)]
        status = (
            [e.tensor_proto.string_val[0].decode() for e in acc.Tensors(STATUS_TAG)]
            if STATUS_TAG in tags["tensors"]
            else []
        )
        if not scalars and not status:
            continue
        summary.runs += 1
        summary.metric_points += sum(len(acc.Scalars(tag)) for tag in scalars)
        if status:
            # the status text's first line, in Markdown ("**failed**", then the error)
            summary.statuses[status[-1].splitlines()[0].strip("* ").lower()] += 1
        try:
            hparams = acc.PluginTagToContent("hparams")
        except KeyError:  # no HParams in this run
            hparams = {}
        for content in hparams.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.HasField("session_start_info"):
                summary.params += len([k for k in data.session_start_info.hparams if k != STATUS_TAG])
    return summary
