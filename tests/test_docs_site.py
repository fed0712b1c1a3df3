"""The documentation site (mkdocs.yml) builds strictly, shows every page, and its option tables name exactly the
options ``TrackBridgeCallback`` has. No Ray start-up: mkdocs runs in a subprocess, the rest reads files."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from trackbridge.callback import TrackBridgeCallback

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CALLBACK_PARAMETERS = {
    name: p for name, p in inspect.signature(TrackBridgeCallback.__init__).parameters.items() if name != "self"
}


class _TolerantLoader(yaml.SafeLoader):
    """mkdocs.yml as data: tags meant for mkdocs' own loader (``!!python/...``, ``!ENV``) become None."""


_TolerantLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
_TolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _mkdocs_config() -> dict[str, Any]:
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_TolerantLoader)


def _nav_pages(entry: Any) -> list[str]:
    """Every page file named in a ``nav`` (nested sections included; external URLs left out)."""
    if isinstance(entry, str):
        return [] if "://" in entry else [entry]
    if isinstance(entry, list):
        return [page for item in entry for page in _nav_pages(item)]
    if isinstance(entry, dict):
        return [page for value in entry.values() for page in _nav_pages(value)]
    return []


def _option_table(path: Path) -> list[tuple[list[str], str]]:
    """The rows of the first table in ``path`` whose first column is headed ``option``: per row, the backticked
    names of its first cell and the text of its second (the default)."""
    rows: list[tuple[list[str], str]] = []
    in_table = False
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
        if not in_table:
            in_table = cells is not None and cells[0].lower() == "option"
            continue
        if cells is None:
            break
        if set(cells[0]) <= {"-", ":"}:  # the header's separator row
            continue
        rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1] if len(cells) > 1 else ""))
    assert rows, f"{path.relative_to(ROOT)} has no table whose first column is headed 'option'"
    return rows


def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "site" / "index.html").exists()


def test_every_docs_page_is_in_the_navigation() -> None:
    config = _mkdocs_config()
    assert config["docs_dir"] == "docs"
    in_nav = _nav_pages(config["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(set(pages) - set(in_nav)) == [], "pages missing from mkdocs.yml's nav"
    assert sorted(set(in_nav) - set(pages)) == [], "nav entries without a page"
    assert len(in_nav) == len(set(in_nav)), "a page is in the nav twice"


def test_option_tables_name_exactly_the_callbacks_parameters() -> None:
    documented = {name for names, _ in _option_table(DOCS / "user-guide.md") for name in names}
    assert documented == set(CALLBACK_PARAMETERS), (
        f"docs/user-guide.md: undocumented {sorted(set(CALLBACK_PARAMETERS) - documented)}, "
        f"not parameters {sorted(documented - set(CALLBACK_PARAMETERS))}"
    )
    # The README's table lists the options of the callback itself; plugins= has its own Quick start above it.
    in_readme = {name for names, _ in _option_table(ROOT / "README.md") for name in names}
    expected = set(CALLBACK_PARAMETERS) - {"plugins"}
    assert in_readme == expected, (
        f"README.md: undocumented {sorted(expected - in_readme)}, not parameters {sorted(in_readme - expected)}"
    )


def test_option_tables_give_the_real_defaults() -> None:
    for path in (DOCS / "user-guide.md", ROOT / "README.md"):
        for names, default_cell in _option_table(path):
            defaults = re.findall(r"`([^`]+)`", default_cell)
            for i, name in enumerate(names):
                parameter = CALLBACK_PARAMETERS.get(name)
                if parameter is None:
                    continue  # not a parameter at all: the test above names it
                where = f"{path.relative_to(ROOT)}, option {name}"
                if parameter.default is inspect.Parameter.empty:
                    assert "required" in default_cell, f"{where}: has no default, the table should say required"
                    continue
                assert len(defaults) == len(names), f"{where}: one backticked default per option expected"
                assert ast.literal_eval(defaults[i]) == parameter.default, f"{where}: default {defaults[i]}"
