"""The callback's own options, validated once on the user's thread (plugin options live with each plugin)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from trackbridge.transport import DeliveryOptions

#: ``isolate="auto"``: the plugins decide (``TrackerPlugin.prefers_own_process``).
AUTO = "auto"


@dataclass(frozen=True)
class CallbackSettings:
    """Everything ``TrackBridgeCallback(...)`` takes besides ``plugins`` (see its docstring)."""

    excludes: tuple[str, ...] = ()
    include_auto_metrics: bool = False
    redact_enabled: bool = True
    #: Patterns added to ``secrets.SECRET_PATTERNS`` for config redaction.
    redact_extra: tuple[str, ...] = ()
    delivery: DeliveryOptions = DeliveryOptions()
    drain_timeout: float | None = 600.0
    fail_fast: bool = False
    #: Names of the plugins that run in processes of their own (with ``isolate_auto``: ignored).
    isolate: tuple[str, ...] = ()
    #: ``isolate="auto"``: each plugin whose class sets ``prefers_own_process`` runs in a process of its own.
    #: (False in the settings of a callback pickled before this option: they keep their explicit choice.)
    isolate_auto: bool = False
    #: At a trial's end, how long to wait for the values it logged inside (``trackbridge.log``) to arrive.
    log_drain_timeout: float = 10.0


def parse_settings(
    plugin_names: Sequence[str],
    *,
    excludes: Iterable[str] = (),
    include_auto_metrics: bool = False,
    redact: bool | Sequence[str] = True,
    queue_size: int = 10_000,
    flush_interval: float = 0.5,
    drain_timeout: float | None = 600.0,
    stuck_timeout: float = 300.0,
    max_retries: int = 3,
    retry_backoff: float = 0.5,
    fail_fast: bool = False,
    isolate: bool | str | Iterable[str] = "auto",
    log_drain_timeout: float = 10.0,
) -> CallbackSettings:
    """Validate the callback's options; raises ``TypeError``/``ValueError`` naming the bad one."""
    if isinstance(redact, str):
        raise TypeError("trackbridge: redact= takes True, False or a list of glob patterns")
    redact_enabled = redact is not False and redact is not None
    redact_extra = () if isinstance(redact, bool) or redact is None else tuple(str(p) for p in redact)
    if queue_size < 1:
        raise ValueError("trackbridge: queue_size must be at least 1")
    if log_drain_timeout < 0:
        raise ValueError("trackbridge: log_drain_timeout must not be negative")
    if flush_interval < 0:
        raise ValueError("trackbridge: flush_interval must not be negative")
    names = list(plugin_names)
    isolate_auto = isolate == AUTO
    if isolate_auto:
        isolated: tuple[str, ...] = ()
    elif isolate is True:
        isolated = tuple(names)
    elif not isolate:
        isolated = ()
    else:
        requested = [isolate] if isinstance(isolate, str) else list(isolate)
        unknown = sorted(set(requested) - set(names))
        if unknown:
            raise ValueError(f"trackbridge: isolate= names {unknown} that are not among the plugins {names}")
        isolated = tuple(requested)
    return CallbackSettings(
        excludes=tuple(str(e) for e in excludes),
        include_auto_metrics=bool(include_auto_metrics),
        redact_enabled=redact_enabled,
        redact_extra=redact_extra,
        delivery=DeliveryOptions(
            queue_size=int(queue_size),
            flush_interval=float(flush_interval),
            stuck_timeout=float(stuck_timeout),
            max_retries=int(max_retries),
            retry_backoff=float(retry_backoff),
        ),
        drain_timeout=drain_timeout,
        fail_fast=bool(fail_fast),
        isolate=isolated,
        isolate_auto=isolate_auto,
        log_drain_timeout=float(log_drain_timeout),
    )


def isolated_names(settings: CallbackSettings, plugins: Iterable[Any]) -> tuple[str, ...]:
    """The plugins (``loading.LoadedPlugin``) of a run that get processes of their own: those named by
    ``isolate=``, or under ``isolate="auto"`` those whose class sets ``prefers_own_process``."""
    if not settings.isolate_auto:
        return settings.isolate
    return tuple(p.name for p in plugins if getattr(p.obj, "prefers_own_process", False) is True)
