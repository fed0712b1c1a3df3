"""TrackBridge's Comet plugin: every Tune trial as one Comet experiment (see docs/comet.md).

Offline archives (uploaded later with ``comet upload``) unless an API key is configured. Modules: ``plugin``
(the hooks, on the ``TrackerPlugin`` base), ``options`` (the declared options), ``modes`` (online or offline,
durability, the mode kept across ``Tuner.restore``), ``experiments`` (a trial's experiment key, its
configuration, opening and ending it, API keys kept out of errors), ``archives`` (where offline archives go
and what becomes of each), ``values`` (metric numbers, parameters, asset and model names within Comet's
limits), ``quiet`` (Comet's INFO console lines, API keys masked in them). comet_ml itself is imported lazily,
in ``trackbridge_setup``.
"""

from __future__ import annotations

from trackbridge_comet.plugin import CometPlugin

__all__ = ["CometPlugin"]
