from __future__ import annotations

from trackbridge import hookimpl


class MlflowPlugin:
    name = "mlflow"
    requires = ("mlflow",)
    install_hint = 'pip install "trackbridge[mlflow]"'

    def __init__(self, **options) -> None:
        self.options = options

    @hookimpl
    def trackbridge_setup(self) -> None:
        import mlflow  # noqa: F401
