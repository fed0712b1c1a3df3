"""The benchmark harness still runs and still verifies what the trackers stored (a tiny smoke run).

Performance itself is shown by ``python -m benchmarks.compare`` (docs/performance.md), never asserted here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The smoke runs: the arguments of their ``python -m benchmarks.compare`` (``--out-dir`` added).
SMOKE_RUNS = {
    # none, the do-nothing callback, tb-all and the optimized floor (fast-*), then the goals: no large run
    "compare": (
        "--configs none-callback,tb-all --trials 1 --results 5 --repeats 1 --no-direct --no-bridge --no-large".split()
    ),
    "in_trial": (
        "--in-trial-logs 2 --configs tb-all --no-results-only --trials 1 --results 3 --repeats 1 --cpus 2".split()
    ),
}


@dataclass
class SmokeRun:
    process: subprocess.Popen
    out_dir: Path
    log: Path

    def finish(self, timeout: float = 600) -> tuple[int, str]:
        """Wait for the run to end: its exit code and its output (stdout and stderr)."""
        returncode = self.process.wait(timeout=timeout)
        return returncode, self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def smoke_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The smoke runs whose tests were collected, all started when the first of those tests starts. Each run is
    a few child processes that spend much of their time waiting (on Ray's start, on Tune's trial actors): side
    by side they end sooner than one after the other."""
    runs: dict[str, SmokeRun] = {}
    for name, args in SMOKE_RUNS.items():
        if not any(f"{name}_smoke_run" in getattr(item, "fixturenames", ()) for item in request.session.items):
            continue
        out_dir = tmp_path_factory.mktemp(f"{name}_smoke_run")
        log = out_dir.parent / f"{out_dir.name}.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.compare", *args, "--out-dir", str(out_dir)],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,  # stopped with its children if its test ends before it does
            )
        runs[name] = SmokeRun(process, out_dir, log)
    yield runs
    for run in runs.values():
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait()


@pytest.fixture
def compare_smoke_run(smoke_runs: dict) -> SmokeRun:
    return smoke_runs["compare"]


@pytest.fixture
def in_trial_smoke_run(smoke_runs: dict) -> SmokeRun:
    return smoke_runs["in_trial"]


def test_compare_smoke_run_verifies_every_tracker_and_the_fast_floor_and_prints_the_goals(compare_smoke_run):
    returncode, output = compare_smoke_run.finish()
    assert returncode == 0, output[-6000:]
    out_dir = compare_smoke_run.out_dir
    [table] = out_dir.glob("compare-1x5.md")
    text = table.read_text()
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    row = next(line for line in lines if "`tb-all`" in line)
    assert "wandb 60/60, mlflow 60/60, tb 60/60" in row and row.rstrip(" |").endswith("ok"), row
    # the optimized floor: each tracker alone, read back like the others
    for tracker, short in (("mlflow", "mlflow"), ("tensorboard", "tb"), ("wandb", "wandb")):
        fast = next(line for line in lines if f"`fast-{tracker}`" in line)
        assert f"{short} 60/60" in fast and fast.rstrip(" |").endswith("ok"), fast
    # each ratio names its baseline
    assert "fit() x no tracking (`none`)" in lines[0], lines[0]
    assert "driver peak x do-nothing callback (`none-callback`)" in lines[0], lines[0]
    assert "## Goals" in text
    # the goals, printed at the end and written; the smoke size is not the goal workload
    goal_lines = output[output.rindex("goals: ") :].splitlines()
    assert any(g.startswith(("PASS  time at 1x5", "FAIL  time at 1x5")) for g in goal_lines), goal_lines
    assert any(g.startswith("PASS  every value stored at 1x5") for g in goal_lines), goal_lines
    assert any(g.startswith("SKIP  time at 16x2000") for g in goal_lines), goal_lines
    assert "(target <= 1.30x) (measured at 1x5, not the goal's 4x200)" in output
    goals = json.loads((out_dir / "goals-1x5.json").read_text())["goals"]
    memory = next(g for g in goals if g["name"].startswith("driver memory at 1x5"))
    assert memory["status"] in ("PASS", "FAIL") and "MiB /" in memory["measured"], memory
    assert {g["status"] for g in goals} <= {"PASS", "FAIL", "SKIP"}


