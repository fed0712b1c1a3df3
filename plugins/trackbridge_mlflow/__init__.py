"""TrackBridge's MLflow plugin (work in progress)."""
from trackbridge_mlflow.plugin import MlflowPlugin

__all__ = ["MlflowPlugin"]
