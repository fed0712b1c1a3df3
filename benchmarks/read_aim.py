"""Read an Aim repo with Aim's own reader, in a process of its own, and print what it holds as one JSON line.

    python -m benchmarks.read_aim REPO

Aim 3.29's ``Repo.iter_runs()`` (like ``query_runs`` and the UI) reads runs through the repo's index, which
the SDK does not update while it writes: only ``aim up`` and ``aim storage reindex`` do (TrackBridge's plugin
indexes each run itself, ``index_runs=True``). So the output counts the runs on disk (``meta/chunks``, what
``aim storage reindex`` indexes) next to the runs the index shows; ``benchmarks.verify.check_aim`` reindexes
with Aim's CLI and reads again when they differ.

A process of its own: Aim keeps ``Repo`` objects (and what they have read) per path for the life of a
process, and the benchmark's parent reads many repos.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def read(path: str) -> dict[str, Any]:
    from aim import Repo

    repo = Repo(path)
    try:
        runs = []
        for run in repo.iter_runs():
            series = {}
            for seq in run.metrics():
                steps, (values, _epochs, _times) = seq.data.items_list()
                name = seq.name if not seq.context.to_dict() else f"{seq.name}{json.dumps(seq.context.to_dict())}"
                series[name] = [
                    [int(s), float(v)] for s, v in zip(steps, values, strict=True) if not math.isnan(float(v))
                ]
            runs.append({"hash": run.hash, "trial_id": run.get("trial_id"), "series": series})
        return {"on_disk": len(repo._all_run_hashes()), "runs": runs}  # the hashes `aim storage reindex` indexes
    finally:
        repo.close()


if __name__ == "__main__":
    print(json.dumps(read(sys.argv[1])))