def test_in_trial_smoke_run_times_the_calls_and_verifies_every_in_trial_point(in_trial_smoke_run):
    returncode, output = in_trial_smoke_run.finish()
    assert returncode == 0, output[-6000:]
    out_dir = in_trial_smoke_run.out_dir
    [table] = out_dir.glob("in-trial-1x3x2.md")
    lines = [line for line in table.read_text().splitlines() if line.startswith("| ")]
    baseline = next(line for line in lines if "(`none`)" in line)
    assert "0 (2 do-nothing calls)" in baseline and baseline.rstrip(" |").endswith("ok"), baseline
    row = next(line for line in lines if "`tb-all`" in line)
    # 1 trial x 3 results x 12 metrics; 1 x 3 x 2 calls x 3 in-trial metrics, read back from each tracker
    assert "wandb 36/36, mlflow 36/36, tb 36/36" in row and "wandb 18/18, mlflow 18/18, tb 18/18" in row, row
    assert row.rstrip(" |").endswith("ok"), row
    [run] = [r for r in json.loads((out_dir / "in-trial-1x3x2.json").read_text())["runs"] if r["in_trial_call"]]
    assert run["call_us_median"] > 0 and run["call_us_p99"] >= run["call_us_median"]


def test_aim_comet_preset_selects_its_configurations_with_plugin_options_that_parse(tmp_path):
    """``--aim-comet`` (kept out of the default run): its configurations, and TrackBridge's options for them valid
    (parsed without importing aim or comet_ml; the benchmark run itself builds Ray's callbacks)."""
    from benchmarks import compare, configs
    from trackbridge_aim.options import AimOptions
    from trackbridge_comet.options import CometOptions

    args = compare.parse_args(["--aim-comet"])
    assert args.configs == list(configs.AIM_COMET_CONFIGS) and args.no_direct and args.no_bridge
    assert not set(configs.AIM_COMET_CONFIGS) - {"none"} & set(configs.DEFAULT_CONFIGS)
    options = configs.trackbridge_options(str(tmp_path))
    assert AimOptions.parse("aim", options["aim"]).repo == configs.aim_repo(str(tmp_path))
    assert CometOptions.parse("comet", options["comet"]).offline_directory == configs.comet_dir(str(tmp_path))


def test_comet_check_reads_every_metric_message_of_the_offline_archives(tmp_path):
    import zipfile

    from benchmarks import verify
    from benchmarks.workload import metric_names, metric_value

    def archive(name, key, steps, skip=None):
        lines = [json.dumps({"type": "log_other", "payload": {"key": "trial_id", "value": key}})]
        for step in steps:
            for k, metric in enumerate(metric_names(2)):
                if (metric, step) != skip:
                    m = {"metricName": metric, "metricValue": metric_value(step, k), "step": step}
                    lines.append(json.dumps({"type": "metric_msg", "payload": {"metric": m}}))
        with zipfile.ZipFile(tmp_path / name, "w") as z:
            z.writestr("experiment.json", json.dumps({"offline_id": key}))
            z.writestr("messages.json", "\n".join(lines) + "\n")

    archive("a-001.zip", "a", [1, 2])
    archive("a-002.zip", "a", [3])  # one experiment in two archives (a resumed trial)
    archive("b-001.zip", "b", [1, 2, 3], skip=("m01", 2))
    [check] = verify.check_comet(str(tmp_path), trials=2, results=3, num_metrics=2)
    assert (check.runs, check.valid, check.expected, check.complete) == (2, 11, 12, False)
    (tmp_path / "b-001.zip").unlink()
    archive("b-001.zip", "b", [1, 2, 3])
    [check] = verify.check_comet(str(tmp_path), trials=2, results=3, num_metrics=2)
    assert check.complete, check.as_dict()


def test_aim_check_reindexes_a_repo_whose_runs_the_index_does_not_show(tmp_path):
    """As Ray's AimLoggerCallback leaves it: runs written with aim.Run, none indexed."""
    from benchmarks import verify

    write = (
        "import sys\nfrom aim import Run\n"
        "run = Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)\n"
        "for step in (1, 2):\n"
        "    for k in (0, 1):\n"
        "        run.track(step + k / 16, name=f'ray/tune/m{k:02d}', step=step)\n"
        "run.close()\n"
    )
    subprocess.run([sys.executable, "-c", write, str(tmp_path)], check=True, timeout=300)
    [check] = verify.check_aim(str(tmp_path), trials=1, results=2, num_metrics=2)
    assert check.complete and check.valid == 4, check.as_dict()
    assert check.notes == ["0/1 runs indexed; read after `aim storage reindex`"]


def _run(config, fit, trials=4, results=200, driver=300.0, procs=1, mib=40.0, stall=0.03, complete=True):
    from benchmarks.runs import RunResult

    r = RunResult(config, trials, results, 0, ok=True, fit_seconds=fit, driver_peak_mib=driver)
    r.tracker_procs, r.tracker_peak_mib, r.stall_ms_median = procs, mib, stall
    expected = trials * results * 12
    r.checks = [{"tracker": "mlflow", "valid": expected if complete else 1, "expected": expected, "complete": complete}]
    return r


def _rows(trials, results, runs):
    from benchmarks.runs import label
    from benchmarks.tables import Row

    return [Row(r.config, label(r.config), trials, results, [r]) for r in runs]


