"""What one trial's ``wandb.init`` gets: the plugin's options, the trial's own ``wandb`` config sub-dict (as in
Ray's W&B integration), and the ids the plugin manages. Pure functions: no wandb import, no network."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from trackbridge import REDACTED, TrialInfo
from trackbridge_wandb import convert
from trackbridge_wandb.options import DEFAULT_SETTINGS, MANAGED_INIT_KEYWORDS, PASSTHROUGH_INIT_KEYWORDS, WandbOptions

#: The config key whose sub-dict overrides ``wandb.init`` keywords for one trial (as in Ray's integration).
CONFIG_KEY = "wandb"
#: Keys a trial's ``wandb`` config sub-dict may set (besides every pass-through ``wandb.init`` keyword).
TRIAL_OVERRIDES = PASSTHROUGH_INIT_KEYWORDS | {"id", "name", "settings"}


def overrides(trial: TrialInfo, warn: Callable[[str, str], None]) -> dict[str, Any]:
    """The trial's ``wandb`` config sub-dict, reduced to the keys it may set (the others warned about once)."""
    raw = trial.nested_config.get(CONFIG_KEY)
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in TRIAL_OVERRIDES:
            reason = MANAGED_INIT_KEYWORDS.get(key, "not a wandb.init keyword the plugin passes on")
            warn(f"override:{key}", f"config['wandb'][{key!r}] is ignored: {reason}")
            continue
        if value == REDACTED:
            warn(f"override:{key}", f"config['wandb'][{key!r}] is redacted; ignored")
            continue
        out[key] = value
    return out


def is_wandb_key(trial: TrialInfo, key: str) -> bool:
    """Is the flattened config key part of the trial's ``wandb`` sub-dict (not logged as config)?"""
    if not isinstance(trial.nested_config.get(CONFIG_KEY), Mapping):
        return False
    return key == CONFIG_KEY or key.startswith(CONFIG_KEY + "/")


def run_config(trial: TrialInfo) -> dict[str, Any]:
    """The config a run records: the trial's flattened config without its ``wandb`` sub-dict."""
    return {k: v for k, v in trial.config.items() if not is_wandb_key(trial, k)}


def init_arguments(
    trial: TrialInfo, options: WandbOptions, experiment: str, warn: Callable[[str, str], None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``wandb.init`` keywords (without ``config``, ``reinit``, ``resume``, ``settings``) and the
    ``wandb.Settings`` fields (without the API key) of one trial's run, lowest precedence first: the plugin's
    defaults, its options, the trial's overrides, and the run id and name unless the trial overrides them."""
    kwargs: dict[str, Any] = {
        "project": os.environ.get("WANDB_PROJECT") or convert.project_name(experiment),
        "group": experiment,
    }
    kwargs.update({k: v for k, v in options.init.items() if v is not None})
    trial_overrides = overrides(trial, warn)
    settings = dict(DEFAULT_SETTINGS)
    settings.update(options.settings or {})
    trial_settings = trial_overrides.pop("settings", None)
    if isinstance(trial_settings, Mapping):
        # a key in a trial's config is redacted, never a usable secret: only the plugin's own key counts
        settings.update({k: v for k, v in trial_settings.items() if k != "api_key" and v != REDACTED})
    kwargs["id"] = convert.run_id(trial.trial_id)
    kwargs["name"] = trial.trial_name
    kwargs.update(trial_overrides)
    kwargs.setdefault("allow_val_change", True)  # a restored PBT trial may come back with a new config
    return kwargs, settings
