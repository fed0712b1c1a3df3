"""One rule for secrets, used everywhere: config redaction, what is pickled into ``tuner.pkl``, URI masking.

A value is a secret when it sits under a name that looks like a credential (``SECRET_PATTERNS``, plus the
user's own for config redaction), or when it is the credential part of a URI: its user information
(``https://user:pass@host``) or a query parameter named like a credential (``?access_token=...``).

- ``is_secret_key``: does a config key hold a credential? Matched against every ``/``-separated segment,
  case-insensitively, with and without separators (``api_key``, ``api-key``, ``apiKey`` and ``API.KEY`` all
  match ``*apikey*``).
- ``is_secret_option``: the same for a plugin option's name, except that an option that only *refers* to a
  credential (``api_key_file``, ``token_path``, ``password_env``) is kept, so a restored run finds it.
- ``redact``: a config with every value under a secret key replaced by ``REDACTED`` and the credentials in
  URI values masked, before any plugin sees it.
- ``without_secrets`` / ``strip_secrets``: values fit for pickling: secret options and keys dropped,
  credentials removed from URIs, at any depth of dicts and lists.
- ``mask_uri`` / ``masked``: the same values fit for logs and reprs (``https://***@host``, ``?token=***``).
- ``strip_uri_credentials``: ``https://user:pass@host/x?token=t&a=1`` -> ``https://host/x?a=1``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "***REDACTED***"
#: What stands in for a credential inside a URI or a plugin's repr.
MASK = "***"

#: Glob patterns of names whose values are credentials, matched case-insensitively against a name with its
#: separators (``_ - .`` and spaces) removed, so one pattern covers every spelling: ``*apikey*`` matches
#: ``api_key``, ``api-key``, ``apiKey``, ``APIKEY``. The one list for config keys, plugin options and URI
#: query parameters.
SECRET_PATTERNS: tuple[str, ...] = (
    "*password*",
    "*passwd*",
    "*secret*",
    "*token*",
    "*apikey*",
    "*credential*",
    "*privatekey*",
    "*accesskey*",
)

#: Suffixes of names that point at a credential (a file, a path, an environment variable) without holding it.
REFERENCE_SUFFIXES: tuple[str, ...] = ("_file", "_path", "_env", "_var")

_SEPARATORS = re.compile(r"[\s_.\-]+")


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    raw = name.lower()
    bare = _SEPARATORS.sub("", raw)
    return any(fnmatch.fnmatchcase(form, pattern) for form in (raw, bare) for pattern in patterns)


def is_secret_key(key: str, extra_patterns: Iterable[str] = ()) -> bool:
    """True when a ``/``-separated segment of ``key`` matches a secret pattern (``SECRET_PATTERNS`` plus
    ``extra_patterns``, which are matched as written and with separators removed)."""
    patterns = SECRET_PATTERNS + tuple(p.lower() for p in extra_patterns)
    return any(_matches(segment, patterns) for segment in str(key).split("/"))


def is_secret_option(name: str) -> bool:
    """Does a plugin option hold a credential? As ``is_secret_key``, except for references to one (an option
    whose name ends with one of ``REFERENCE_SUFFIXES``: ``api_key_file`` holds a path, not a key)."""
    return not str(name).lower().endswith(REFERENCE_SUFFIXES) and is_secret_key(name)


# ------------------------------------------------------------------------------------------- URIs
def _uri_parts(uri: str) -> tuple[str, str | None, str, str, str | None, str] | None:
    """``scheme://userinfo@host/path?query#fragment`` as (``scheme://``, userinfo, host, path, query,
    ``#fragment``); None for a string that is not such a URI."""
    if "://" not in uri:
        return None
    scheme, rest = uri.split("://", 1)
    if not scheme:
        return None
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, rest = rest[:end], rest[end:]
    userinfo, _, host = netloc.rpartition("@")
    rest, hash_, fragment = rest.partition("#")
    path, question, query = rest.partition("?")
    return (
        scheme + "://",
        (userinfo if "@" in netloc else None),
        host,
        path,
        (query if question else None),
        hash_ + fragment,
    )


