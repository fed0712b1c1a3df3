"""Reading and writing one trial's MLflow run: its config as params, config changes (PBT), tags, its end;
and what a run created by a previous process already holds (``Tuner.restore``).

MLflow refuses to change a logged param ("changing param values is not allowed"), and PBT changes
hyperparameters mid-trial, so a changed value never goes to params again: a number becomes the metric
``config/<key>``, anything else the tag ``config/<key>``. Param values longer than MLflow's limit are handled
per ``long_params`` ("truncate", "tag" or "artifact").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trackbridge import TrialStatus
from trackbridge_mlflow import store
from trackbridge_mlflow.buffer import MetricBuffer
from trackbridge_mlflow.held import HeldSteps
from trackbridge_mlflow.limits import KeyMap, Limits, chunked, format_value, sanitize_key, truncate, truncate_tail

#: Metric (numeric values) and tag (other values) prefix for config values that change during a trial.
CONFIG_PREFIX = "config/"
#: Where long param values go with ``long_params="tag"`` / ``"artifact"``.
LONG_PARAM_PREFIX = "params/"
TAG_ERROR = "error"
TAG_STATUS = "trackbridge.status"
_MLFLOW_STATUS = {
    TrialStatus.COMPLETED: "FINISHED",
    TrialStatus.FAILED: "FAILED",
    TrialStatus.UNFINISHED: "KILLED",
}
_MISSING = object()


@dataclass
class TrialRun:
    """What the plugin knows about one trial's MLflow run."""

    run_id: str
    trial_name: str
    metric_keys: KeyMap
    param_keys: KeyMap
    #: MLflow param name -> the value stored in MLflow (params can never change once logged).
    params: dict[str, str] = field(default_factory=dict)
    #: The trial's config as last seen (original flattened keys); None values included.
    config: dict[str, Any] = field(default_factory=dict)
    #: Latest value written per config-change metric/tag name (to skip writing the same value again).
    config_logged: dict[str, Any] = field(default_factory=dict)
    running: bool = True
    has_error_tag: bool = False
    #: A reopened run's (metric, step) pairs held when it was reopened (points there are not logged again),
    #: until the trial's next config update (a PBT exploit); None for a run created in this process.
    held: HeldSteps | None = None

    @classmethod
    def from_run(cls, run: Any, trial_name: str, metric_keys: KeyMap, param_keys: KeyMap) -> TrialRun:
        """The state of a run a previous process created, read back: its params, the config changes it
        logged, whether it carries an error tag. (Which metric steps it holds: ``held``, read by the plugin.)"""
        tags = dict(run.data.tags or {})
        state = cls(
            run.info.run_id,
            trial_name,
            metric_keys,
            param_keys,
            params=dict(store.run_params(run)),
            has_error_tag=TAG_ERROR in tags,
        )
        for key, value in (run.data.metrics or {}).items():
            if key.startswith(CONFIG_PREFIX):
                state.config_logged[key] = value
        for key, value in tags.items():
            if key.startswith(CONFIG_PREFIX):
                state.config_logged[key] = value
        return state


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b or format_value(a) == format_value(b)


def _is_numeric_config(value: Any) -> bool:
    return isinstance(value, (bool, int, float))


