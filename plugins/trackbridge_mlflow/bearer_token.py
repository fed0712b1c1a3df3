"""``Authorization: Bearer <token>`` on the MLflow requests made inside a ``store.TokenClient`` call.

MLflow asks every registered ``RequestHeaderProvider`` (a ``developer_stable`` extension point) for headers
on each REST request its client makes, tracking and artifact requests alike. This provider is registered the
public way, as an ``mlflow.request_header_provider`` entry point of this distribution (see pyproject.toml),
and adds the header only while the current thread is inside a call of a client that has a token
(``bound``): the token belongs to that client, never to the process environment.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider

_bound = threading.local()


@contextlib.contextmanager
def bound(token: str) -> Iterator[None]:
    """Requests made by this thread inside the block carry ``token``."""
    outer = getattr(_bound, "token", None)
    _bound.token = token
    try:
        yield
    finally:
        _bound.token = outer


class BearerTokenProvider(RequestHeaderProvider):  # type: ignore[misc]
    """The token of the ``TokenClient`` call the current thread is in, if any."""

    def in_context(self) -> bool:
        return getattr(_bound, "token", None) is not None

    def request_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {_bound.token}"}
