from __future__ import annotations

from trackbridge import hookimpl


class TensorBoardPlugin:
    name = "tensorboard"
    requires = ("tensorboardX",)
    install_hint = 'pip install "trackbridge[tensorboard]"'

    def __init__(self, **options) -> None:
        self.options = options

    @hookimpl
    def trackbridge_setup(self) -> None:
        import tensorboardX  # noqa: F401
