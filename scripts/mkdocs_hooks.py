"""MkDocs hook (``hooks:`` in mkdocs.yml): the benchmarks' plots, written by ``python -m benchmarks.compare``
into ``benchmarks/results/``, are published at the same path in the site, so the performance page shows
the PNG a benchmark drew, never a copy of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent


def on_files(files: Files, config: Any) -> Files:
    for png in sorted((ROOT / "benchmarks" / "results").glob("*.png")):
        files.append(
            File(
                png.relative_to(ROOT).as_posix(),
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
