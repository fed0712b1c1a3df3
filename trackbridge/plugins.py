"""The plugin manager: turns what the user passed as ``plugins=`` into validated plugin objects.

Names resolve through the entry-point group ``trackbridge`` (first-party plugins are registered there
exactly as third-party ones are). Everything that can be wrong with a plugin request is found here, at
construction, on the user's thread: an unknown name, a missing tracker SDK, bad options, a hook
implementation whose name or arguments do not match the specification.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import types
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

import pluggy

from trackbridge import hookspecs
from trackbridge.errors import MissingTrackerError, PluginError
from trackbridge.values import is_secret_key, strip_uri_credentials

ENTRY_POINT_GROUP = "trackbridge"
hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT_NAME)

PluginRequest = Union[str, object]
PluginsArgument = Union[Mapping[str, Union[Mapping[str, Any], None]], Sequence[Union[str, object]], str, object]

#: Option names that are stripped before a plugin request is pickled (Tune writes the callback into
#: ``tuner.pkl``): a restored run finds these again in the environment or key file.
SECRET_OPTION_PATTERNS = ("*api_key*", "*token*", "*password*", "*secret*", "*credential*")


@dataclass(frozen=True)
class InstalledPlugin:
    """An entry point in group ``trackbridge``, not loaded."""

    name: str
    value: str
    distribution: str | None
    version: str | None
    entry_point: importlib.metadata.EntryPoint = field(repr=False, compare=False)


@dataclass
class LoadedPlugin:
    """A plugin object ready to receive hooks, with its own pluggy manager (so it can be called alone)."""

    name: str
    obj: Any
    manager: pluggy.PluginManager = field(repr=False)
    hooks: tuple[str, ...]
    #: How to rebuild the plugin after unpickling: ``(name, options)`` for a named plugin, else the object.
    request: Any = field(repr=False, default=None)


def installed_plugins() -> dict[str, list[InstalledPlugin]]:
    """Every entry point in group ``trackbridge``, by name (a list: two distributions may claim one name)."""
    found: dict[str, list[InstalledPlugin]] = {}
    seen: set[tuple[str, str]] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        key = (ep.name, ep.value)
        if key in seen:  # the same distribution found twice on sys.path (e.g. editable + build dir)
            continue
        seen.add(key)
        found.setdefault(ep.name, []).append(
            InstalledPlugin(
                name=ep.name,
                value=ep.value,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
                entry_point=ep,
            )
        )
    return found


def missing_requirements(obj: Any) -> list[str]:
    """The modules a plugin (class, instance or module) declares in ``requires`` that cannot be imported."""
    missing = []
    for module in getattr(obj, "requires", ()) or ():
        try:
            if importlib.util.find_spec(module) is None:
                missing.append(module)
        except (ImportError, ValueError):
            missing.append(module)
    return missing


def _install_hint(obj: Any, name: str) -> str:
    hint = getattr(obj, "install_hint", None)
    return hint or f'pip install "trackbridge[{name}]"'


def load_named(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """Load the entry point ``name`` and build the plugin object from it with ``options``."""
    available = installed_plugins()
    candidates = available.get(name)
    if not candidates:
        names = ", ".join(sorted(available)) or "(none)"
        raise PluginError(f"trackbridge: unknown plugin {name!r}; installed plugins: {names}")
    if len({c.value for c in candidates}) > 1:
        claims = ", ".join(f"{c.distribution} ({c.value})" for c in candidates)
        raise PluginError(f"trackbridge: plugin name {name!r} is claimed by more than one distribution: {claims}")
    ep = candidates[0]
    try:
        target = ep.entry_point.load()
    except ImportError as exc:
        raise MissingTrackerError(
            f"trackbridge: plugin {name!r} ({ep.value}) could not be imported: {exc}"
        ) from exc
    except Exception as exc:
        raise PluginError(f"trackbridge: plugin {name!r} ({ep.value}) failed to load: {exc!r}") from exc
    missing = missing_requirements(target)
    if missing:
        raise MissingTrackerError(
            f"trackbridge: plugin {name!r} needs {', '.join(missing)}, which is not installed; "
            f"install it with: {_install_hint(target, name)}"
        )
    options = dict(options or {})
    if inspect.isclass(target):
        try:
            return target(**options)
        except TypeError as exc:
            raise PluginError(f"trackbridge: bad options for plugin {name!r}: {exc}") from exc
        except ValueError as exc:
            raise PluginError(f"trackbridge: bad options for plugin {name!r}: {exc}") from exc
    if options:
        raise PluginError(
            f"trackbridge: plugin {name!r} is a module of hook functions and takes no options "
            f"(got {sorted(options)})"
        )
    return target


def plugin_name(obj: Any) -> str:
    """The name an unnamed plugin object is known by: its ``name`` attribute, else its class/module name."""
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    return type(obj).__name__


def build_manager(name: str, obj: Any) -> tuple[pluggy.PluginManager, tuple[str, ...]]:
    """A pluggy manager holding only ``obj``, validated against the hook specification."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    try:
        manager.register(obj, name=name)
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"trackbridge: plugin {name!r} does not match the hook specification: {exc}") from exc
    except ValueError as exc:
        raise PluginError(f"trackbridge: plugin {name!r} could not be registered: {exc}") from exc
    callers = manager.get_hookcallers(obj) or []
    hooks = tuple(sorted(c.name for c in callers))
    if not hooks:
        raise PluginError(
            f"trackbridge: plugin {name!r} implements no trackbridge hook "
            "(mark its methods with @trackbridge.hookimpl)"
        )
    return manager, hooks


