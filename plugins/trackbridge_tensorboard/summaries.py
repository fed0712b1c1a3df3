"""Build TensorBoard ``Summary`` protos from TrackBridge values.

This module imports tensorboardX at import time, so the plugin imports it only inside its hooks.

Why hand-built protos instead of ``SummaryWriter.add_scalar``: one result becomes ONE event holding every
value (``Summary`` with many ``Summary.Value`` entries), written with ``file_writer.add_summary``.
``add_scalar`` writes one event per value, which costs ~6x the time and ~2x the file size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

import numpy as np
from tensorboardX.proto.api_pb2 import Status
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo, SessionStartInfo
from tensorboardX.proto.plugin_text_pb2 import TextPluginData
from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboardX.proto.tensor_pb2 import TensorProto
from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboardX.summary import make_histogram

from trackbridge import HISTOGRAM, SCALAR, SKIP, TEXT, TrialStatus, WarnOnce, classify, to_float

#: Tags and version of TensorBoard's HParams plugin (tensorboard/plugins/hparams/metadata.py).
HPARAMS_PLUGIN = "hparams"
SESSION_START_INFO_TAG = "_hparams_/session_start_info"
SESSION_END_INFO_TAG = "_hparams_/session_end_info"

_TEXT_METADATA = SummaryMetadata(
    plugin_data=SummaryMetadata.PluginData(plugin_name="text", content=TextPluginData(version=0).SerializeToString())
)
_ONE = TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)])


def _default_bins() -> list[float]:
    """tensorboardX's ``bins="tensorflow"``: exponential buckets, as ``SummaryWriter.add_histogram`` uses."""
    v = 1e-12
    buckets, neg = [], []
    while v < 1e20:
        buckets.append(v)
        neg.append(-v)
        v *= 1.1
    return neg[::-1] + [0] + buckets


DEFAULT_BINS = _default_bins()


def scalar_value(tag: str, value: float) -> Summary.Value:
    return Summary.Value(tag=tag, simple_value=value)


def text_value(tag: str, text: str) -> Summary.Value:
    """A text-plugin value under ``tag`` itself (tensorboardX's ``text()`` appends ``/text_summary``)."""
    tensor = TensorProto(dtype="DT_STRING", string_val=[text.encode("utf-8")], tensor_shape=_ONE)
    return Summary.Value(tag=tag, metadata=_TEXT_METADATA, tensor=tensor)


def histogram_value(tag: str, values: Any) -> Summary.Value | None:
    """A histogram of the finite values in ``values`` (list or array); None if none are finite."""
    array = np.asarray(values, dtype=float).ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        return None
    return Summary.Value(tag=tag, histo=make_histogram(array, DEFAULT_BINS))


def summary(values: Iterable[Summary.Value]) -> Summary:
    return Summary(value=list(values))


# ---------------------------------------------------------------------------------------------- PBT exploits
#: The scalar marking a PBT exploit (1 at the step the trial continues from; the same name in every first-party
#: plugin) and the text beside it naming the changed config keys.
EXPLOIT_TAG = "trackbridge/exploit"
EXPLOIT_CONFIG_TAG = "trackbridge/exploit_config"


def exploit_text(step: int, changes: Mapping[str, Any]) -> str:
    """Markdown for TensorBoard's text dashboard: the step the trial continues from, and the changed keys."""
    head = f"continues from step {step}"
    if not changes:
        return f"{head}; config unchanged"
    rows = "\n".join(f"| `{key}` | `{value!r}` |" for key, value in changes.items())
    return f"{head} with a changed config:\n\n| key | new value |\n|---|---|\n{rows}"


def exploit_values(step: int, changes: Mapping[str, Any], kinds: MutableMapping[str, str]) -> list[Summary.Value]:
    """The exploit point: the scalar ``trackbridge/exploit`` = 1 and the text ``trackbridge/exploit_config``
    (each only while its tag has not been used for another kind of value)."""
    values = []
    if kinds.setdefault(EXPLOIT_TAG, SCALAR) == SCALAR:
        values.append(scalar_value(EXPLOIT_TAG, 1.0))
    if kinds.setdefault(EXPLOIT_CONFIG_TAG, TEXT) == TEXT:
        values.append(text_value(EXPLOIT_CONFIG_TAG, exploit_text(step, changes)))
    return values


