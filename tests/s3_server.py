"""An S3-compatible server for tests: moto's ``ThreadedMotoServer`` on 127.0.0.1 with one empty bucket.

Its fixture ``s3_server`` is registered in tests/conftest.py; the bucket is the test module's
``BUCKET`` (``s3_server.bucket``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class S3Server:
    """What a test needs: where the server listens, a boto3 client, the bucket it made."""

    port: int
    endpoint: str
    client: Any
    bucket: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_server(request, monkeypatch) -> Iterator[S3Server]:
    """A fresh server per test; the bucket is the test module's ``BUCKET`` (default ``"tracking"``)."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    endpoint = f"http://127.0.0.1:{port}"
    bucket = getattr(request.module, "BUCKET", "tracking")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    yield S3Server(port=port, endpoint=endpoint, client=client, bucket=bucket)
    server.stop()
