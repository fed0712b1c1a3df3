"""The conformance kit as pytest tests, for plugin authors. Opt in from your ``conftest.py``::

    pytest_plugins = ["trackbridge.testing.pytest_plugin"]

then subclass ``PluginConformance`` in a test module::

    from trackbridge.testing import StoredRuns
    from trackbridge.testing.pytest_plugin import PluginConformance

    class TestAcmeConformance(PluginConformance):
        plugin = "acme"                              # the entry-point name, or a callable directory -> plugin

        def plugin_options(self, directory):         # options of each scenario's fresh plugin (by name)
            return {"root": str(directory / "acme")}

        def read_back(self, directory) -> StoredRuns:  # what your tracker stored, read with its own API
            ...

Each scenario of the kit becomes a test of its own (``test_scenario[lifecycle]``, ...), failing with what
the plugin did wrong; ``test_real_tune_run`` runs one small real Tune experiment through the plugin and
reads it back the same way. Set ``read_back = None`` to check only that no hook fails (not recommended:
a plugin that stores nothing passes). The module is not registered through ``pytest11``, so it never
loads into a test session that did not ask for it.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trackbridge.testing.conformance import DESCRIPTIONS, SCENARIOS, run_scenario
from trackbridge.testing.stored import Reader, StoredRuns


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "trackbridge_tune: a conformance test that starts a real Ray Tune run")


def pytest_report_header(config: pytest.Config) -> str:
    try:
        version = importlib.metadata.version("trackbridge")
    except importlib.metadata.PackageNotFoundError:
        version = "(not installed)"
    return f"trackbridge {version}: conformance kit with scenarios {', '.join(SCENARIOS)}"


@pytest.fixture(scope="session")
def trackbridge_ray() -> Iterator[None]:
    """A Ray session with 2 CPUs for the whole test session (Ray already running is used as it is)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    if started:
        ray.shutdown()


class PluginConformance:
    """Subclass it as ``Test...``; set ``plugin`` and define ``read_back`` (see the module docstring)."""

    #: The plugin: its entry-point name (built with ``plugin_options(directory)``), or a callable
    #: ``directory -> plugin object``.
    plugin: str | Callable[[Path], Any] | None = None
    #: Seconds each scenario's plugin has to finish its hooks before it is reported stuck.
    timeout: float = 60.0

    def plugin_options(self, directory: Path) -> dict[str, Any]:
        """Options for the plugin named by ``plugin``, writing under ``directory`` (a fresh one per scenario)."""
        return {}

    def make_plugin(self, directory: Path) -> Any:
        """A fresh plugin object writing under ``directory``."""
        if isinstance(self.plugin, str):
            from trackbridge.loading import construct

            return construct(self.plugin, self.plugin_options(directory))
        factory = inspect.getattr_static(self, "plugin")  # a function in the class body is not bound to self
        if isinstance(factory, staticmethod | classmethod):
            factory = factory.__get__(None, type(self))
        if callable(factory):
            return factory(directory)
        pytest.fail(
            f"{type(self).__name__}: set `plugin = '<entry-point name>'` (or a callable directory -> plugin object)",
            pytrace=False,
        )

    def read_back(self, directory: Path) -> StoredRuns:
        """What the tracker stored under ``directory``, read with the tracker's own API."""
        pytest.fail(
            f"{type(self).__name__}: define `read_back(self, directory) -> StoredRuns` reading what your tracker "
            "stored (or set `read_back = None` to check only that no hook fails)",
            pytrace=False,
        )

    def _reader(self) -> Reader | None:
        reader: Reader | None = self.read_back
        return reader

    @pytest.mark.parametrize("scenario", list(SCENARIOS))
    def test_scenario(self, scenario: str, tmp_path: Path) -> None:
        result = run_scenario(scenario, self.make_plugin, self._reader(), tmp_path / scenario, timeout=self.timeout)
        if not result.ok:
            problems = "\n".join(f"  - {p}" for p in result.problems)
            pytest.fail(
                f"the plugin fails the conformance scenario {scenario!r}\n"
                f"  scenario: {DESCRIPTIONS.get(scenario, '')}\n{problems}",
                pytrace=False,
            )

    @pytest.mark.trackbridge_tune
    def test_real_tune_run(self, trackbridge_ray: None, tmp_path: Path) -> None:
        from trackbridge.testing.tune_run import tune_run_check

        problems = tune_run_check(self.make_plugin, self._reader(), tmp_path / "tune_run")
        if problems:
            listed = "\n".join(f"  - {p}" for p in problems)
            pytest.fail(f"the plugin fails a small real Tune run (2 trials, one failing)\n{listed}", pytrace=False)
