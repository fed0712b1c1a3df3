"""Declared plugin options, validated in one format.

A plugin declares its options as a frozen dataclass deriving from ``PluginOptions``; each field is one
option, with its type annotation, its default, and ``option(...)`` metadata::

    @dataclass(frozen=True)
    class AcmeOptions(PluginOptions):
        project: str = option("default", doc="the Acme project every run goes to")
        api_key: str | None = option(None, doc="else $ACME_API_KEY", secret=True)
        mode: str = option("online", choices=("online", "offline"))

``AcmeOptions.parse("acme", {"projcet": "p"})`` then fails with ``unknown option 'projcet' for plugin
'acme'; did you mean 'project'?``, a wrong type with ``option 'mode' of plugin 'acme' must be a str``,
``without_secrets()`` gives the copy that may be pickled into ``tuner.pkl``, and ``for_plugin_process()`` the
whole options a plugin's own process (``isolate=``) is built with.

Supported annotations: ``bool``, ``int``, ``float`` (an int is accepted), ``str``, ``Mapping[...]``/``dict``,
``Sequence[...]``/``list``/``tuple`` (a string is refused), ``Any``, and ``X | None``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence as AbcSequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from trackbridge.secrets import is_secret_option, masked, strip_secrets

_METADATA_KEY = "trackbridge"
T = TypeVar("T", bound="PluginOptions")


@dataclass(frozen=True)
class OptionSpec:
    """What ``option(...)`` declared about one option, beside its type and default."""

    doc: str = ""
    #: A credential: never pickled, never in a repr or log.
    secret: bool = False
    #: The only values allowed.
    choices: tuple[Any, ...] | None = None
    #: Called with the given value before the type check; returns the value to keep (may raise).
    convert: Callable[[Any], Any] | None = None
    #: Called with the converted value; raises ``ValueError`` (or ``TypeError``) when it is not acceptable.
    check: Callable[[Any], None] | None = None


def option(
    default: Any = None,
    *,
    doc: str = "",
    secret: bool = False,
    choices: tuple[Any, ...] | None = None,
    convert: Callable[[Any], Any] | None = None,
    check: Callable[[Any], None] | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare one option of a ``PluginOptions`` dataclass (see the module docstring)."""
    metadata = {_METADATA_KEY: OptionSpec(doc, secret, choices, convert, check)}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _accepts(tp: Any, value: Any) -> bool:
    """Does ``value`` fit the annotation ``tp``? (The small subset of typing that options use.)"""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    base = origin or tp
    if base in (dict, AbcMapping, typing.Mapping):
        return isinstance(value, AbcMapping)
    if base in (list, tuple, AbcSequence, typing.Sequence, frozenset, set):
        return isinstance(value, (list, tuple, set, frozenset)) and not isinstance(value, str)
    if isinstance(base, type):
        return isinstance(value, base)
    return True  # an annotation this checker does not know: trust it


def _describe_type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return "None"
    return _type_name(origin or tp)


@dataclass(frozen=True)
class PluginOptions:
    """Base of a plugin's declared options (a frozen dataclass: picklable, comparable, immutable)."""

    #: Names that are not options, with the reason given when a user passes one (e.g. values the plugin
    #: sets itself per trial).
    reserved: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field[Any]]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def spec(cls, name: str) -> OptionSpec:
        field = cls.fields()[name]
        spec = field.metadata.get(_METADATA_KEY)
        return spec if isinstance(spec, OptionSpec) else OptionSpec()

    @classmethod
    def parse(cls: type[T], plugin: str, given: Mapping[str, Any]) -> T:
        """Validate ``given`` (the user's keyword options) and build the options; raises ``TypeError`` for an
        unknown name or a wrong type and ``ValueError`` for a value outside what the option allows."""
        known = cls.fields()
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for name, value in given.items():
            if name in cls.reserved:
                raise ValueError(f"option {name!r} of plugin {plugin!r} is not allowed: {cls.reserved[name]}")
            if name not in known:
                raise TypeError(unknown_option_message(plugin, name, sorted(set(known) - set(cls.reserved))))
            spec = cls.spec(name)
            if spec.convert is not None and value is not None:
                try:
                    value = spec.convert(value)
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"option {name!r} of plugin {plugin!r}: {exc}") from exc
            tp = hints.get(name, Any)
            if not _accepts(tp, value):
                raise TypeError(
                    f"option {name!r} of plugin {plugin!r} must be {_describe_type(tp)}, got {type(value).__name__}"
                )
            if spec.choices is not None and value not in spec.choices:
                allowed = ", ".join(map(repr, spec.choices))
                raise ValueError(f"option {name!r} of plugin {plugin!r} must be one of {allowed}; got {value!r}")
            if spec.check is not None:
                try:
                    spec.check(value)
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"option {name!r} of plugin {plugin!r}: {exc}") from exc
            values[name] = value
        return cls(**values)

    def secret_names(self) -> set[str]:
        """Options that hold credentials: declared ``secret=True``, or named like one (``secrets.is_secret_option``)."""
        return {name for name in self.fields() if self.spec(name).secret or is_secret_option(name)}

    def without_secrets(self: T) -> T:
        """The copy that may be pickled (``tuner.pkl``): secrets reset to their defaults (None when an option
        has none), secret keys of dict options dropped, credentials in URIs stripped (``secrets.strip_secrets``:
        also inside dicts and lists)."""
        secret = self.secret_names()
        changes: dict[str, Any] = {}
        for name, field in self.fields().items():
            value = getattr(self, name)
            if name in secret:
                if field.default_factory is not dataclasses.MISSING:
                    clean = field.default_factory()
                else:
                    clean = None if field.default is dataclasses.MISSING else field.default
            else:
                clean = strip_secrets(value)
            if clean != value:
                changes[name] = clean
        return dataclasses.replace(self, **changes) if changes else self

    def for_plugin_process(self: T) -> T:
        """The options a plugin's own process (``isolate=``) is built with, taken in the driver when that
        process starts. All of them, secrets included: they travel over the socket to that process only,
        never to disk. A plugin's options may override this to add what only the driver can know (the
        TensorBoard plugin: whether Tune's own TensorBoard logger is suppressed). Default: these options."""
        return self

    def public(self) -> dict[str, Any]:
        """The options as a dict fit for logs and reprs: secrets shown as ``***``, URIs masked, also inside
        dict and list options (``secrets.masked``)."""
        secret = self.secret_names()
        out: dict[str, Any] = {}
        for name in self.fields():
            value = getattr(self, name)
            out[name] = "***" if name in secret and value is not None else masked(value)
        return out


def unknown_option_message(plugin: str, name: str, valid: list[str]) -> str:
    """``unknown option 'trackinguri' for plugin 'mlflow'; did you mean 'tracking_uri'? (valid options: ...)``"""
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown option {name!r} for plugin {plugin!r}{hint} (valid options: {', '.join(valid) or 'none'})"
