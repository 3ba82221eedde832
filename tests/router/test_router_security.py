"""The router over TLS with tokens, in front of a replica over mutual TLS (all in this process):
who gets what, over gRPC and HTTP. `tests/runtime/test_loopback.py` runs the same through
`dilaserve serve`."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import grpc
import openai
import pytest

from dilaserve.cli.secrets import write_secrets
from dilaserve.policy.security import ReplicaTls, Secret, ServerTls, Tokens
from orchestrator.service import RouterServer
from tests.net import code_of
from tests.router.helpers import endpoint
from tests.service.helpers import TOKENIZER, make_worker, policy_for_tests
from tests.waiting import wait_for
from worker.client import ClientTls, WorkerClient, WorkerError
from worker.service.server import ServerThread

pytestmark = pytest.mark.slow

PROMPT = "abc"


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("secrets")
    write_secrets(directory, client_cert=True)
    return directory


@pytest.fixture(scope="module")
def cluster(secrets_dir):
    """One replica over mutual TLS behind a router over TLS (client certificates required)
    with tokens; yields (router, secrets directory, the replica)."""
    s = secrets_dir
    replica_tls = ReplicaTls(str(s / "cluster.crt"), str(s / "cluster.key"), str(s / "ca.crt"))
    replica = ServerThread(make_worker(), tls=replica_tls)
    replica.start()
    router = RouterServer(
        policy_for_tests(), TOKENIZER, stats_period_s=0.1, http_port=0,
        tls=ServerTls(str(s / "router.crt"), str(s / "router.key"), str(s / "client-ca.crt")),
        tokens=Tokens(Secret(file=str(s / "client.token")), Secret(file=str(s / "admin.token"))),
        replica_tls=replica_tls)
    router.start()
    try:
        router.set_replicas([endpoint(0, replica)])
        wait_for(lambda: all(r["polled"] and not r["error"]
                             for r in router.summary()["replicas"]), timeout_s=20)
        yield router, s, replica
    finally:
        router.stop(grace_s=0.0)
        replica.stop(grace_s=0.0)


def token(s, name: str) -> str:
    return (s / f"{name}.token").read_text().strip()


def client(router, s, token_name: str | None = None, cert: bool = True) -> WorkerClient:
    tls = ClientTls(str(s / "ca.crt"), *(
        (str(s / "client.crt"), str(s / "client.key")) if cert else (None, None)))
    return WorkerClient(router.target, tls=tls,
                        token=token(s, token_name) if token_name else None)


def test_grpc_takes_the_client_token_for_generate_and_the_admin_token_for_control(cluster):
    router, s, _ = cluster
    with client(router, s) as anonymous:
        assert code_of(lambda: anonymous.generate(PROMPT, 8)) is grpc.StatusCode.UNAUTHENTICATED
        assert code_of(anonymous.stats) is grpc.StatusCode.UNAUTHENTICATED
        assert code_of(lambda: anonymous.control(drain=False, replica_id=0)) is \
            grpc.StatusCode.UNAUTHENTICATED
        assert anonymous.health() == "SERVING"  # load balancers probe without a token
    wrong = ClientTls(str(s / "ca.crt"), str(s / "client.crt"), str(s / "client.key"))
    with WorkerClient(router.target, tls=wrong, token="not-the-token") as guessing:
        assert code_of(lambda: guessing.generate(PROMPT, 8)) is grpc.StatusCode.UNAUTHENTICATED
    with client(router, s, "client") as user:
        result = user.generate(PROMPT, 8)
        assert result.finish_reason and len(result.token_ids) == 8
        assert user.stats().replicas[0].healthy
        assert code_of(lambda: user.control(drain=False, replica_id=0)) is \
            grpc.StatusCode.PERMISSION_DENIED
    with client(router, s, "admin") as admin:
        assert admin.control(threshold_range=(0.6, 0.9), replica_id=0).threshold_range.min == \
            pytest.approx(0.6)
        assert admin.generate(PROMPT, 8).token_ids


def test_the_router_takes_only_tls_clients_with_a_certificate(cluster):
    router, s, _ = cluster
    with WorkerClient(router.target, token=token(s, "client")) as plaintext:
        assert code_of(plaintext.stats) is grpc.StatusCode.UNAVAILABLE
    with client(router, s, "client", cert=False) as no_certificate:
        assert code_of(no_certificate.stats) is grpc.StatusCode.UNAVAILABLE


def test_a_replica_takes_only_peers_with_the_cluster_certificate(cluster):
    _, s, replica = cluster
    for tls in (None, ClientTls(str(s / "ca.crt"), server_name="dilaserve-replica"),
                # a router client's certificate: its own CA, which replicas do not trust
                ClientTls(str(s / "ca.crt"), str(s / "client.crt"), str(s / "client.key"),
                          "dilaserve-replica"),
                # the router's own: a server certificate, not one to call replicas with
                ClientTls(str(s / "ca.crt"), str(s / "router.crt"), str(s / "router.key"),
                          "dilaserve-replica")):
        with WorkerClient(replica.target, tls=tls) as outsider:
            assert code_of(outsider.stats) is grpc.StatusCode.UNAVAILABLE
    peer = ClientTls.for_replicas(
        ReplicaTls(str(s / "cluster.crt"), str(s / "cluster.key"), str(s / "ca.crt")))
    with WorkerClient(replica.target, tls=peer) as router_like:
        assert router_like.stats().model


def test_the_controller_calls_control_on_a_replica_over_mutual_tls(cluster):
    from orchestrator.runtime.controller_actor import _control

    _, s, replica = cluster
    tls = ReplicaTls(str(s / "cluster.crt"), str(s / "cluster.key"), str(s / "ca.crt"))
    assert _control(replica.target, (0.5, 0.9), None, tls=tls) == 0
    with pytest.raises(WorkerError):
        _control(replica.target, None, None)  # plaintext: the replica does not answer


def _http(router, s, path: str, token_name: str | None = None,
          raw_token: str | None = None) -> tuple[int, dict]:
    context = ssl.create_default_context(cafile=str(s / "ca.crt"))
    context.load_cert_chain(str(s / "client.crt"), str(s / "client.key"))
    url = router.http_url.removesuffix("/v1") + path
    request = urllib.request.Request(url)
    if token_name or raw_token:
        request.add_header("Authorization", f"Bearer {raw_token or token(s, token_name)}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_http_takes_the_token_over_tls_and_health_stays_open(cluster):
    router, s, _ = cluster
    assert router.http_url.startswith("https://127.0.0.1:")
    status, body = _http(router, s, "/v1/models")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert _http(router, s, "/v1/models", raw_token="wrong")[0] == 401
    assert _http(router, s, "/metrics-nope")[0] == 401  # refused before the path is looked up
    assert _http(router, s, "/health") == (200, {"status": "serving"})
    assert _http(router, s, "/v1/models", "client")[0] == 200
    assert _http(router, s, "/v1/models", "admin")[0] == 200


def test_the_openai_client_is_served_with_the_token_and_refused_without(cluster):
    import httpx2

    router, s, _ = cluster
    context = ssl.create_default_context(cafile=str(s / "ca.crt"))
    context.load_cert_chain(str(s / "client.crt"), str(s / "client.key"))
    for key, served in (("wrong", False), (token(s, "client"), True)):
        with httpx2.Client(verify=context) as http:
            api = openai.OpenAI(base_url=router.http_url, api_key=key, max_retries=0,
                                timeout=30, http_client=http)
            if served:
                reply = api.completions.create(model="random-test", prompt=PROMPT, max_tokens=8)
                assert reply.usage.completion_tokens == 8
            else:
                with pytest.raises(openai.AuthenticationError):
                    api.completions.create(model="random-test", prompt=PROMPT, max_tokens=8)