def test_goals_pass_fail_and_skip_from_the_medians():
    """The goals' arithmetic on made-up runs: ratios to the right baselines, the fast floor's sum, tracker
    processes at two trial counts, a run that lost values failing its goals."""
    from benchmarks import goals

    small = _rows(
        4,
        200,
        [
            _run("none", 10.0, driver=200.0, procs=0, mib=0.0),
            _run("none-callback", 10.5, driver=300.0, procs=0, mib=0.0),
            _run("tb-all", 12.0, driver=330.0),  # 1.2x time, 1.1x memory
        ],
    )
    large = _rows(
        16,
        2000,
        [
            _run("none", 100.0, 16, 2000, driver=200.0, procs=0, mib=0.0),
            _run("none-callback", 100.0, 16, 2000, driver=300.0, procs=0, mib=0.0),
            _run("tb-all", 170.0, 16, 2000, driver=400.0, procs=1, mib=45.0, stall=0.08),  # 1.7x, 1.33x memory
            _run("fast-mlflow", 50.0, 16, 2000),
            _run("fast-tensorboard", 5.0, 16, 2000),
            _run("fast-wandb", 15.0, 16, 2000),  # floor 70 s: added 70 s = 1.00x
        ],
    )
    found = {g.name.split(",")[0]: g for g in goals.evaluate(small, large)}
    assert found["time at 4x200"].status == "PASS" and found["time at 4x200"].measured.startswith("1.20x")
    assert found["time at 16x2000"].status == "FAIL" and found["time at 16x2000"].measured.startswith("1.70x")
    added = found["added time at 16x2000"]
    assert added.status == "PASS" and added.measured.startswith("1.00x (70.00 s added / 70.00 s floor"), added
    assert found["driver memory at 4x200"].status == "PASS" and found["driver memory at 4x200"].measured.startswith(
        "1.10x (330 MiB / 300 MiB)"
    )
    assert found["driver memory at 16x2000"].status == "FAIL"
    assert found["Tune's thread per result at 4x200"].status == "PASS"
    assert found["Tune's thread per result at 16x2000"].status == "FAIL"
    assert found["tracker processes of tb-all not growing with trials"].status == "PASS"
    assert all(not g.note for g in found.values())  # the goal sizes: no "not the goal workload" note

    small[2].runs[0].checks[0].update(valid=1, complete=False)  # tb-all lost values: FAILED, whatever its speed
    found = {g.name.split(",")[0]: g for g in goals.evaluate(small, None, smoke=True)}
    assert found["time at 4x200"].status == "FAIL" and "tb-all FAILED" in found["time at 4x200"].measured
    assert found["every value stored at 4x200"].status == "FAIL"
    assert found["time at 16x2000"].status == "SKIP"
    assert "SKIP" in goals.report(list(found.values()))


def test_sweep_plot_draws_every_panel(tmp_path):
    from benchmarks.sweep import point
    from benchmarks.sweep_plot import plot_sweep

    points = []
    for trials in (2, 4):
        rows = _rows(
            trials,
            10,
            [_run("none", 5.0, trials, 10, procs=0, mib=0.0), _run("tb-all", 6.0, trials, 10)]
            + [_run(f"fast-{t}", 1.0, trials, 10) for t in ("mlflow", "tensorboard", "wandb")],
        )
        here = {row.config: row for row in rows}
        here["tb-all"].runs[0].queue_depth_max = 7
        points += [point(row, here) for row in rows]
    tb = next(p for p in points if p["config"] == "tb-all")
    assert (tb["fit_ratio"], tb["added"], tb["fast_floor"], tb["queue_depth"]) == (1.2, 1.0, 3.0, 7)
    plot_sweep(points, str(tmp_path / "sweep.png"), "smoke")
    assert (tmp_path / "sweep.png").stat().st_size > 10_000


def test_default_workload_and_presets():
    from benchmarks import compare, configs

    args = compare.parse_args([])
    assert (args.trials, args.results, args.metrics, args.checkpoint_every, args.cpus) == (4, 200, 12, 50, 2)
    assert args.repeats >= 3 and args.large and (args.large_trials, args.large_results) == (16, 2000)
    assert {"none-callback", "tb-all-threads", "tb-all-isolated"} <= set(args.configs)
    assert configs._isolation("tb-all") == {}  # tb-all measures the callback's default isolate=
    assert not compare.parse_args(["--configs", "tb-all"]).large
    quick = compare.parse_args(["--quick"])
    assert quick.repeats == 1 and quick.large and quick.large_trials > quick.trials
    cluster = compare.parse_args(["--sweep", "--cluster"])
    assert cluster.cluster_cpus == 16 and max(t for t, _ in cluster.sizes) == 32
