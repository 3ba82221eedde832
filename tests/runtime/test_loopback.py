"""`dilaserve serve` on the embedded default, closed: every socket of every process it started
(its own, Ray's GCS, raylet, agents and workers, the router, the replicas) listens on loopback;
and over TLS the router serves a right token only, Control the admin token only.

One cluster in its own process for the module, with the policy's TLS, tokens and mutual TLS to
the replicas (files from `dilaserve secrets`)."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import grpc
import pytest

from dilaserve.cli.secrets import write_secrets
from tests.net import code_of, free_port
from tests.runtime.sockets import descendants, listening
from worker.client import ClientTls, WorkerClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

ROUTER = re.compile(r"router listening on (\S+)")
HTTP = re.compile(r"OpenAI-compatible HTTP API on (\S+)$")
POLICY = """
version: 1
default_class: standard
classes:
  - name: standard
    deadline: {{ms: 20000}}
worker:
  max_new_tokens: 64
cluster:
  cpu_slots: 2
  router:
    host: 127.0.0.1
    port: 0
    http_port: 0
    tls: {{cert_file: {s}/router.crt, key_file: {s}/router.key}}
    tokens:
      client: {{file: {s}/client.token}}
      admin: {{file: {s}/admin.token}}
  replica_tls: {{cert_file: {s}/cluster.crt, key_file: {s}/cluster.key, ca_file: {s}/ca.crt}}
  metrics_port: {metrics}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(the serve process, router target, HTTP URL, secrets directory), serving."""
    s = tmp_path_factory.mktemp("secrets")
    write_secrets(s)
    policy = s / "policy.yaml"
    policy.write_text(POLICY.format(s=s, metrics=free_port()))
    # nothing of this process's Ray settings: serve must close the cluster by itself
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dilaserve.cli.main", "serve", "--policy", str(policy)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**env, "PYTHONUNBUFFERED": "1"})
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        target = url = None
        for line in proc.stdout:
            if found := ROUTER.search(line):
                target = found.group(1)
            if found := HTTP.search(line.strip()):
                url = found.group(1)
                break
        assert target and url, f"serve did not come up: {''.join(errors)[-3000:]}"
        yield proc, target, url, s
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(10)
    assert proc.returncode == 0, "".join(errors)[-3000:]


def test_every_socket_of_every_process_serve_started_is_on_loopback(served):
    proc = served[0]
    sockets = listening(descendants(proc.pid))
    names = {s.name for s in sockets}
    # Ray's own servers, the router's and the replicas' are all in the list
    assert {"gcs_server", "raylet"} <= names, names
    assert sum(s.name.startswith("ray::ReplicaAct") for s in sockets) >= 2, names
    assert any(s.name.startswith("ray::RouterActo") for s in sockets), names
    assert len(sockets) >= 10, [str(s) for s in sockets]
    off_loopback = [str(s) for s in sockets if not s.loopback]
    assert not off_loopback, f"listening beyond this machine: {off_loopback}"


def test_over_tls_a_token_is_needed_and_control_takes_the_admin_token(served):
    _, target, _, s = served
    tls = ClientTls(str(s / "ca.crt"))
    tokens = {name: (s / f"{name}.token").read_text().strip() for name in ("client", "admin")}
    with WorkerClient(target, tls=tls) as nobody, \
            WorkerClient(target, tls=tls, token="wrong") as guessing:
        for client in (nobody, guessing):
            assert code_of(lambda c=client: c.generate("sort:3141>", 8)) is \
                grpc.StatusCode.UNAUTHENTICATED
            assert code_of(lambda c=client: c.control(drain=False, replica_id=0)) is \
                grpc.StatusCode.UNAUTHENTICATED
    with WorkerClient(target, tls=tls, token=tokens["client"]) as user:
        answer = user.generate("sort:3141>", 8, timeout=60).text
        assert sorted(answer) == list(answer) and len(answer) == 4, answer  # via mutual TLS
        assert code_of(lambda: user.control(drain=False, replica_id=0)) is \
            grpc.StatusCode.PERMISSION_DENIED
        replica = user.stats().replicas[0].id
    with WorkerClient(target, tls=tls, token=tokens["admin"]) as admin:
        assert admin.control(drain=False, replica_id=replica).draining is False
    with WorkerClient(target, token=tokens["client"]) as plaintext:  # TLS or nothing
        assert code_of(plaintext.stats) is grpc.StatusCode.UNAVAILABLE


def test_the_http_api_answers_401_without_the_token(served):
    _, _, url, s = served
    assert url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(s / "ca.crt"))

    def get(path: str, token: str | None = None) -> int:
        request = urllib.request.Request(url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as reply:
                json.loads(reply.read())
                return reply.status
        except urllib.error.HTTPError as err:
            assert json.loads(err.read())["error"]["code"] == "invalid_api_key"
            return err.code

    assert get("/models") == 401 and get("/models", "wrong") == 401
    assert get("/models", (s / "client.token").read_text().strip()) == 200
