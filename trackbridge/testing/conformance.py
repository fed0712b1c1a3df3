"""The conformance kit: drive a tracker plugin through the lifecycles the hook contract promises, without
Ray, and check that it neither fails nor loses anything.

    from trackbridge.testing.conformance import StoredRuns, check_plugin

    def read_back(directory) -> StoredRuns:          # what YOUR tracker stored, read with its own API
        ...

    def test_my_plugin_conforms(tmp_path):
        report = check_plugin(lambda d: MyPlugin(root=str(d)), read_back, tmp_path)
        assert report.ok, report.summary()

Each scenario (``SCENARIOS``, described in ``DESCRIPTIONS``) gets a fresh directory and a fresh plugin from
your factory. The kit checks, per scenario, that no hook raised (naming the hook, the exception and the
values), that the plugin finished within ``timeout`` seconds (naming the hook it was stuck in), and, when
``read_back`` is given, that each trial is one run holding metric ``loss`` at exactly the steps sent,
ending with the status sent (if your reader reports statuses), and (if your reader fills ``logged_steps``)
the values logged inside the trial at exactly their own steps.

For pytest, ``trackbridge.testing.pytest_plugin`` turns each scenario into a test of its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from trackbridge.testing.scenarios import DESCRIPTIONS, ODD_VALUES, SCENARIOS, Context, PluginFactory
from trackbridge.testing.stored import Reader, StoredRuns

__all__ = [
    "DESCRIPTIONS",
    "ODD_VALUES",
    "SCENARIOS",
    "ConformanceReport",
    "PluginFactory",
    "Reader",
    "ScenarioResult",
    "StoredRuns",
    "check_plugin",
    "run_scenario",
]


@dataclass
class ScenarioResult:
    name: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ConformanceReport:
    results: list[ScenarioResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def summary(self) -> str:
        lines = []
        for r in self.results:
            lines.append(f"{'ok  ' if r.ok else 'FAIL'} {r.name}")
            lines += [f"       {p}" for p in r.problems]
        return "\n".join(lines)


def run_scenario(
    name: str, make_plugin: PluginFactory, read_back: Reader | None, directory: Path, *, timeout: float = 60.0
) -> ScenarioResult:
    """Run one scenario in ``directory`` (created empty); never raises for what the plugin does."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown conformance scenario {name!r}; the scenarios are: {', '.join(SCENARIOS)}")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    ctx = Context(make_plugin, read_back, directory, timeout)
    try:
        SCENARIOS[name](ctx)
    except Exception as exc:  # the kit reports, it does not crash the author's test run half-way
        ctx.problems.append(f"raised {type(exc).__name__}: {exc}")
    return ScenarioResult(name, ctx.problems)


def check_plugin(
    make_plugin: PluginFactory,
    read_back: Reader | None,
    workdir: Path | str,
    *,
    scenarios: Iterable[str] | None = None,
    timeout: float = 60.0,
) -> ConformanceReport:
    """Run the conformance scenarios; ``make_plugin(directory)`` builds a fresh plugin writing under it.

    ``timeout``: seconds each scenario's plugin has to finish its hooks (a plugin still in a hook then is
    reported as stuck in it, and left behind on its daemon thread)."""
    root = Path(workdir)
    chosen = list(scenarios) if scenarios is not None else list(SCENARIOS)
    unknown = [n for n in chosen if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown conformance scenario(s) {unknown}; the scenarios are: {', '.join(SCENARIOS)}")
    return ConformanceReport(
        [
            run_scenario(name, make_plugin, read_back, root / name, timeout=timeout)
            for name in SCENARIOS
            if name in chosen
        ]
    )
