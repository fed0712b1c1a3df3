"""From what the user passed as ``plugins=`` to validated plugin objects, each with its own pluggy manager.

Everything that can be wrong with a plugin request is found here, at construction, on the user's thread:
an unknown name, a missing tracker SDK, bad options, a hook implementation whose name or arguments do not
match the specification, one name given twice.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pluggy

from trackbridge import hookspecs
from trackbridge.discovery import load_target, require_sdk
from trackbridge.errors import PluginError
from trackbridge.markers import PROJECT_NAME
from trackbridge.plugin_base import TrackerPlugin
from trackbridge.secrets import without_secrets

#: ``plugins=`` as users give it: names, a dict of names to options, plugin objects, or a mix.
PluginsArgument: TypeAlias = Mapping[str, Mapping[str, Any] | None] | Sequence[Any] | str | object


@dataclass
class LoadedPlugin:
    """A plugin object ready to receive hooks, with its own pluggy manager (so it can be called alone)."""

    name: str
    obj: Any
    manager: pluggy.PluginManager = field(repr=False)
    hooks: tuple[str, ...]
    #: How to rebuild the plugin after unpickling: ``(name, options)`` for a named plugin, else the object.
    request: Any = field(repr=False, default=None)


def construct(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """Load the entry point ``name`` and build the plugin object from it with ``options``."""
    target = load_target(name)
    require_sdk(target, name)
    given = dict(options or {})
    if inspect.isclass(target):
        try:
            return target(**given)
        except (TypeError, ValueError) as exc:
            raise PluginError(f"trackbridge: bad options for plugin {name!r}: {exc}") from exc
    if given:
        raise PluginError(
            f"trackbridge: plugin {name!r} is a module of hook functions and takes no options (got {sorted(given)})"
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
    manager = pluggy.PluginManager(PROJECT_NAME)
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
            f"trackbridge: plugin {name!r} implements no trackbridge hook (mark its methods with @trackbridge.hookimpl)"
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
    for given_name, options, given_obj in _normalise(plugins):
        if given_name is not None:
            name, obj = given_name, construct(given_name, options)
            request: Any = (name, dict(options or {}))
        else:
            if inspect.isclass(given_obj):
                raise PluginError(
                    f"trackbridge: got the class {given_obj.__name__}; pass an instance ({given_obj.__name__}()) or a name"
                )
            name, obj = plugin_name(given_obj), given_obj
            require_sdk(obj, name)
            request = obj
        if name in names:
            raise PluginError(f"trackbridge: plugin {name!r} is given twice")
        names.add(name)
        manager, hooks = build_manager(name, obj)
        loaded.append(LoadedPlugin(name=name, obj=obj, manager=manager, hooks=hooks, request=request))
    if not loaded:
        raise PluginError("trackbridge: plugins= is empty; name at least one plugin")
    return loaded


def picklable_request(plugin: LoadedPlugin) -> Any:
    """A plugin request fit for ``tuner.pkl``. For a named plugin, its options without secrets
    (``secrets.without_secrets``: named like a credential, or declared ``secret=True`` in the plugin's
    ``PluginOptions``); a plugin object as it is (its own ``__getstate__`` decides, e.g. ``TrackerPlugin``)."""
    request = plugin.request
    if isinstance(request, tuple):
        name, options = request
        secret_names = getattr(getattr(plugin.obj, "options", None), "secret_names", None)
        declared = secret_names() if callable(secret_names) else ()
        return (name, without_secrets(options, declared))
    return request


# --------------------------------------------------------------------------------------- isolate=
@dataclass(frozen=True)
class ProcessHandoff:
    """A ``TrackerPlugin`` as its own process (``isolate=``) receives it: its name, class and
    ``process_state()``, every option included, secrets too. Built in the driver when the process starts and
    sent over the socket to that process; nothing writes it to a file."""

    name: str
    cls: type[TrackerPlugin[Any]]
    state: dict[str, Any] = field(repr=False)


def process_request(plugin: LoadedPlugin) -> Any:
    """What a plugin's own process is sent to build the plugin. A ``TrackerPlugin`` (named or an object) as
    the driver holds it: a ``ProcessHandoff`` with all its options, secrets included (an object's own
    pickling would drop them: that rule is for ``tuner.pkl``), and what only the driver knows
    (``PluginOptions.for_plugin_process``). Any other plugin as its request (a name and the options as given;
    an object as its own pickling has it)."""
    obj = plugin.obj
    if isinstance(obj, TrackerPlugin):
        return ProcessHandoff(plugin.name, type(obj), obj.process_state())
    return plugin.request


def resolve_in_process(request: Any) -> LoadedPlugin:
    """The plugin of a plugin process, from what ``process_request`` sent (checked like ``resolve``)."""
    if not isinstance(request, ProcessHandoff):
        [plugin] = resolve([request])
        return plugin
    obj = request.cls.from_process_state(request.state)
    require_sdk(obj, request.name)
    manager, hooks = build_manager(request.name, obj)
    return LoadedPlugin(name=request.name, obj=obj, manager=manager, hooks=hooks, request=obj)
