from __future__ import annotations

from trackbridge import hookimpl


class WandbPlugin:
    name = "wandb"
    requires = ("wandb",)
    install_hint = 'pip install "trackbridge[wandb]"'

    def __init__(self, **options) -> None:
        self.options = options

    @hookimpl
    def trackbridge_setup(self) -> None:
        import wandb  # noqa: F401
