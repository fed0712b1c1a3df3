"""``trackbridge check NAME``: the conformance kit's scripted scenarios against an installed plugin.

Each scenario builds the plugin fresh, by its entry-point name, for a directory of its own, with the plugin's
``offline_options(directory)`` (if it declares them) under the user's ``--option``s, exactly as
``TrackBridgeCallback(plugins={NAME: options})`` would build it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trackbridge.discovery import load_target
from trackbridge.errors import PluginError
from trackbridge.loading import construct
from trackbridge.testing.conformance import DESCRIPTIONS, SCENARIOS, ConformanceReport, StoredRuns, check_plugin


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the plugin's entry-point name, as in plugins=[NAME]")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a plugin option (VALUE is JSON if it parses)",
    )
    parser.add_argument(
        "--scenario", action="append", default=[], metavar="NAME", help=f"run only these ({', '.join(SCENARIOS)})"
    )
    parser.add_argument("--reader", metavar="MODULE:FUNCTION", help="a function directory -> StoredRuns")
    parser.add_argument("--dir", help="where the scenarios write (default: a temporary directory, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--timeout", type=_seconds, default=60.0, metavar="SECONDS", help="seconds per scenario (default 60)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(text)
        except ValueError:
            options[key] = text
    return options


def _reader(spec: str | None) -> Callable[[Path], StoredRuns] | None:
    if spec is None:
        return None
    module, sep, function = spec.partition(":")
    if not sep or not module or not function:
        raise ValueError(f"--reader {spec!r}: expected MODULE:FUNCTION")
    try:
        found = getattr(importlib.import_module(module), function, None)
    except Exception as exc:  # a reader that fails to import is a usage error, reported without a traceback
        raise ValueError(f"--reader {spec!r}: importing {module} failed: {type(exc).__name__}: {exc}") from exc
    if not callable(found):
        raise ValueError(f"--reader {spec!r}: {module} has no function {function!r}")
    reader: Callable[[Path], StoredRuns] = found
    return reader


def _factory(name: str, options: dict[str, Any]) -> Callable[[Path], Any]:
    target = load_target(name)
    offline = getattr(target, "offline_options", None)

    def make_plugin(directory: Path) -> Any:
        defaults = dict(offline(str(directory))) if callable(offline) else {}
        return construct(name, {**defaults, **options})

    return make_plugin


def _try_building(make_plugin: Callable[[Path], Any], name: str) -> None:
    """Build the plugin once, in a throwaway directory, so a missing SDK or a bad option stops the check
    before any scenario (with the message a real run gives)."""
    with tempfile.TemporaryDirectory(prefix=f"trackbridge-check-{name}-options-") as scratch:
        try:
            make_plugin(Path(scratch))
        except (ValueError, ImportError):  # PluginError, MissingTrackerError: the messages of a real run
            raise
        except Exception as exc:
            raise PluginError(f"trackbridge: plugin {name!r} could not be built: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what the plugin prints (from Python or native code) to stderr, keeping stdout for the JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _print(report: ConformanceReport, name: str, with_reader: bool) -> None:
    checked = "what the tracker stored (--reader)" if with_reader else "only that no hook failed (no --reader)"
    print(f"trackbridge check {name}: {len(report.results)} scenarios, checking {checked}")
    for result in report.results:
        print(f"{'ok  ' if result.ok else 'FAIL'} {result.name}")
        if not result.ok:
            print(f"       ({DESCRIPTIONS.get(result.name, '')})")
            for problem in result.problems:
                print("       - " + problem.replace("\n", "\n         "))
    failed = [r.name for r in report.results if not r.ok]
    print(
        f"{len(report.results) - len(failed)} passed, {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "")
    )


def run_check(args: argparse.Namespace) -> int:
    """Exit code: 0 all scenarios pass, 1 one fails, 2 a usage error (unknown plugin or scenario, bad option)."""
    unknown = [s for s in args.scenario if s not in SCENARIOS]
    try:
        if unknown:
            raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; the scenarios are: {', '.join(SCENARIOS)}")
        options = _options(args.option)
        reader = _reader(args.reader)
        make_plugin = _factory(args.name, options)
        _try_building(make_plugin, args.name)
    except (PluginError, ValueError, ImportError) as exc:
        print(f"trackbridge check: {exc}", file=sys.stderr)
        return 2
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix=f"trackbridge-check-{args.name}-"))
    removed = not args.dir and not args.keep
    try:
        with _stdout_to_stderr() if args.json else contextlib.nullcontext():
            report = check_plugin(make_plugin, reader, root, scenarios=args.scenario or None, timeout=args.timeout)
    finally:
        if removed:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        rows = [{"scenario": r.name, "ok": r.ok, "problems": r.problems} for r in report.results]
        found = {"plugin": args.name, "reader": args.reader, "directory": None if removed else str(root)}
        print(json.dumps({**found, "ok": report.ok, "scenarios": rows}, indent=2))
    else:
        _print(report, args.name, reader is not None)
        if args.keep and not args.dir:
            print(f"kept {root}")
    return 0 if report.ok else 1
