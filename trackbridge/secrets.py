"""One rule for secrets, used everywhere: config redaction, what is pickled into ``tuner.pkl``, URI masking.

- ``is_secret_key``: does a config key hold a credential? One list of patterns (``SECRET_PATTERNS``, plus
  the user's own), matched against every ``/``-separated segment.
- ``is_secret_option``: the same for a plugin option's name, except that an option that only *refers* to a
  credential (``api_key_file``, ``token_path``, ``password_env``) is kept, so a restored run finds it.
- ``redact``: a config with every secret value replaced by ``REDACTED`` before any plugin sees it.
- ``without_secrets``: plugin options fit for pickling: secret options dropped, credentials in URIs stripped.
- ``mask_uri`` / ``strip_uri_credentials``: ``https://user:pass@host`` for logs (``***@host``) and for storage.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***REDACTED***"

#: Glob patterns (case-insensitive) of names whose values are credentials.
SECRET_PATTERNS: tuple[str, ...] = (
    "*password*",
    "*passwd*",
    "*secret*",
    "*token*",
    "*api_key*",
    "*apikey*",
    "*api-key*",
    "*credential*",
    "*private_key*",
    "*access_key*",
)

#: Suffixes of names that point at a credential (a file, a path, an environment variable) without holding it.
REFERENCE_SUFFIXES: tuple[str, ...] = ("_file", "_path", "_env", "_var")


def is_secret_key(key: str, extra_patterns: Iterable[str] = ()) -> bool:
    """True when a ``/``-separated segment of ``key`` matches a secret pattern (``SECRET_PATTERNS`` plus
    ``extra_patterns``)."""
    patterns = SECRET_PATTERNS + tuple(p.lower() for p in extra_patterns)
    return any(fnmatch.fnmatchcase(segment, pattern) for segment in str(key).lower().split("/") for pattern in patterns)


def is_secret_option(name: str) -> bool:
    """Does a plugin option hold a credential? As ``is_secret_key``, except for references to one (an option
    whose name ends with one of ``REFERENCE_SUFFIXES``: ``api_key_file`` holds a path, not a key)."""
    return not str(name).lower().endswith(REFERENCE_SUFFIXES) and is_secret_key(name)


def redact(config: Mapping[str, Any], extra_patterns: Iterable[str] = (), *, enabled: bool = True) -> dict[str, Any]:
    """A copy of a nested config in which every value under a secret key is ``REDACTED``.

    ``enabled=False`` returns an unredacted copy (the user turned redaction off).
    """
    if not enabled:
        return dict(config)
    extra = tuple(extra_patterns)

    def walk(data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            if is_secret_key(str(key), extra):
                out[key] = REDACTED
            elif isinstance(value, Mapping):
                out[key] = walk(value)
            else:
                out[key] = value
        return out

    return walk(config)


def without_secrets(options: Mapping[str, Any], declared_secret: Iterable[str] = ()) -> dict[str, Any]:
    """Options fit for ``tuner.pkl``: secret options (``is_secret_option``, or named in ``declared_secret``)
    dropped, at any depth of nested dicts (``settings={"api_key": ...}``), and credentials embedded in URI
    values stripped. A restored run finds them again in the environment or a key file."""
    declared = set(declared_secret)
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in declared or is_secret_option(key):
            continue
        out[key] = without_secrets(value) if isinstance(value, Mapping) else strip_uri_credentials(value)
    return out


def _split_credentials(uri: str) -> tuple[str, str, str] | None:
    """``scheme://user:pass@host/path`` -> (``scheme``, ``host``, ``/path``); None without credentials."""
    if "://" not in uri or "@" not in uri:
        return None
    scheme, rest = uri.split("://", 1)
    netloc, sep, path = rest.partition("/")
    if "@" not in netloc:
        return None
    return scheme, netloc.rsplit("@", 1)[1], sep + path


def mask_uri(uri: str | None) -> str | None:
    """Hide credentials in a URI, for logs and reprs: ``https://user:pass@host`` -> ``https://***@host``."""
    parts = _split_credentials(uri) if uri else None
    return uri if parts is None else f"{parts[0]}://***@{parts[1]}{parts[2]}"


def strip_uri_credentials(value: Any) -> Any:
    """``https://user:pass@host/x`` -> ``https://host/x``; anything that is not such a URI is returned as is."""
    parts = _split_credentials(value) if isinstance(value, str) else None
    return value if parts is None else f"{parts[0]}://{parts[1]}{parts[2]}"
