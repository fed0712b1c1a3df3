"""Secrets and isolated plugins (issue 12, items 8-10), with real Tune runs and the trackers' own readers.

- Plugin objects handed to ``isolate=`` keep their credentials: the driver sends every option over the
  plugin process's socket (``loading.process_request``), never through a file.
- An isolated TensorBoard plugin learns from the driver whether Tune's own TensorBoard logger is suppressed.
- One list of secret patterns for config redaction, option pickling and URIs; the MLflow token goes with
  its own client's requests only, never into the process environment.

The MLflow "servers" that demand credentials are ``AuthProxy`` objects: they answer 401 to any request
without the expected ``Authorization`` header and forward the others to the session's real ``mlflow server``,
from which every test reads back what was stored with ``MlflowClient``.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import logging
import os
import pickle
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mlflow import MlflowClient
from ray import cloudpickle, tune
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trackbridge import REDACTED, PluginOptions, TrackBridgeCallback, TrackerPlugin, hookimpl, option
from trackbridge.loading import process_request, resolve, resolve_in_process
from trackbridge.secrets import is_secret_key, mask_uri, redact, strip_uri_credentials, without_secrets
from trackbridge_mlflow import MlflowPlugin
from trackbridge_wandb import WandbPlugin

TOKEN_A = "tok-A-PLANTED-1f2e3d"
TOKEN_B = "tok-B-PLANTED-4c5b6a"
PROBE_KEY = "probe-key-PLANTED-9a8b7c"
URI_PASSWORD = "uri-pw-PLANTED-5d6e"
CONFIG_SECRETS = ("pk-PLANTED-11", "ak-PLANTED-22", "dbpw-PLANTED-33", "qs-PLANTED-44")
#: Tune keeps the config it was given in its own experiment state: the user's, not a tracker's.
TUNE_OWN_STATE = ("basic-variant-state-", "experiment_state-", "search_gen_state-")


# --------------------------------------------------------------------------------------------- helpers
class AuthProxy:
    """An MLflow server that demands ``expected`` as the ``Authorization`` header: 401 otherwise, else the
    request goes on (without that header) to the real server. Records, per request, the path, the header and
    whether ``MLFLOW_TRACKING_TOKEN`` was set in this process (the Tune driver) at that moment."""

    def __init__(self, upstream: str, expected: str) -> None:
        self.expected, self.seen = expected, []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def forward(self) -> None:
                auth = self.headers.get("Authorization")
                proxy.seen.append((self.path, auth, os.environ.get("MLFLOW_TRACKING_TOKEN")))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                if auth != proxy.expected:
                    self.reply(401, b'{"error_code": "UNAUTHENTICATED", "message": "bad credentials"}', None)
                    return
                kind = {"Content-Type": self.headers["Content-Type"]} if self.headers.get("Content-Type") else {}
                request = urllib.request.Request(upstream + self.path, body, kind, method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        self.reply(response.status, response.read(), response.headers.get("Content-Type"))
                except urllib.error.HTTPError as exc:
                    self.reply(exc.code, exc.read(), exc.headers.get("Content-Type"))

            def reply(self, status: int, data: bytes, content_type: str | None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type or "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rejected(self) -> list[str]:
        return [path for path, auth, _ in self.seen if auth != self.expected]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def bearer(token: str) -> str:
    return f"Bearer {token}"


def trainable(config):
    for step in range(1, 4):
        tune.report({"loss": 1.0 / step})


def fit(workdir: Path, name: str, callbacks: list, param_space: dict | None = None):
    return tune.Tuner(
        trainable,
        param_space=param_space or {"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(name=name, storage_path=str(workdir / "ray"), callbacks=callbacks, verbose=0),
    ).fit()


def mlflow_runs(url: str, experiment: str) -> tuple[MlflowClient, list]:
    client = MlflowClient(tracking_uri=url)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id]) if found else []


def assert_all_results_stored(url: str, experiment: str) -> list:
    client, runs = mlflow_runs(url, experiment)
    assert len(runs) == 2, experiment
    for run in runs:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3]
        assert run.info.status == "FINISHED"
    return runs


def files_containing(root: Path, needle: str, skip_prefixes: tuple[str, ...] = ()) -> list[str]:
    data = needle.encode()
    return [
        str(p)
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(skip_prefixes) and data in p.read_bytes()
    ]


@dataclass(frozen=True)
class ProbeOptions(PluginOptions):
    api_key: str | None = option(None, secret=True)
    out: str = option("")


class KeyProbe(TrackerPlugin[ProbeOptions], name="keyprobe"):
    """Any plugin whose key is an option: writes, in the process it runs in, its pid and a digest of its key."""

    @hookimpl
    def trackbridge_experiment_end(self, experiment):
        key = self.options.api_key
        Path(self.options.out).write_text(f"{os.getpid()} {hashlib.sha256(key.encode()).hexdigest() if key else '-'}")


# --------------------------------------------------------------------------------------------- item 8
def test_isolated_plugin_objects_get_their_secrets_over_the_socket_and_nowhere_else(
    ray_session, workdir, mlflow_server
):
    proxy = AuthProxy(mlflow_server.url, bearer(TOKEN_A))
    probe_file = workdir / "probe.txt"
    plugins = [
        MlflowPlugin(tracking_uri=f"http://{proxy.host}", tracking_token=TOKEN_A, experiment_name="iso_token"),
        KeyProbe(api_key=PROBE_KEY, out=str(probe_file)),
    ]
    callback = TrackBridgeCallback(plugins=plugins, isolate=True)
    try:
        fit(workdir, "iso_token", [callback])
    finally:
        proxy.close()

    rows = {r["plugin"]: r for r in callback.report["plugins"]}
    assert rows["mlflow"]["failed"] == 0 and rows["mlflow"]["dropped"] == 0, rows
    assert_all_results_stored(mlflow_server.url, "iso_token")  # read from the real server, past the proxy
    assert proxy.seen and not proxy.rejected()  # every request of the plugin's process carried its token
    pid, digest = probe_file.read_text().split()
    assert int(pid) != os.getpid() and digest == hashlib.sha256(PROBE_KEY.encode()).hexdigest()
    assert (workdir / "ray" / "iso_token" / "tuner.pkl").exists()
    for secret in (TOKEN_A, PROBE_KEY):
        assert files_containing(workdir, secret) == [], secret  # tuner.pkl and Tune's state included


def test_what_a_plugin_process_is_sent_keeps_the_secrets_that_pickling_drops():
    """W&B's key takes the same road (its online runs need a W&B server, so this checks the road itself)."""
    [wandb] = resolve([WandbPlugin(api_key=PROBE_KEY, mode="offline")])
    assert PROBE_KEY.encode() not in pickle.dumps(wandb.obj)  # tuner.pkl's rule
    sent = cloudpickle.loads(cloudpickle.dumps(process_request(wandb)))  # what ProcessTransport.start sends
    rebuilt = resolve_in_process(sent)
    assert rebuilt.name == "wandb" and rebuilt.obj.options == wandb.obj.options
    assert PROBE_KEY not in repr(sent) and PROBE_KEY not in repr(rebuilt.obj)


