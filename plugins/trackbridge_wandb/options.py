"""The W&B plugin's options: validated at construction, without importing wandb.

Tune pickles the callback (and with it these options) into ``tuner.pkl`` before the run, so this module
never touches the SDK or the network; it only checks types and names, and keeps the API key out of
anything that gets pickled (``WandbOptions.without_secrets``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

#: ``wandb.init`` keywords (wandb 0.19 - 0.31) that may be given as plugin options and are passed through
#: unchanged to every trial's ``wandb.init``. Anything newer can go through ``init_kwargs={...}``.
PASSTHROUGH_INIT_KEYWORDS: frozenset[str] = frozenset(
    {
        "entity",
        "project",
        "dir",
        "notes",
        "tags",
        "group",
        "job_type",
        "mode",
        "force",
        "save_code",
        "tensorboard",
        "sync_tensorboard",
        "monitor_gym",
        "config_exclude_keys",
        "config_include_keys",
        "allow_val_change",
    }
)

#: ``wandb.init`` keywords the plugin sets itself, per trial; giving them as options is an error.
MANAGED_INIT_KEYWORDS: dict[str, str] = {
    "id": "each trial's run id is its Tune trial id (override per trial with config={'wandb': {'id': ...}})",
    "name": "each trial's run name is its trial name (override per trial with config={'wandb': {'name': ...}})",
    "config": "each run's config is its trial's config",
    "reinit": "the plugin opens one run per trial with reinit='create_new'",
    "resume": "the plugin resumes a trial's run itself (resume='allow') when Tune restores the trial",
    "resume_from": "a restored trial continues its own run",
    "fork_from": "a restored trial continues its own run",
}

#: The plugin's own options (everything else is a ``wandb.init`` keyword).
PLUGIN_OPTIONS: frozenset[str] = frozenset(
    {"api_key", "api_key_file", "upload_checkpoints", "log_config", "text", "settings", "init_kwargs"}
)

#: How string metric values are stored (see docs/wandb.md).
TEXT_MODES = ("history", "summary", "html", "skip")

#: The plugin's defaults for ``wandb.Settings``: every run of a Tune experiment lives in the driver
#: process, so console capture would copy the whole driver output (all trials mixed) into every run, and
#: system metrics would be the driver's, repeated in every run. ``quiet`` drops the per-run footer that
#: would otherwise be printed for every trial. Each can be turned back on with ``settings={...}``.
DEFAULT_SETTINGS: Mapping[str, Any] = {"console": "off", "x_disable_stats": True, "quiet": True}

#: ``wandb`` modes in which the API key is used; offline and disabled runs never need it.
ONLINE_MODES = frozenset({"online", "run", "shared"})


@dataclass(frozen=True)
class WandbOptions:
    """Everything the user configured for the ``wandb`` plugin."""

    #: ``wandb.init`` keywords passed to every run (project, entity, group, tags, mode, dir, ...).
    init: Mapping[str, Any] = field(default_factory=dict)
    #: ``wandb.Settings`` fields, on top of ``DEFAULT_SETTINGS``.
    settings: Mapping[str, Any] = field(default_factory=dict)
    api_key: str | None = field(default=None, repr=False)
    api_key_file: str | None = None
    upload_checkpoints: bool = False
    log_config: bool = False
    text: str = "history"

    def without_secrets(self) -> "WandbOptions":
        """A copy safe to pickle: no API key (it is found again in ``api_key_file`` or the environment)."""
        return replace(self, api_key=None)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"wandb option {name!r} must be True or False, got {value!r}")
    return value


def parse_options(options: Mapping[str, Any]) -> WandbOptions:
    """Validate the plugin's options; raise ``TypeError``/``ValueError`` naming the bad one."""
    options = dict(options)
    api_key = options.pop("api_key", None)
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise TypeError("wandb option 'api_key' must be a non-empty string")
    api_key_file = options.pop("api_key_file", None)
    if api_key_file is not None:
        if not isinstance(api_key_file, (str, os.PathLike)):
            raise TypeError("wandb option 'api_key_file' must be a path")
        api_key_file = os.fspath(api_key_file)
    upload_checkpoints = _check_bool("upload_checkpoints", options.pop("upload_checkpoints", False))
    log_config = _check_bool("log_config", options.pop("log_config", False))
    text = options.pop("text", "history")
    if text not in TEXT_MODES:
        raise ValueError(f"wandb option 'text' must be one of {', '.join(TEXT_MODES)}; got {text!r}")

    settings = options.pop("settings", None) or {}
    if not isinstance(settings, Mapping):
        # a wandb.Settings object (pydantic): keep only what the user set explicitly
        dump = getattr(settings, "model_dump", None)
        if dump is None:
            raise TypeError("wandb option 'settings' must be a dict or a wandb.Settings")
        fields_set = getattr(settings, "model_fields_set", None)
        settings = {k: v for k, v in dump().items() if fields_set is None or k in fields_set}
    settings = dict(settings)
    if "api_key" in settings:
        if api_key is None:
            api_key = settings["api_key"]
        settings.pop("api_key")

    init: dict[str, Any] = {}
    extra = options.pop("init_kwargs", None) or {}
    if not isinstance(extra, Mapping):
        raise TypeError("wandb option 'init_kwargs' must be a dict of wandb.init keywords")
    for key, value in options.items():
        if key in MANAGED_INIT_KEYWORDS:
            raise ValueError(f"wandb option {key!r} is not allowed: {MANAGED_INIT_KEYWORDS[key]}")
        if key not in PASSTHROUGH_INIT_KEYWORDS:
            known = sorted(PASSTHROUGH_INIT_KEYWORDS | PLUGIN_OPTIONS)
            raise TypeError(
                f"unknown wandb option {key!r}; known options: {', '.join(known)} "
                "(pass other wandb.init keywords through init_kwargs={...})"
            )
        init[key] = value
    for key, value in extra.items():
        if key in MANAGED_INIT_KEYWORDS or key in ("settings", "api_key"):
            raise ValueError(f"wandb init_kwargs may not set {key!r}")
        init[str(key)] = value
    if "tags" in init and init["tags"] is not None:
        if isinstance(init["tags"], str) or not all(isinstance(t, str) for t in init["tags"]):
            raise TypeError("wandb option 'tags' must be a list of strings")
        init["tags"] = list(init["tags"])
    if "mode" in init and init["mode"] not in (None, "online", "offline", "disabled", "shared"):
        raise ValueError(f"wandb option 'mode' must be online, offline, disabled or shared; got {init['mode']!r}")
    if "dir" in init and init["dir"] is not None:
        init["dir"] = os.fspath(init["dir"])
    return WandbOptions(
        init=init,
        settings=settings,
        api_key=api_key,
        api_key_file=api_key_file,
        upload_checkpoints=upload_checkpoints,
        log_config=log_config,
        text=text,
    )


def resolve_api_key(options: WandbOptions) -> str | None:
    """The API key to use: the ``api_key`` option, else the ``api_key_file`` option, else ``WANDB_API_KEY``.

    None means "let wandb find its own login" (``~/.netrc`` from ``wandb login``).
    """
    if options.api_key:
        return options.api_key
    if options.api_key_file:
        with open(os.path.expanduser(options.api_key_file), encoding="utf-8") as f:
            key = f.read().strip()
        if not key:
            raise ValueError(f"wandb: the api_key_file {options.api_key_file!r} is empty")
        return key
    return os.environ.get("WANDB_API_KEY") or None


def effective_mode(init_kwargs: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The mode a run will use: ``mode=`` wins over settings, then ``WANDB_MODE``, then online."""
    mode = init_kwargs.get("mode") or settings.get("mode") or os.environ.get("WANDB_MODE") or "online"
    if mode == "dryrun":
        return "offline"
    return str(mode)
