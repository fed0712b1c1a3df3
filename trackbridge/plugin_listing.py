"""What ``trackbridge plugins`` shows: one row per installed entry point of group ``trackbridge``, loaded to
read its hooks and SDK, a broken one reported with its error instead of hiding the others."""

from __future__ import annotations

from typing import Any

from trackbridge.discovery import implemented_hooks, install_hint, installed_plugins, missing_requirements

#: ``state`` of a row: usable; the entry point fails to import; its tracker SDK is missing; two
#: distributions claim the name.
OK, BROKEN, MISSING_SDK, CONFLICT = "ok", "broken", "missing-sdk", "conflict"


def describe_plugins() -> list[dict[str, Any]]:
    """One row per installed plugin entry point (see docs/cli.md for the keys)."""
    rows = []
    for name, candidates in sorted(installed_plugins().items()):
        for ep in candidates:
            row: dict[str, Any] = {
                "name": name,
                "value": ep.value,
                "distribution": ep.distribution,
                "version": ep.version,
                "hooks": [],
                "sdk": None,
                "state": OK,
                "error": None,
                "status": "ok",
            }
            rows.append(row)
            try:
                target = ep.entry_point.load()
            except BaseException as exc:  # noqa: B036 - a SystemExit at import must not end the listing either
                if isinstance(exc, KeyboardInterrupt):
                    raise
                row.update(state=BROKEN, error=f"{type(exc).__name__}: {exc}")
                row["status"] = f"cannot load: {row['error']}"
                continue
            row["hooks"] = implemented_hooks(target)
            requires = list(getattr(target, "requires", ()) or ())
            row["sdk"] = ", ".join(requires) if requires else None
            missing = missing_requirements(target)
            if missing:
                row.update(state=MISSING_SDK, error=install_hint(target, name))
                row["status"] = f"missing {', '.join(missing)} ({row['error']})"
            if len({c.value for c in candidates}) > 1:
                claims = ", ".join(f"{c.distribution} ({c.value})" for c in candidates)
                row.update(state=CONFLICT, error=f"name claimed by several distributions: {claims}")
                row["status"] = "conflict: name claimed by several distributions"
    return rows