# --------------------------------------------------------------------------------------------- item 9
def tensorboard_tags(experiment_dir: Path) -> dict[str, list[int]]:
    tags: dict[str, list[int]] = {}
    for events in experiment_dir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            tags[tag] = [e.step for e in acc.Scalars(tag)]
    return tags


def test_isolated_tensorboard_warns_about_tunes_logger_only_when_it_is_not_suppressed(
    ray_session, workdir, monkeypatch, caplog
):
    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)  # Tune's own loggers are on
    from trackbridge_tensorboard import tune_logger

    gc.collect()
    assert tune_logger.live_suppressors() == 0  # no suppressor left over from another test

    fit(workdir, "tb_doubled", [TrackBridgeCallback(plugins={"tensorboard": {}}, isolate=["tensorboard"])])
    # warned from the plugin's process, through the driver's own logger, as if the plugin ran in a thread
    warned = [r.getMessage() for r in caplog.records if "SuppressTuneTBXLogger" in r.getMessage()]
    assert [r for r in caplog.records if r.name == "trackbridge.tensorboard" and r.levelno == logging.WARNING]
    assert warned and all(m.startswith("trackbridge: plugin 'tensorboard'") for m in warned), warned
    assert "ray/tune/loss" in tensorboard_tags(workdir / "ray" / "tb_doubled")  # and rightly so

    callback = TrackBridgeCallback(plugins={"tensorboard": {}}, isolate=["tensorboard"])
    caplog.clear()
    fit(workdir, "tb_single", [callback, *callback.companion_callbacks()])
    assert not [r for r in caplog.records if "SuppressTuneTBXLogger" in r.getMessage()]
    tags = tensorboard_tags(workdir / "ray" / "tb_single")
    assert tags["loss"] == [1, 2, 3] and not [t for t in tags if t.startswith("ray/tune/")]