class RunWriter:
    """Params, tags and config changes of trial runs, through one ``MlflowClient`` (created in
    ``trackbridge_setup``, once MLflow is imported); config-change metrics go into the plugin's buffer."""

    def __init__(
        self,
        client: Any,
        limits: Limits,
        buffer: MetricBuffer,
        long_params: str,
        warn: Callable[[str, str], None],
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        self.client = client
        self.limits = limits
        self.buffer = buffer
        self.long_params = long_params
        self.warn = warn
        self.metric_cls, self._param_cls, self._tag_cls = Metric, Param, RunTag

    # ------------------------------------------------------------------ tags
    def clean_tags(self, tags: Mapping[str, Any]) -> dict[str, str]:
        limit = self.limits.tag_value_length
        return {k: truncate(format_value(v), limit) for k, v in tags.items()}

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        Tag = self._tag_cls
        items = [Tag(k, v) for k, v in tags.items()]
        for chunk in chunked(items, self.limits.params_tags_per_batch):
            self.client.log_batch(run_id, tags=list(chunk), synchronous=True)

    # ------------------------------------------------------------------ config -> params
    def _stored_param(self, name: str, value: Any) -> tuple[str, dict[str, str], dict[str, str]]:
        """(param value as stored, extra tags, extra text artifacts) for one config value."""
        text = format_value(value)
        limit = self.limits.param_value_length
        if len(text) <= limit:
            return text, {}, {}
        mode = self.long_params
        if mode == "tag":
            tag = sanitize_key(LONG_PARAM_PREFIX + name, self.limits.key_length)
            return (
                truncate(text, limit, f"tag {tag}"),
                {tag: truncate(text, self.limits.tag_value_length)},
                {},
            )
        if mode == "artifact":
            path = f"{LONG_PARAM_PREFIX}{name}.txt"
            return truncate(text, limit, f"artifact {path}"), {}, {path: text}
        return truncate(text, limit), {}, {}

    def apply_config(self, state: TrialRun, config: Mapping[str, Any], step: int | None, *, log_params: bool) -> None:
        """Log config keys not yet logged as params; log changed values of logged ones as config metrics/tags."""
        new_params: dict[str, str] = {}
        extra_tags: dict[str, str] = {}
        artifacts: dict[str, str] = {}
        changes: dict[str, Any] = {}
        for key, value in config.items():
            name = state.param_keys(key)
            previous = state.config.get(key, _MISSING)
            if previous is not _MISSING:
                changed = not _same(previous, value)
            elif name in state.params:
                changed = state.params[name] != self._stored_param(name, value)[0]
            else:
                changed = False
            if changed:
                changes[key] = (previous, value)
            if log_params and name not in state.params:
                stored, tags, files = self._stored_param(name, value)
                if tags or files or stored != format_value(value):
                    self.warn(
                        f"long-param:{key}",
                        f"config value {key!r} has {len(format_value(value))} characters, more than MLflow's "
                        f"{self.limits.param_value_length}; long_params={self.long_params!r}",
                    )
                new_params[name] = stored
                extra_tags.update(tags)
                artifacts.update(files)
            if name != key:
                self.warn(f"param-name:{key}", f"config key {key!r} is logged as param {name!r}")
            state.config[key] = value
        if new_params:
            Param = self._param_cls
            items = [Param(k, v) for k, v in new_params.items()]
            for chunk in chunked(items, self.limits.params_tags_per_batch):
                self.client.log_batch(state.run_id, params=list(chunk), synchronous=True)
            state.params.update(new_params)
        if extra_tags:
            self.set_tags(state.run_id, extra_tags)
        for path, text in artifacts.items():
            self.client.log_text(state.run_id, text, path)
        if changes:
            self._log_config_changes(state, changes, step)

    def _log_config_changes(self, state: TrialRun, changes: Mapping[str, tuple[Any, Any]], step: int | None) -> None:
        """Numeric values -> metric ``config/<key>`` at the first step that used them (``step + 1``; the
        value the trial started with at step 0); anything else -> tag ``config/<key>``."""
        now = int(time.time() * 1000)
        at = (step or 0) + 1
        metrics: list[Any] = []
        tags: dict[str, str] = {}
        Metric = self.metric_cls
        for key, (previous, value) in changes.items():
            if _is_numeric_config(value):
                name = state.metric_keys(CONFIG_PREFIX + key)
                number = float(value)
                if name not in state.config_logged and _is_numeric_config(previous):
                    metrics.append(Metric(name, float(previous), now, 0))
                if name in state.config_logged and _same(state.config_logged[name], number):
                    continue
                metrics.append(Metric(name, number, now, at))
                state.config_logged[name] = number
            else:
                name = sanitize_key(CONFIG_PREFIX + key, self.limits.key_length)
                text = truncate(format_value(value), self.limits.tag_value_length)
                if state.config_logged.get(name) == text:
                    continue
                tags[name] = text
                state.config_logged[name] = text
        if metrics:
            self.buffer.add(state.run_id, metrics)
        if tags:
            self.set_tags(state.run_id, tags)

    # ------------------------------------------------------------------ the run's end
    def end_run(self, state: TrialRun, status: TrialStatus, error: str | None) -> None:
        """Tag how the trial ended (``trackbridge.status``, ``error``) and set the run's MLflow status."""
        tags = {TAG_STATUS: status.value}
        if status is TrialStatus.FAILED:
            tags[TAG_ERROR] = truncate_tail(error or "trial failed", self.limits.tag_value_length)
        self.set_tags(state.run_id, tags)
        if status is TrialStatus.FAILED:
            state.has_error_tag = True
        elif status is TrialStatus.COMPLETED and state.has_error_tag:
            self.client.delete_tag(state.run_id, TAG_ERROR)  # it failed before, then succeeded when resumed
            state.has_error_tag = False
        self.client.set_terminated(state.run_id, _MLFLOW_STATUS[status])
        state.running = False
