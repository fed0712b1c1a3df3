"""Tune's storage on an S3-compatible server (moto in server mode, started on 127.0.0.1 by the test): the
delivery report and the delivery journal are written through the experiment's filesystem, into the bucket,
and read back from it with boto3.
"""

from __future__ import annotations

import json

from ray import tune

from trackbridge import TrackBridgeCallback
from trackbridge.testing import RecordingPlugin

BUCKET = "tracking"


def short_trainable(config):
    for i in range(1, 5):
        tune.report({"loss": 1.0 / i})


def test_report_and_journal_are_written_into_the_bucket_of_remote_storage(ray_session, workdir, s3_server):
    import pyarrow.fs

    endpoint, client = s3_server.endpoint, s3_server.client
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
