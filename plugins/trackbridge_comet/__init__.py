"""TrackBridge's Comet plugin: every Tune trial as one Comet experiment (see docs/comet.md).

Offline archives (uploaded later with ``comet upload``) unless an API key is configured. Modules: ``plugin``
(the hooks, on the ``TrackerPlugin`` base), ``options`` (the declared options), ``experiments`` (a trial's
experiment key, its configuration, opening it), ``archives`` (where offline archives go and what becomes of
each), ``values`` (metric numbers, parameters, asset names within Comet's limits), ``quiet`` (Comet's INFO
console lines). comet_ml itself is imported lazily, in ``trackbridge_setup``.
"""

from __future__ import annotations

from trackbridge_comet.plugin import CometPlugin

__all__ = ["CometPlugin"]
