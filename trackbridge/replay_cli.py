"""``trackbridge replay``: the command line around ``replay.replay`` (options, progress bar, summary)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from trackbridge.errors import PluginError
from trackbridge.replay import replay
from trackbridge.report import format_table
from trackbridge.tune_records import NotATuneExperiment


def plugin_options(names: list[str], pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``["mlflow.tracking_uri=sqlite:///m.db"]`` as ``{"mlflow": {"tracking_uri": "sqlite:///m.db"}}`` (every
    named plugin present; a value is JSON when it parses as JSON, else the text)."""
    options: dict[str, dict[str, Any]] = {name: {} for name in names}
    for pair in pairs:
        target, sep, text = pair.partition("=")
        plugin, dot, key = target.partition(".")
        if not sep or not dot or not plugin or not key:
            raise ValueError(f"--option {pair!r}: expected PLUGIN.KEY=VALUE")
        if plugin not in options:
            raise ValueError(f"--option {pair!r}: plugin {plugin!r} is not in --plugins ({', '.join(names)})")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        options[plugin][key] = value
    return options


class ProgressBar:
    """Trials replayed so far: a bar redrawn in place on a terminal, a line per 5% elsewhere (logs, CI)."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._started = time.monotonic()
        self._last_line = -1

    def __call__(self, done: int, total: int, name: str) -> None:
        elapsed = time.monotonic() - self._started
        if self._tty:
            filled = int(30 * done / max(total, 1))
            bar = "#" * filled + "." * (30 - filled)
            self._stream.write(f"\rreplay [{bar}] {done}/{total} trials {elapsed:5.1f}s  {name[:40]:<40}")
            if done == total:
                self._stream.write("\n")
        else:
            step = max(1, total // 20)
            if done == total or done // step != self._last_line:
                self._last_line = done // step
                self._stream.write(f"replay: {done}/{total} trials ({elapsed:.1f}s), last: {name}\n")
        self._stream.flush()


def run_replay(args: argparse.Namespace) -> int:
    """Exit status: 0 when every plugin got everything, 1 when something was not delivered or a trial was
    skipped, 2 for a folder that is not a Tune experiment or a bad plugin request."""
    names = [n.strip() for n in args.plugins.split(",") if n.strip()]
    try:
        plugins = plugin_options(names, args.option)
        report = replay(
            args.experiment,
            plugins,
            only_missing=args.only_missing,
            progress=None if args.no_progress else ProgressBar(),
            excludes=args.exclude,
            include_auto_metrics=args.include_auto_metrics,
            isolate=True if args.isolate else "auto",
        )
    except (NotATuneExperiment, PluginError, ValueError) as exc:
        print(f"trackbridge replay: {exc}", file=sys.stderr)
        return 2
    account = report.get("replay", {})
    rows = report.get("plugins", [])
    print(format_table(rows))
    held = ", ".join(f"{r['plugin']} {r.get('skipped_replays', 0)}" for r in rows)
    print(
        f"trials: {account.get('trials_replayed', 0)} read of {account.get('trials', 0)}; "
        f"results read: {account.get('results_read', 0)}; already held, not sent again: {held}; "
        f"checkpoints gone: {account.get('checkpoints_gone', 0)}"
    )
    for note in account.get("notes", []):
        print(f"note: {note}")
    for skipped in account.get("skipped_trials", []):
        print(f"skipped {skipped['trial']}: {skipped['reason']}")
    if report.get("path"):
        print(f"report: {report['path']}")
    troubled = any(r.get("failed") or r.get("dropped") or not r.get("drained", True) for r in rows)
    return 1 if troubled or account.get("skipped_trials") else 0
