"""The ``trackbridge`` command: ``plugins``, ``check``, ``demo`` and ``replay`` (see docs/cli.md)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from trackbridge.plugin_listing import BROKEN, describe_plugins


def _with_hook(rows: list[dict[str, Any]], hook: str | None) -> list[dict[str, Any]]:
    if not hook:
        return rows
    return [r for r in rows if hook in r["hooks"] or f"trackbridge_{hook}" in r["hooks"]]


def _print_table(rows: list[dict[str, Any]], hook: str | None) -> None:
    if not rows:
        print("no trackbridge plugins installed" + (f" implementing {hook}" if hook else ""))
        return
    for r in rows:
        dist = f"{r['distribution'] or '?'} {r['version'] or ''}".strip()
        if r["state"] == BROKEN:
            print(f"{r['name']}  ({dist}; {r['value']})  BROKEN: {r['error']}")
            continue
        sdk = r["sdk"] or "-"
        importable = "importable" if r["status"] == "ok" else r["status"]
        print(f"{r['name']}  ({dist}; {r['value']})")
        print(f"  tracker SDK: {sdk}: {importable}")
        hooks = ", ".join(h.removeprefix("trackbridge_") for h in r["hooks"]) or "-"
        print(f"  hooks: {hooks}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trackbridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_plugins = sub.add_parser("plugins", help="list installed tracker plugins")
    p_plugins.add_argument("--json", action="store_true", help="print JSON")
    p_plugins.add_argument("--hook", help="only plugins implementing this hook")
    p_check = sub.add_parser(
        "check",
        help="run the conformance kit's scenarios against an installed plugin",
        description="Drive an installed plugin through the conformance kit's scripted scenarios (no Ray) and "
        "report, per scenario, any hook that raised, a plugin stuck in a hook, and (with --reader) what the "
        "tracker did not store as sent.",
    )
    from trackbridge.check_cli import add_arguments

    add_arguments(p_check)
    p_demo = sub.add_parser("demo", help="run a small real Tune experiment into the trackers, offline")
    p_demo.add_argument(
        "--plugins",
        default=None,
        help="comma-separated plugin names (default: every installed plugin whose tracker SDK imports)",
    )
    p_demo.add_argument("--trials", type=int, default=4)
    p_demo.add_argument("--results", type=int, default=20)
    p_demo.add_argument("--dir", default="trackbridge-demo", help="where the demo writes everything")
    p_replay = sub.add_parser(
        "replay",
        help="send a Tune experiment's recorded results into trackers (after the fact)",
        description="Rebuild every trial's lifecycle from a Tune experiment folder (local path or URI such as "
        "s3://bucket/path) and send it through the plugins, as a live run would have.",
    )
    p_replay.add_argument("experiment", help="the Tune experiment folder: <storage_path>/<experiment name>")
    p_replay.add_argument("--plugins", required=True, help="comma-separated plugin names, e.g. mlflow,wandb")
    p_replay.add_argument(
        "--only-missing",
        action="store_true",
        help="add only what each tracker lacks (per the delivery journal, else the tracker's own runs)",
    )
    p_replay.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="PLUGIN.KEY=VALUE",
        help="a plugin option, e.g. mlflow.tracking_uri=sqlite:///mlflow.db (VALUE is JSON if it parses)",
    )
    p_replay.add_argument("--exclude", action="append", default=[], help="a metric name or glob to leave out")
    p_replay.add_argument("--include-auto-metrics", action="store_true", help="also Tune's auto-filled fields")
    p_replay.add_argument(
        "--isolate",
        action="store_true",
        help="every plugin in a process of its own (default: isolate='auto', for those that prefer one)",
    )
    p_replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.command == "plugins":
        rows = _with_hook(describe_plugins(), args.hook)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            _print_table(rows, args.hook)
        return 0
    if args.command == "check":
        from trackbridge.check_cli import run_check

        return run_check(args)
    if args.command == "demo":
        from trackbridge.demo import run_demo

        names = [n.strip() for n in args.plugins.split(",")] if args.plugins else None
        return run_demo(plugins=names, trials=args.trials, results=args.results, directory=args.dir)
    if args.command == "replay":
        from trackbridge.replay_cli import run_replay

        return run_replay(args)
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
