"""TrackBridge's MLflow plugin: every Tune trial as one MLflow run (see docs/mlflow.md).

Modules: ``plugin`` (the hooks, on the ``TrackerPlugin`` base), ``options`` (the declared options),
``writer`` (a run's params, config changes, tags and end), ``limits`` (MLflow's name and value limits and how
keys are sanitised), ``buffer`` (batched metric writes with bounded retries), ``store`` (client, experiment,
finding a trial's existing run), ``held`` (the points a reopened run already holds, not logged again). MLflow
itself is imported lazily, in ``trackbridge_setup``.
"""

from __future__ import annotations

from trackbridge_mlflow.plugin import MlflowPlugin

__all__ = ["MlflowPlugin"]