def _secret_param(param: str, extra: tuple[str, ...]) -> bool:
    name = param.split("=", 1)[0]
    return bool(name) and is_secret_key(unquote_plus(name), extra)


def mask_uri(uri: str | None, extra_patterns: Iterable[str] = ()) -> str | None:
    """Hide credentials in a URI, for logs and reprs: ``https://user:pass@host`` -> ``https://***@host``,
    ``https://host/?token=t&a=1`` -> ``https://host/?token=***&a=1``. Anything else is returned as is."""
    parts = _uri_parts(uri) if isinstance(uri, str) else None
    if parts is None:
        return uri
    start, userinfo, host, path, query, fragment = parts
    extra = tuple(extra_patterns)
    netloc = host if userinfo is None else f"{MASK}@{host}"
    if query is not None:
        params = [f"{p.split('=', 1)[0]}={MASK}" if _secret_param(p, extra) else p for p in query.split("&")]
        path += "?" + "&".join(params)
    return start + netloc + path + fragment


def strip_uri_credentials(value: Any, extra_patterns: Iterable[str] = ()) -> Any:
    """``https://user:pass@host/x?token=t&a=1`` -> ``https://host/x?a=1`` (user information and query
    parameters named like a credential removed); anything that is not such a URI is returned as is."""
    parts = _uri_parts(value) if isinstance(value, str) else None
    if parts is None:
        return value
    start, _, host, path, query, fragment = parts
    extra = tuple(extra_patterns)
    if query is not None:
        kept = [p for p in query.split("&") if not _secret_param(p, extra)]
        path += "?" + "&".join(kept) if kept else ""
    return start + host + path + fragment


# ------------------------------------------------------------------------------------------- whole values
def redact(config: Mapping[str, Any], extra_patterns: Iterable[str] = (), *, enabled: bool = True) -> dict[str, Any]:
    """A copy of a nested config in which every value under a secret key is ``REDACTED`` and every URI value
    (also inside lists) has its credentials masked (``mask_uri``).

    ``enabled=False`` returns an unredacted copy (the user turned redaction off).
    """
    if not enabled:
        return dict(config)
    extra = tuple(extra_patterns)

    def value_of(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: REDACTED if is_secret_key(str(k), extra) else value_of(v) for k, v in value.items()}
        if type(value) in (list, tuple):
            return type(value)(value_of(v) for v in value)
        return mask_uri(value, extra) if isinstance(value, str) else value

    return dict(value_of(config))


def strip_secrets(value: Any) -> Any:
    """A value fit for pickling: dicts without their secret options (``is_secret_option``), URIs without
    credentials, at any depth of dicts, lists and tuples. Anything else is returned as is."""
    if isinstance(value, Mapping):
        return without_secrets(value)
    if type(value) in (list, tuple):
        return type(value)(strip_secrets(v) for v in value)
    return strip_uri_credentials(value)


def without_secrets(options: Mapping[str, Any], declared_secret: Iterable[str] = ()) -> dict[str, Any]:
    """Options fit for ``tuner.pkl``: secret options (``is_secret_option``, or named in ``declared_secret``)
    dropped, at any depth of nested dicts (``settings={"api_key": ...}``), and credentials embedded in URI
    values stripped, also inside lists. A restored run finds them again in the environment or a key file."""
    declared = set(declared_secret)
    return {
        key: strip_secrets(value)
        for key, value in options.items()
        if key not in declared and not is_secret_option(str(key))
    }


def masked(value: Any) -> Any:
    """A value fit for logs and reprs: the values of secret options in dicts shown as ``***``, URIs masked,
    at any depth of dicts, lists and tuples."""
    if isinstance(value, Mapping):
        return {k: MASK if is_secret_option(str(k)) and v is not None else masked(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(masked(v) for v in value)
    return mask_uri(value) if isinstance(value, str) else value
