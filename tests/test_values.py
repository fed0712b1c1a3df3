"""The pure value helpers every plugin relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trackbridge.secrets import REDACTED, mask_uri, redact
from trackbridge.values import (
    HISTOGRAM,
    SCALAR,
    SKIP,
    TEXT,
    WarnOnce,
    classify,
    flatten,
    plain_config,
)


def test_flatten_nested_with_slash_keeps_lists_whole():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": 2}) == {"a/b": 1, "a/c/d": [1, 2], "e": 2}


@pytest.mark.parametrize(
    "value, kind",
    [
        (1, SCALAR),
        (0.5, SCALAR),
        (True, SCALAR),
        (float("nan"), SCALAR),
        (math.inf, SCALAR),
        (np.float32(1.5), SCALAR),
        (np.int64(3), SCALAR),
        (np.array(2.0), SCALAR),
        ([1, 2, 3], HISTOGRAM),
        ((1.0, 2.0), HISTOGRAM),
        (np.arange(5), HISTOGRAM),
        ("hello", TEXT),
        (None, SKIP),
        ([], SKIP),
        (["a", 1], SKIP),
        ({}, SKIP),
        (object(), SKIP),
        (np.array(["a"]), SKIP),
        (np.array([]), SKIP),
        (1 + 2j, SKIP),
    ],
)
def test_classify(value, kind):
    assert classify(value) == kind


def test_redact_default_patterns_at_any_depth():
    cfg = {"lr": 0.1, "db": {"Password": "hunter2", "host": "h"}, "WANDB_API_KEY": "k", "auth_token": "t"}
    out = redact(cfg)
    assert out == {
        "lr": 0.1,
        "db": {"Password": REDACTED, "host": "h"},
        "WANDB_API_KEY": REDACTED,
        "auth_token": REDACTED,
    }
    assert cfg["db"]["Password"] == "hunter2"  # the input is not changed


def test_plain_config_reduces_unserialisable_values():
    f = open(__file__)
    try:
        out = plain_config({"fn": len, "np": np.float64(0.5), "arr": np.array([1, 2]), "f": f, "n": None, 1: "x"})
    finally:
        f.close()
    assert out["np"] == 0.5 and isinstance(out["np"], float)
    assert out["arr"] == [1, 2]
    assert out["fn"].startswith("<built-in function len")
    assert out["f"].startswith("<_io.TextIOWrapper")
    assert out["n"] is None and out["1"] == "x"


def test_mask_uri():
    assert mask_uri("https://user:pw@host:5000/path") == "https://***@host:5000/path"
    assert mask_uri("sqlite:///m.db") == "sqlite:///m.db"


def test_warn_once_per_key(caplog):
    warn = WarnOnce("p")
    for _ in range(5):
        warn("k", "bad k")
    warn("j", "bad j")
    assert warn.counts == {"k": 5, "j": 1} and warn.total == 6
    assert sum("bad k" in r.message for r in caplog.records) == 1


def test_config_redaction_has_no_exception_for_references_but_option_pickling_does():
    from trackbridge.secrets import is_secret_option, without_secrets

    cfg = {"password_file": "/etc/pw", "db": {"secret_env": "S"}, "data_path": "/data", "lr": 0.1}
    assert redact(cfg) == {"password_file": REDACTED, "db": {"secret_env": REDACTED}, "data_path": "/data", "lr": 0.1}
    assert redact(cfg, ["*_path"])["data_path"] == REDACTED  # a user's own pattern is taken as written
    assert not is_secret_option("api_key_file") and is_secret_option("api_key")
    assert without_secrets({"api_key_file": "/k", "api_key": "k"}) == {"api_key_file": "/k"}
