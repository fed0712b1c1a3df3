"""``TrackerPlugin``: the optional base every first-party plugin uses, and any third-party plugin may.

What it gives a plugin, so that no plugin writes it again:

- **Declared options** (``Options``, a ``PluginOptions`` dataclass): ``MyPlugin(**options)`` validates them
  in one format (unknown names with a "did you mean", types, choices, checks) on the user's thread.
- **One secrets rule for pickling**: Tune pickles the callback, and with it plugin objects, into
  ``tuner.pkl``. Only ``options.without_secrets()`` is pickled; everything else is per-process state,
  created again by ``reset_state()`` after unpickling.
- **A whole copy for its own process** (``isolate=``): ``process_state()`` is what pickling carries, but
  with every option, secrets included (``options.for_plugin_process()``); the plugin's process receives it
  over a socket, never through a file, and rebuilds the plugin with ``from_process_state()``.
- **A logger and a warn-once counter** named after the plugin (``self.log``, ``self.warn``).
- **Hints for tools**: ``offline_options(directory)`` (how ``trackbridge demo`` runs the tracker with no
  account, server or network), ``checkpoint_option`` (the option that stores checkpoints as artifacts),
  ``view_command(experiment)`` (how a user looks at what was stored), ``stored_summary(experiment)`` (what
  the tracker holds, read back, for the demo's table) and ``companion_callbacks()`` (Tune callbacks that
  should run next to ``TrackBridgeCallback``).

Hooks are still plain methods marked ``@hookimpl``; the base implements none of them.
"""

from __future__ import annotations

import logging
import typing
from typing import Any, ClassVar, Generic, Self, TypeVar

from trackbridge.events import ExperimentInfo
from trackbridge.options import PluginOptions
from trackbridge.stored_summary import StoredSummary
from trackbridge.values import WarnOnce

OptionsT = TypeVar("OptionsT", bound=PluginOptions)