# ---------------------------------------------------------------------------------------------- HParams
_STATUS = {
    TrialStatus.COMPLETED: Status.Value("STATUS_SUCCESS"),
    TrialStatus.FAILED: Status.Value("STATUS_FAILURE"),
    # The experiment ended before the trial did; it may be resumed later, but it is not running now.
    TrialStatus.UNFINISHED: Status.Value("STATUS_UNKNOWN"),
}


def hparam_value(value: Any) -> bool | str | float | None:
    """A config value as an HParams value: bool, string or number; None is left out; anything else
    (lists, reprs) becomes its string."""
    if value is None:
        return None
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return hparam_value(value.item())
    return str(value)


def _hparams_metadata(**content: Any) -> SummaryMetadata:
    data = HParamsPluginData(version=0, **content)
    return SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(plugin_name=HPARAMS_PLUGIN, content=data.SerializeToString())
    )


def session_summaries(
    hparams: Mapping[str, Any], status: TrialStatus, start_time: float, end_time: float | None = None
) -> tuple[Summary, Summary]:
    """The session start info (the hparams) and session end info (the status) of one trial.

    No ``Experiment`` summary is written (unlike ``add_hparams``): TensorBoard uses the experiment summary
    of one arbitrary run for the whole dashboard, so a trial that lacks a metric or a config key would hide
    it for every trial. Without one, TensorBoard builds the experiment from every session: all hparams
    (with their value domains) and every scalar tag of the session runs as a metric.
    """
    ssi = SessionStartInfo(start_time_secs=start_time)
    for key, raw in hparams.items():
        value = hparam_value(raw)
        if value is None:
            continue
        if isinstance(value, bool):
            ssi.hparams[key].bool_value = value
        elif isinstance(value, str):
            ssi.hparams[key].string_value = value
        elif math.isfinite(value):
            ssi.hparams[key].number_value = value
        else:  # NaN/inf cannot be compared or serialized to JSON by the dashboard
            ssi.hparams[key].string_value = str(value)
    sei = SessionEndInfo(status=_STATUS[status], end_time_secs=end_time if end_time is not None else time.time())
    start_metadata = _hparams_metadata(session_start_info=ssi)
    end_metadata = _hparams_metadata(session_end_info=sei)
    start = Summary(value=[Summary.Value(tag=SESSION_START_INFO_TAG, metadata=start_metadata)])
    end = Summary(value=[Summary.Value(tag=SESSION_END_INFO_TAG, metadata=end_metadata)])
    return start, end


def result_values(
    metrics: Mapping[str, Any], kinds: MutableMapping[str, str], tag_of: Callable[[str], str], warn: WarnOnce
) -> list[Summary.Value]:
    """The ``Summary.Value``s of one result: scalars, histograms (lists, arrays) and texts (strings).

    ``kinds`` (tag -> kind of its first value) is the run's memory: TensorBoard keeps the first kind of a
    tag, so a later value of another kind is skipped with a warning, as are values it cannot show.
    """
    values = []
    for key, value in metrics.items():
        kind = classify(value)
        if kind == SKIP:
            warn(f"skip:{key}", f"metric {key!r} is a {type(value).__name__}, which TensorBoard cannot show; skipped")
            continue
        tag = tag_of(key)
        first = kinds.setdefault(tag, kind)
        if first != kind:
            warn(
                f"kind:{key}",
                f"metric {key!r} was a {first} and now is a {kind}; TensorBoard keeps one kind per tag, "
                f"so its {kind} values are skipped",
            )
            continue
        if kind == SCALAR:
            values.append(scalar_value(tag, to_float(value)))
        elif kind == TEXT:
            values.append(text_value(tag, value))
        elif kind == HISTOGRAM:
            try:
                histogram = histogram_value(tag, value)
            except (TypeError, ValueError) as exc:
                histogram = None
                reason = f"could not be made a histogram ({exc})"
            else:
                reason = "has no finite values"
            if histogram is None:
                warn(f"histogram:{key}", f"metric {key!r} {reason}; skipped")
            else:
                values.append(histogram)
    return values
