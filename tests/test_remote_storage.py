"""Tune's storage on an S3-compatible server (moto in server mode, started on 127.0.0.1 by the test): the
delivery report and the delivery journal are written through the experiment's filesystem, into the bucket,
and read back from it with boto3.
"""

from __future__ import annotations

import json
import socket

import pytest
from ray import tune

from trackbridge import TrackBridgeCallback
from trackbridge.testing import RecordingPlugin

BUCKET = "tracking"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_server(monkeypatch):
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
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


def short_trainable(config):
    for i in range(1, 5):
        tune.report({"loss": 1.0 / i})


def test_report_and_journal_are_written_into_the_bucket_of_remote_storage(ray_session, workdir, s3_server):
    import pyarrow.fs

    endpoint, client = s3_server
    filesystem = pyarrow.fs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        endpoint_override=endpoint.removeprefix("http://"),
        scheme="http",
        region="us-east-1",
    )
    callback = TrackBridgeCallback(plugins=[RecordingPlugin()])
    tune.Tuner(
        short_trainable,
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(
            name="remote", storage_path=f"{BUCKET}/runs", storage_filesystem=filesystem, callbacks=[callback]
        ),
    ).fit()

    assert callback.report["path"] == f"s3://{BUCKET}/runs/remote/trackbridge_report.json"
    stored = json.loads(client.get_object(Bucket=BUCKET, Key="runs/remote/trackbridge_report.json")["Body"].read())
    [row] = stored["plugins"]
    assert row["delivered"] == callback.report["plugins"][0]["delivered"] > 0 and row["dropped"] == 0
    assert not (workdir / BUCKET).exists()  # not a relative local path named after the bucket

    journal = json.loads(
        client.get_object(Bucket=BUCKET, Key="runs/remote/trackbridge_journal/recorder.json")["Body"].read()
    )
    assert [entry["step"] for entry in journal["trials"].values()] == [4, 4]