def _normalise(plugins: PluginsArgument) -> list[tuple[str | None, Mapping[str, Any] | None, Any]]:
    """``plugins=`` as a list of (name, options, object) with exactly one of name/object set."""
    if plugins is None:
        raise PluginError("trackbridge: plugins= is required, e.g. plugins=['wandb', 'mlflow']")
    if isinstance(plugins, str):
        plugins = [plugins]
    if isinstance(plugins, Mapping):
        items: list[tuple[str | None, Mapping[str, Any] | None, Any]] = []
        for name, options in plugins.items():
            if not isinstance(name, str):
                raise PluginError(f"trackbridge: plugin names must be strings, got {name!r}")
            if options is not None and not isinstance(options, Mapping):
                raise PluginError(
                    f"trackbridge: options of plugin {name!r} must be a dict of keyword arguments, "
                    f"got {type(options).__name__}"
                )
            items.append((name, options, None))
        return items
    if isinstance(plugins, (list, tuple)):
        items = []
        for entry in plugins:
            if isinstance(entry, str):
                items.append((entry, None, None))
            elif isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
                items.append((entry[0], entry[1], None))
            else:
                items.append((None, None, entry))
        return items
    return [(None, None, plugins)]


def resolve(plugins: PluginsArgument) -> list[LoadedPlugin]:
    """Resolve and validate a ``plugins=`` argument. Raises ``PluginError`` with a clear message."""
    loaded: list[LoadedPlugin] = []
    names: set[str] = set()
    for name, options, obj in _normalise(plugins):
        if name is not None:
            obj = load_named(name, options)
            request: Any = (name, dict(options or {}))
        else:
            if inspect.isclass(obj):
                raise PluginError(
                    f"trackbridge: got the class {obj.__name__}; pass an instance ({obj.__name__}()) or a name"
                )
            missing = missing_requirements(obj)
            name = plugin_name(obj)
            if missing:
                raise MissingTrackerError(
                    f"trackbridge: plugin {name!r} needs {', '.join(missing)}, which is not installed; "
                    f"install it with: {_install_hint(obj, name)}"
                )
            request = obj
        if name in names:
            raise PluginError(f"trackbridge: plugin {name!r} is given twice")
        names.add(name)
        manager, hooks = build_manager(name, obj)
        loaded.append(LoadedPlugin(name=name, obj=obj, manager=manager, hooks=hooks, request=request))
    if not loaded:
        raise PluginError("trackbridge: plugins= is empty; name at least one plugin")
    return loaded


def is_secret_option(name: str) -> bool:
    """Does a plugin option hold a credential? Paths to one (``api_key_file``) are not credentials."""
    lowered = str(name).lower()
    if lowered.endswith(("_file", "_path", "_env", "_var")):
        return False
    return is_secret_key(lowered, SECRET_OPTION_PATTERNS)


def picklable_request(request: Any) -> Any:
    """A plugin request fit for ``tuner.pkl``: secret-looking options removed (see ``SECRET_OPTION_PATTERNS``)
    and credentials embedded in URIs (``https://user:pass@host``) stripped; a restored run finds them again
    in the environment (e.g. ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``)."""
    if isinstance(request, tuple):
        name, options = request
        clean = {k: strip_uri_credentials(v) for k, v in options.items() if not is_secret_option(k)}
        return (name, clean)
    return request