class TrackerPlugin(Generic[OptionsT]):
    """Base class for a tracker plugin (optional; see the module docstring)::

    @dataclass(frozen=True)
    class AcmeOptions(PluginOptions):
        project: str = option("default", doc="the Acme project")

    class AcmePlugin(TrackerPlugin[AcmeOptions], name="acme", requires=("acme_sdk",)):
        def reset_state(self) -> None:
            super().reset_state()
            self.runs = {}

        @hookimpl
        def trackbridge_trial_start(self, trial): ...
    """

    #: The name users give in ``plugins=[...]`` (the entry-point name).
    name: ClassVar[str] = ""
    #: Importable modules the plugin needs; checked before it is constructed.
    requires: ClassVar[tuple[str, ...]] = ()
    #: What to install when one of ``requires`` is missing (default: ``pip install "trackbridge[<name>]"``).
    install_hint: ClassVar[str | None] = None
    #: The plugin's declared options (taken from ``TrackerPlugin[TheOptions]``).
    Options: ClassVar[type[PluginOptions]] = PluginOptions
    #: True when what ``trackbridge_flush`` wrote survives the driver being killed; False for a tracker that
    #: keeps writes in a buffer of its own (the delivery journal then counts a trial's results as stored only
    #: once its run completed). See ``trackbridge.journal``.
    durable_after_flush: ClassVar[bool] = True
    #: True when the tracker's SDK does much Python work per value (building SQL or protobufs in the calling
    #: process): with the callback's default ``isolate="auto"`` the plugin then runs in a process of its own,
    #: so that work never holds the interpreter lock of Tune's driver. False: a thread of the driver (cheaper
    #: to start; right for SDKs that hand their work to a process of their own, like W&B's ``wandb-core``).
    prefers_own_process: ClassVar[bool] = False
    #: The boolean option that stores Tune's checkpoints as artifacts (``trackbridge demo`` turns it on);
    #: None when the tracker keeps no checkpoints.
    checkpoint_option: ClassVar[str | None] = None

    options: OptionsT
    log: logging.Logger
    warn: WarnOnce

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        requires: tuple[str, ...] | None = None,
        install_hint: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``class P(TrackerPlugin[POptions], name="p", requires=("p_sdk",))``: the class attributes of the same
        names may be set in the class body instead."""
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
        if requires is not None:
            cls.requires = tuple(requires)
        if install_hint is not None:
            cls.install_hint = install_hint
        for base in cls.__dict__.get("__orig_bases__", ()):
            if typing.get_origin(base) is TrackerPlugin:
                (declared,) = typing.get_args(base)
                if isinstance(declared, type) and issubclass(declared, PluginOptions):
                    cls.Options = declared

    def __init__(self, **options: Any) -> None:
        # Construction only validates and stores: Tune pickles the plugin before the run.
        self.options = typing.cast(OptionsT, self.Options.parse(self.name or type(self).__name__, options))
        self.reset_state()

    def reset_state(self) -> None:
        """Create the per-process state (handles, open runs, counters). Called after construction and after
        unpickling; never pickled. Override it, calling ``super().reset_state()`` first."""
        self.log = logging.getLogger(f"trackbridge.{self.name or type(self).__name__}")
        self.warn = WarnOnce(self.name or type(self).__name__, self.log)

    # ------------------------------------------------------------------ pickling (tuner.pkl)
    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options.without_secrets()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.options = state["options"]
        self.reset_state()

    # ------------------------------------------------------------------ a process of its own (isolate=)
    def process_state(self) -> dict[str, Any]:
        """What this plugin's own process (``isolate=``) is built from: the state pickling carries, except that
        the options are all there (``options.for_plugin_process()``: secrets included). Taken in the driver
        when the process starts and sent to it over a socket only; never pickled into a file."""
        state = self.__getstate__()
        state["options"] = self.options.for_plugin_process()
        return state

    @classmethod
    def from_process_state(cls, state: dict[str, Any]) -> Self:
        """The plugin rebuilt in its own process from ``process_state()`` (as unpickling would rebuild it)."""
        plugin = cls.__new__(cls)
        plugin.__setstate__(state)
        return plugin

    def __repr__(self) -> str:
        """The options that differ from their defaults, secrets shown as ``***`` and URIs masked."""
        try:
            defaults: Any = type(self.options)()
        except TypeError:  # an option without a default: show everything
            defaults = None
        shown = ", ".join(
            f"{k}={v!r}"
            for k, v in self.options.public().items()
            if defaults is None or getattr(self.options, k) != getattr(defaults, k)
        )
        return f"{type(self).__name__}({shown})"

    # ------------------------------------------------------------------ hints for tools
    @classmethod
    def offline_options(cls, directory: str) -> dict[str, Any]:
        """Options that make the tracker write under ``directory`` with no account, server or network
        (``trackbridge demo`` uses them). Default: no options."""
        return {}

    def tracker_destination(self) -> str | None:
        """Where this plugin's tracker keeps runs (a tracking URI, a project, a directory; credentials are
        masked), or None. TrackBridge keeps one delivery journal per plugin and destination, so a replay into a
        second store never takes the first store's record for its own. Called on the plugin's delivery
        thread at each experiment start."""
        return None

    def view_command(self, experiment: ExperimentInfo | None) -> str | None:
        """A shell command that shows what this plugin stored for ``experiment`` (None: nothing to suggest)."""
        return None

    def stored_summary(self, experiment: ExperimentInfo) -> StoredSummary | None:
        """What the tracker holds for ``experiment``, read back with the tracker's own reader from where this
        plugin's options say it writes (so it works in any process, after ``fit()``); None: not supported.
        ``trackbridge demo`` prints it as a table."""
        return None

    def companion_callbacks(self) -> list[Any]:
        """Ray Tune callbacks to pass next to ``TrackBridgeCallback`` (e.g. one that keeps Tune's own logger
        for the same tracker from writing everything twice). Default: none."""
        return []
