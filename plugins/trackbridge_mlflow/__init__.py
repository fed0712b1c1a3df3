"""TrackBridge's MLflow plugin: every Tune trial as one MLflow run (see docs/mlflow.md).

Modules: ``plugin`` (the hooks), ``options`` (validated options), ``limits`` (MLflow's name and value
limits and how keys are sanitised), ``buffer`` (batched metric writes with bounded retries), ``store``
(client, experiment, finding a trial's existing run). MLflow itself is imported lazily, in
``trackbridge_setup``.
"""

from trackbridge_mlflow.plugin import MlflowPlugin

__all__ = ["MlflowPlugin"]
