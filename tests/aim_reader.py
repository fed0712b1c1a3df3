"""What an Aim user finds in a repo, read with Aim's own reader (``aim.Repo``).

Through a ``Repo`` object of its own (``Repo(path)``, not the per-process pool of ``Repo.from_path`` that the
writing SDK uses), so it reads what is in the repo's files and index, as a user's ``aim up`` would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _read_runs(path: str) -> list[dict[str, Any]]:
    from aim import Repo

    repo = Repo(path)
    runs = []
    for run in repo.iter_runs():
        series = []
        for seq in run.metrics():
            steps, (values, epochs, _times) = seq.data.items_list()
            series.append(
                {
                    "name": seq.name,
                    "context": seq.context.to_dict(),
                    "kind": "metric",
                    "steps": [int(s) for s in steps],
                    "values": [float(v) for v in values],
                    "epochs": [None if e != e else int(e) for e in epochs],
                }
            )
        for query, kind in (("distributions", "distribution"), ("texts", "text")):
            for seq in getattr(repo, "query_" + query)(f"run.hash == '{run.hash}'", report_mode=0).iter():
                steps, (values, _epochs, _times) = seq.data.items_list()
                shown = [v.data if kind == "text" else v.to_np_histogram()[0].sum().item() for v in values]
                series.append(
                    {
                        "name": seq.name,
                        "context": seq.context.to_dict(),
                        "kind": kind,
                        "steps": [int(s) for s in steps],
                        "values": shown,
                    }
                )
        runs.append(
            {
                "hash": run.hash,
                "name": run.name,
                "experiment": run.experiment,
                "ended": run.end_time is not None,
                "tags": [getattr(t, "name", t) for t in run.props.tags],
                "params": {key: run.get(key) for key in ("hparams", "trial_id", "status", "error", "trackbridge")},
                "series": series,
                "artifacts": sorted(run.artifacts),
            }
        )
    return runs


@dataclass
class AimRun:
    """One run as a user reads it."""

    hash: str
    name: str
    experiment: str
    ended: bool
    tags: list[str]
    params: dict[str, Any]
    series: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)

    @property
    def trial_id(self) -> str:
        return self.params["trial_id"]

    def points(self, name: str, context: dict[str, Any] | None = None, kind: str = "metric") -> list[tuple[int, Any]]:
        """(step, value) of the series ``name`` in ``context`` (``{}``: the empty context), by step."""
        for s in self.series:
            if s["name"] == name and s["context"] == (context or {}) and s["kind"] == kind:
                return sorted(zip(s["steps"], s["values"], strict=True))
        return []

    def contexts(self, name: str) -> list[dict[str, Any]]:
        return [s["context"] for s in self.series if s["name"] == name]

    def names(self) -> set[str]:
        return {s["name"] for s in self.series}


def read_repo(repo: str) -> dict[str, AimRun]:
    """trial id -> its run, for every run in ``repo`` that carries a trial id (one per trial is asserted)."""
    runs: dict[str, AimRun] = {}
    for raw in _read_runs(repo):
        run = AimRun(
            hash=raw["hash"],
            name=raw["name"],
            experiment=raw["experiment"],
            ended=raw["ended"],
            tags=raw["tags"],
            params=raw["params"],
            series=raw["series"],
            artifacts=raw["artifacts"],
        )
        trial_id = run.params.get("trial_id")
        if trial_id is None:
            continue
        assert trial_id not in runs, f"two runs for trial {trial_id}: {runs[trial_id].hash} and {run.hash}"
        runs[trial_id] = run
    return runs
