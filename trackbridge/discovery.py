"""Finding plugins: the entry points of group ``trackbridge``, what each needs, and which hooks it implements.

Nothing here constructs a plugin (``loading`` does). Built-in plugins are found exactly like third-party
ones: through the entry points of the installed distributions.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from typing import Any

import pluggy

from trackbridge import hookspecs
from trackbridge.errors import MissingTrackerError, PluginError
from trackbridge.markers import PROJECT_NAME

ENTRY_POINT_GROUP = "trackbridge"


@dataclass(frozen=True)
class InstalledPlugin:
    """An entry point in group ``trackbridge``, not loaded."""

    name: str
    value: str
    distribution: str | None
    version: str | None
    entry_point: importlib.metadata.EntryPoint = field(repr=False, compare=False)


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


def load_target(name: str) -> Any:
    """Load the entry point ``name``: the plugin class (or module). Raises ``PluginError`` naming the
    installed plugins for an unknown name, the distributions for a name claimed twice, and the error for
    one that fails to import."""
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
        return ep.entry_point.load()
    except ImportError as exc:
        raise MissingTrackerError(f"trackbridge: plugin {name!r} ({ep.value}) could not be imported: {exc}") from exc
    except Exception as exc:
        raise PluginError(f"trackbridge: plugin {name!r} ({ep.value}) failed to load: {exc!r}") from exc


def missing_requirements(target: Any) -> list[str]:
    """The modules a plugin (class, instance or module) declares in ``requires`` that cannot be imported."""
    missing = []
    for module in getattr(target, "requires", ()) or ():
        try:
            if importlib.util.find_spec(module) is None:
                missing.append(module)
        except (ImportError, ValueError):
            missing.append(module)
    return missing


def install_hint(target: Any, name: str) -> str:
    """What to install for a plugin whose tracker SDK is missing: its ``install_hint``, else the extra."""
    hint = getattr(target, "install_hint", None)
    return hint or f'pip install "trackbridge[{name}]"'


def require_sdk(target: Any, name: str) -> None:
    """Raise ``MissingTrackerError`` (with the install hint) when the plugin's tracker SDK is missing."""
    missing = missing_requirements(target)
    if missing:
        raise MissingTrackerError(
            f"trackbridge: plugin {name!r} needs {', '.join(missing)}, which is not installed; "
            f"install it with: {install_hint(target, name)}"
        )


_SPEC_READER = pluggy.PluginManager(PROJECT_NAME)


def implemented_hooks(target: Any) -> list[str]:
    """The hooks of the specification that ``target`` (a plugin class, instance or module) marks with
    ``@hookimpl``, found without constructing it (pluggy's public ``parse_hookimpl_opts``)."""
    return sorted(
        name
        for name in hookspecs.ALL_HOOKS
        if callable(getattr(target, name, None)) and _SPEC_READER.parse_hookimpl_opts(target, name) is not None
    )


def usable_plugin_names() -> list[str]:
    """Installed plugins that load and whose tracker SDK is importable, by name."""
    names = []
    for name, candidates in sorted(installed_plugins().items()):
        if len(candidates) != 1:
            continue
        try:
            if not missing_requirements(candidates[0].entry_point.load()):
                names.append(name)
        except Exception:  # a broken plugin is simply not usable; `trackbridge plugins` says why
            continue
    return names
