"""The W&B plugin's declared options: validated by ``PluginOptions.parse`` on the user's thread, without
importing wandb.

Tune pickles the callback (and with it these options) into ``tuner.pkl`` before the run, so this module
never touches the SDK or the network; it only checks types and names. The API key is declared secret, so the
base's ``without_secrets()`` keeps it out of ``tuner.pkl`` (``api_key_file`` is only a reference: kept); a
plugin process of its own (``isolate=``) still receives it, over its socket (``TrackerPlugin.process_state``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trackbridge import PluginOptions, option

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

#: The plugin's own options (every other declared option is a ``wandb.init`` keyword).
PLUGIN_OPTIONS: frozenset[str] = frozenset(
    {"api_key", "api_key_file", "upload_checkpoints", "log_config", "text", "settings", "init_kwargs"}
)

#: How string metric values are stored (see docs/wandb.md).
TEXT_MODES = ("history", "summary", "html", "skip")

#: The values of wandb.init's ``mode`` the plugin accepts.
MODES = ("online", "offline", "disabled", "shared")

#: The plugin's defaults for ``wandb.Settings``: every run of a Tune experiment lives in the driver
#: process, so console capture would copy the whole driver output (all trials mixed) into every run, and
#: system metrics would be the driver's, repeated in every run. ``quiet`` drops the per-run footer that
#: would otherwise be printed for every trial. Each can be turned back on with ``settings={...}``.
DEFAULT_SETTINGS: Mapping[str, Any] = {"console": "off", "x_disable_stats": True, "quiet": True}

#: ``wandb`` modes in which the API key is used; offline and disabled runs never need it.
ONLINE_MODES = frozenset({"online", "run", "shared"})


# ---------------------------------------------------------------------------- converters and checks
def _path(value: Any) -> Any:
    """A path-like as a string; anything else as is, for the type check to refuse with the option's name."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, set, frozenset)) else value


def _check_tags(value: Any) -> None:
    if value is not None and not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
        raise TypeError("must be a list of strings")


def _check_mode(value: Any) -> None:
    if value not in (None, *MODES):
        raise ValueError(f"must be online, offline, disabled or shared; got {value!r}")


def _check_non_empty(value: Any) -> None:
    if value is not None and not value.strip():
        raise ValueError("must be a non-empty string")


def _settings_dict(value: Any) -> Any:
    """A ``wandb.Settings`` (pydantic) reduced to the fields the user set; a dict copied; else as is."""
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    if dump is None:
        return value
    fields_set = getattr(value, "model_fields_set", None)
    return {k: v for k, v in dump().items() if fields_set is None or k in fields_set}


#: What ``init_kwargs`` entries that name a declared ``wandb.init`` keyword go through, as that option would.
_INIT_CONVERT = {"dir": _path, "tags": _as_list}
_INIT_CHECK = {"tags": _check_tags, "mode": _check_mode}


def _init_kwargs_dict(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    out = {}
    for key, item in value.items():
        convert = _INIT_CONVERT.get(str(key))
        out[str(key)] = convert(item) if convert is not None and item is not None else item
    return out


def _check_init_kwargs(value: Mapping[str, Any] | None) -> None:
    for key, item in (value or {}).items():
        if key in MANAGED_INIT_KEYWORDS or key in ("settings", "api_key"):
            raise ValueError(f"may not set {key!r}")
        check = _INIT_CHECK.get(key)
        if check is not None:
            try:
                check(item)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{key!r} {exc}") from exc


# ---------------------------------------------------------------------------- the options
@dataclass(frozen=True)
class WandbOptions(PluginOptions):
    """What ``plugins={"wandb": {...}}`` may set (each option's ``doc`` says what it does)."""

    reserved = MANAGED_INIT_KEYWORDS

    # -- the plugin's own options
    api_key: str | None = option(
        None,
        doc="W&B API key for online runs (else api_key_file, $WANDB_API_KEY, wandb login); never pickled",
        secret=True,
        check=_check_non_empty,
    )
    api_key_file: str | None = option(None, doc="a file holding the API key (kept across a restore)", convert=_path)
    upload_checkpoints: bool = option(False, doc="log every Tune checkpoint as a 'model' artifact")
    log_config: bool = option(False, doc="log config changes of resumed trials (PBT) with run.config.update")
    text: str = option("history", doc="where string metrics go", choices=TEXT_MODES)
    settings: dict[str, Any] | None = option(
        default_factory=dict,
        doc="wandb.Settings fields (a dict or a wandb.Settings), over DEFAULT_SETTINGS",
        convert=_settings_dict,
    )
    init_kwargs: dict[str, Any] | None = option(
        default_factory=dict,
        doc="any other wandb.init keyword (for keywords newer than this plugin)",
        convert=_init_kwargs_dict,
        check=_check_init_kwargs,
    )

    # -- wandb.init keywords (wandb 0.19 - 0.31) passed unchanged to every trial's wandb.init
    entity: str | None = option(None, doc="W&B entity (user or team) of every run")
    project: str | None = option(None, doc="W&B project of every run (default: $WANDB_PROJECT, else the experiment)")
    dir: str | None = option(
        None, doc="where wandb writes its run directories (default: $WANDB_DIR or cwd)", convert=_path
    )
    notes: str | None = option(None, doc="notes of every run")
    tags: list[str] | None = option(None, doc="tags of every run", convert=_as_list, check=_check_tags)
    group: str | None = option(None, doc="run group (default: the experiment name)")
    job_type: str | None = option(None, doc="job type of every run")
    mode: str | None = option(None, doc="online, offline, disabled or shared (default: $WANDB_MODE)", check=_check_mode)
    force: bool | None = option(None, doc="require a W&B login before a run starts")
    save_code: bool | None = option(None, doc="save the main script or notebook with each run")
    tensorboard: bool | None = option(None, doc="alias of sync_tensorboard")
    sync_tensorboard: bool | None = option(None, doc="sync TensorBoard logs written in the process")
    monitor_gym: bool | None = option(None, doc="log videos of gym environments")
    config_exclude_keys: list[str] | None = option(None, doc="config keys not to record", convert=_as_list)
    config_include_keys: list[str] | None = option(None, doc="the only config keys to record", convert=_as_list)
    allow_val_change: bool | None = option(None, doc="allow config values to change (the plugin's default: True)")

    def __post_init__(self) -> None:
        # ``parse`` converts only values that are not None: settings=None / init_kwargs=None mean empty.
        settings = dict(self.settings or {})
        if "api_key" in settings:  # wandb.Settings(api_key=...) works like the api_key option
            key = settings.pop("api_key")
            if self.api_key is None:
                object.__setattr__(self, "api_key", key)
        object.__setattr__(self, "settings", settings)
        object.__setattr__(self, "init_kwargs", dict(self.init_kwargs or {}))

    @property
    def init(self) -> dict[str, Any]:
        """The ``wandb.init`` keywords for every run: the pass-through options that are set, then
        ``init_kwargs`` (which wins)."""
        init = {k: getattr(self, k) for k in PASSTHROUGH_INIT_KEYWORDS if getattr(self, k) is not None}
        init.update(self.init_kwargs or {})
        return init


#: ``wandb.init`` keywords that may be given as plugin options and are passed through unchanged to every
#: trial's ``wandb.init`` (the declared options that are not the plugin's own). Anything newer can go
#: through ``init_kwargs={...}``.
PASSTHROUGH_INIT_KEYWORDS: frozenset[str] = frozenset(WandbOptions.fields()) - PLUGIN_OPTIONS


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
