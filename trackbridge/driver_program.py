"""The driver's program, shown to tracker SDKs that run in an isolated plugin's process.

Tracker SDKs record which program produced a run: MLflow's ``mlflow.source.name`` tag is ``sys.argv[0]``,
W&B's "program" is ``__main__.__file__`` (or ``-m <module>``), with ``sys.argv[1:]`` as its arguments. In an
isolated plugin's process (``isolate=...``) those would name ``trackbridge.process_transport`` instead of the
user's script. ``DriverProgram.here()`` captures them in the driver; ``present()`` sets them in the child before the
plugin is loaded, so every tracker names the user's script exactly as it does when the plugin runs in the
driver.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class DriverProgram:
    """What identifies the running program: its command line and its main module."""

    argv: tuple[str, ...]
    #: ``__main__.__file__`` when the driver ran a script, None in a notebook or an interactive session.
    main_file: str | None
    #: ``__main__.__spec__.name`` when the driver ran ``python -m <module>``, else None.
    main_module: str | None

    @classmethod
    def here(cls) -> DriverProgram:
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        return cls(
            argv=tuple(sys.argv),
            main_file=getattr(main, "__file__", None),
            main_module=getattr(spec, "name", None),
        )

    def present(self) -> None:
        """Make this process look like the driver's program to code that inspects ``sys.argv`` and ``__main__``.

        Only for the isolated plugin's process, which runs no user code of its own: its own main module has
        already started, so changing what ``__main__`` reports changes nothing it does.
        """
        sys.argv[:] = list(self.argv)
        main = sys.modules["__main__"]
        if self.main_file is None:
            if hasattr(main, "__file__"):
                del main.__file__
        else:
            main.__file__ = self.main_file
        if self.main_module is None:
            main.__spec__ = None
        else:
            # W&B only reads the spec's name; a spec whose name is the driver's module says "-m <module>".
            from importlib.machinery import ModuleSpec

            main.__spec__ = ModuleSpec(self.main_module, None)