# --------------------------------------------------------------------------------------------- item 10
def test_one_pattern_list_for_config_keys_options_and_uris():
    for name in ("access_key", "aws_secret_access_key", "apikey", "apiKey", "passwd", "private-key", "credentials"):
        assert is_secret_key(name), name
    assert not is_secret_key("learning_rate")
    uri = "https://me:pw@host:5000/api?access_token=t&region=eu#top"
    assert mask_uri(uri) == "https://***@host:5000/api?access_token=***&region=eu#top"
    assert strip_uri_credentials(uri) == "https://host:5000/api?region=eu#top"
    assert redact({"db": {"privateKey": "k", "uri": uri}}) == {"db": {"privateKey": REDACTED, "uri": mask_uri(uri)}}
    assert without_secrets({"uris": [uri], "settings": {"apiKey": "k"}}) == {
        "uris": [strip_uri_credentials(uri)],
        "settings": {},
    }


def test_two_mlflow_tokens_go_each_with_its_own_client_and_never_into_the_environment(
    ray_session, workdir, mlflow_server
):
    proxies = {
        "tok_a": AuthProxy(mlflow_server.url, bearer(TOKEN_A)),
        "tok_b": AuthProxy(mlflow_server.url, bearer(TOKEN_B)),
    }
    tokens = {"tok_a": TOKEN_A, "tok_b": TOKEN_B}
    callbacks = [
        TrackBridgeCallback(
            plugins=[MlflowPlugin(tracking_uri=f"http://{p.host}", tracking_token=tokens[name], experiment_name=name)]
        )
        for name, p in proxies.items()
    ]
    try:
        fit(workdir, "two_tokens", callbacks)
    finally:
        for proxy in proxies.values():
            proxy.close()

    for name, proxy in proxies.items():
        assert_all_results_stored(mlflow_server.url, name)
        assert proxy.seen and not proxy.rejected(), name  # its own token on every request, never the other
        assert {env for _, _, env in proxy.seen} == {None}, name  # not in the driver's environment, ever
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ


def test_uri_credentials_of_a_plugin_object_and_secret_looking_config_reach_no_file(
    ray_session, workdir, mlflow_server
):
    proxy = AuthProxy(mlflow_server.url, "Basic " + base64.b64encode(f"user:{URI_PASSWORD}".encode()).decode())
    uri = f"http://user:{URI_PASSWORD}@{proxy.host}"
    pk, ak, dbpw, qs = CONFIG_SECRETS
    config = {
        "lr": 0.1,
        "private-key": pk,
        "auth": {"accessKey": ak},
        "db_uri": f"postgresql://app:{dbpw}@db.example/x",
        "endpoint": f"https://api.example/v1?api_key={qs}&region=eu",
    }
    callback = TrackBridgeCallback(plugins=[MlflowPlugin(tracking_uri=uri, experiment_name="uri_creds")], isolate=True)
    try:
        fit(workdir, "uri_creds", [callback], param_space={**config, "x": tune.grid_search([1, 2])})
    finally:
        proxy.close()

    assert proxy.seen and not proxy.rejected()  # the plugin's process had the URI's credentials, and used them
    for run in assert_all_results_stored(mlflow_server.url, "uri_creds"):
        params = run.data.params
        assert params["lr"] == "0.1" and params["private-key"] == REDACTED and params["auth/accessKey"] == REDACTED
        assert params["db_uri"] == "postgresql://***@db.example/x"
        assert params["endpoint"] == "https://api.example/v1?api_key=***&region=eu"
    assert (workdir / "ray" / "uri_creds" / "tuner.pkl").exists()
    assert files_containing(workdir, URI_PASSWORD) == []  # tuner.pkl and Tune's own state included
    server_files = Path(mlflow_server.backend_store_uri.removeprefix("sqlite:///")).parent
    for secret in CONFIG_SECRETS:
        assert files_containing(workdir, secret, TUNE_OWN_STATE) == [], secret
        assert files_containing(server_files, secret) == [], secret
