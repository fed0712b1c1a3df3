"""``python -m trackbridge_wandb_reader <dir>``: one line per offline W&B run found under a directory."""

from __future__ import annotations

import argparse

from trackbridge_wandb_reader.reader import read_runs


def main(argv: list[str] | None = None) -> int:
    """Print one line per offline run found under a directory (exit code 1 when there is none)."""
    parser = argparse.ArgumentParser(prog="python -m trackbridge_wandb_reader", description=main.__doc__)
    parser.add_argument("root", help="a directory holding wandb/offline-run-* folders (searched recursively)")
    args = parser.parse_args(argv)
    runs = read_runs(args.root)
    if not runs:
        print(f"no run-*.wandb files under {args.root}")
        return 1
    for run in runs:
        print(
            f"{run.run_id}  name={run.name!r} group={run.group!r} rows={len(run.history)} "
            f"artifacts={len(run.artifacts)} exit_code={run.exit_code}  {run.path}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
