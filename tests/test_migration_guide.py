"""docs/migration.md cannot drift from Ray's signatures nor name a TrackBridge option that does not exist.

Imports Ray's integration modules and reads Markdown only: no Ray session, no Tune run.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from trackbridge import discovery

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "migration.md"

#: Ray's object (its ``## `` section heading) -> the module that defines it.
RAY_OBJECTS = {
    "WandbLoggerCallback": "ray.air.integrations.wandb",
    "setup_wandb": "ray.air.integrations.wandb",
    "MLflowLoggerCallback": "ray.air.integrations.mlflow",
    "setup_mlflow": "ray.air.integrations.mlflow",
    "TBXLoggerCallback": "ray.tune.logger.tensorboardx",
    "AimLoggerCallback": "ray.tune.logger.aim",
    "CometLoggerCallback": "ray.air.integrations.comet",
}

PLUGINS = ("wandb", "mlflow", "tensorboard", "aim", "comet")

# The guide's convention: "wandb option `project`" names one option, "wandb options `a`, `b` and `c`" several
# (line breaks allowed between the words); "callback option `x`" is an option of TrackBridgeCallback itself.
_OWNER = r"\b(?P<owner>" + "|".join((*PLUGINS, "callback")) + r")"
_NAME = r"`[^`]+`"
_ONE = re.compile(_OWNER + r"\s+option\s+(?P<names>" + _NAME + ")")
_MANY = re.compile(_OWNER + r"\s+options\s+(?P<names>" + _NAME + r"(?:(?:,\s+|,?\s+and\s+|,?\s+or\s+)" + _NAME + ")*)")


def _sections(text):
    """The text under each ``## `` heading, by heading (backticks around the heading allowed)."""
    out = {}
    for chunk in re.split(r"^(?=## )", text, flags=re.M):
        if chunk.startswith("## "):
            heading, _, body = chunk.partition("\n")
            out[heading[3:].strip().strip("`")] = body
    return out


def _parameters(obj):
    """Parameter names as the guide writes them: ``**kwargs`` for keyword catch-alls, ``self`` skipped."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    names = []
    for p in inspect.signature(target).parameters.values():
        if p.name == "self":
            continue
        prefix = {p.VAR_KEYWORD: "**", p.VAR_POSITIONAL: "*"}.get(p.kind, "")
        names.append(prefix + p.name)
    return names


def _option_mentions(text):
    """(owner, option name) for every option the guide names with its convention."""
    found = []
    for pattern in (_ONE, _MANY):
        for m in pattern.finditer(text):
            found += [(m["owner"], name) for name in re.findall(r"`([^`]+)`", m["names"])]
    return found


@pytest.mark.parametrize("name", sorted(RAY_OBJECTS))
def test_every_ray_parameter_is_in_its_section(name):
    section = _sections(GUIDE.read_text()).get(name)
    assert section is not None, f"docs/migration.md has no '## {name}' section"
    obj = getattr(importlib.import_module(RAY_OBJECTS[name]), name)
    missing = [p for p in _parameters(obj) if f"`{p}`" not in section]
    assert not missing, f"Ray's {name} has parameters that its section of docs/migration.md does not name: {missing}"


def test_every_option_the_guide_names_exists():
    from trackbridge.callback import TrackBridgeCallback

    valid = {"callback": set(inspect.signature(TrackBridgeCallback.__init__).parameters) - {"self"}}
    for plugin in PLUGINS:
        options = discovery.load_target(plugin).Options
        valid[plugin] = set(options.fields()) - set(options.reserved)
    mentions = _option_mentions(GUIDE.read_text())
    unknown = sorted({f"{owner} option `{name}`" for owner, name in mentions if name not in valid[owner]})
    assert not unknown, f"docs/migration.md names options that do not exist: {unknown}"
    # The convention is in use for every plugin (a format drift would otherwise make this test check nothing).
    assert {owner for owner, _ in mentions} == {*PLUGINS, "callback"}
