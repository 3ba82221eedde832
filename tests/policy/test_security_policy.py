"""TLS and tokens in a cluster policy: files and tokens are checked where the policy is read,
errors name the field and line, a token is never written in the file nor printed, and a router
off loopback is refused without TLS and tokens. (tests/policy/conftest.py gives these tests a
home whose ~/dilaserve-secrets holds what `dilaserve secrets` makes.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from dilaserve.cli.main import main
from dilaserve.cli.secrets import write_secrets
from dilaserve.policy.changes import policy_changes
from dilaserve.policy.cluster_loader import parse_cluster_policy
from dilaserve.policy.security import ReplicaTls, Secret, ServerTls, Tokens

S = "~/dilaserve-secrets"
SECURE = f"""default_class: a
classes:
  - name: a
    deadline: {{ms: 100}}
cluster:
  router:
    host: 0.0.0.0
    port: 50051
    tls:
      cert_file: {S}/router.crt
      key_file: {S}/router.key
      client_ca_file: {S}/client-ca.crt
    tokens:
      client: {{file: {S}/client.token}}
      admin: {{env: DILASERVE_ADMIN_TOKEN}}
  replica_tls:
    cert_file: {S}/cluster.crt
    key_file: {S}/cluster.key
    ca_file: {S}/ca.crt
"""


@pytest.fixture(autouse=True)
def admin_token(monkeypatch) -> str:
    monkeypatch.setenv("DILASERVE_ADMIN_TOKEN", "admin-token-from-the-environment")
    return "admin-token-from-the-environment"


def secrets() -> Path:
    return Path.home() / "dilaserve-secrets"


def parse(text: str):
    return parse_cluster_policy(text, "p.yaml").cluster


def error(text: str) -> str:
    with pytest.raises(ValueError) as err:
        parse(text)
    return str(err.value)


def test_a_secure_policy_maps_onto_settings_with_paths_not_secrets():
    c = parse(SECURE)
    s = secrets()
    assert c.router_tls == ServerTls(str(s / "router.crt"), str(s / "router.key"),
                                     str(s / "client-ca.crt"))
    assert c.router_tokens == Tokens(Secret(file=str(s / "client.token")),
                                     Secret(env="DILASERVE_ADMIN_TOKEN"))
    assert c.replica_tls == ReplicaTls(str(s / "cluster.crt"), str(s / "cluster.key"),
                                       str(s / "ca.crt"), "dilaserve-replica")
    assert c.router_tokens.read() == ((s / "client.token").read_text().strip(),
                                      "admin-token-from-the-environment")


@pytest.mark.parametrize(("replace", "by", "expected"), [
    (f"{S}/router.crt", f"{S}/nope.crt",
     "p.yaml:10: cluster.router.tls.cert_file: no such file '~/dilaserve-secrets/nope.crt'"),
    (f"{S}/router.key", f"{S}/nope.key", "p.yaml:11: cluster.router.tls.key_file: no such file"),
    (f"{S}/client-ca.crt", "/nope/ca.crt",
     "p.yaml:12: cluster.router.tls.client_ca_file: no such file '/nope/ca.crt'"),
    (f"{S}/client.token", f"{S}/nope.token",
     "p.yaml:14: cluster.router.tokens.client.file: no such file"),
    (f"{S}/cluster.key", "relative/cluster.key",
     "p.yaml:18: cluster.replica_tls.key_file: no such file 'relative/cluster.key' (/"),
    (f"{S}/ca.crt", f"{S}/nope-ca.crt", "p.yaml:19: cluster.replica_tls.ca_file: no such file"),
    # present, but not what they claim
    (f"{S}/router.key", f"{S}/cluster.key",
     "p.yaml:11: cluster.router.tls.key_file: is not the key of"),
    (f"{S}/client-ca.crt", f"{S}/client.token",
     "p.yaml:12: cluster.router.tls.client_ca_file: "),
    (f"{S}/ca.crt", f"{S}/client-ca.crt",
     "p.yaml:19: cluster.replica_tls.ca_file: the certificate does not verify against it"),
    (f"ca_file: {S}/ca.crt", f"ca_file: {S}/ca.crt\n    server_name: elsewhere",
     "the certificate does not verify against it as 'elsewhere': Hostname mismatch"),
    # tokens: never in the file; from a place that has one
    (f"{{file: {S}/client.token}}", "s3cr3t",
     "p.yaml:14: cluster.router.tokens.client: a token is never written in the policy: give "
     "{file: PATH} or {env: NAME}"),
    (f"{{file: {S}/client.token}}", f"{{file: {S}/client.token, env: X}}",
     "p.yaml:14: cluster.router.tokens.client: give one of file and env"),
    ("{env: DILASERVE_ADMIN_TOKEN}", "{env: DILASERVE_UNSET_TOKEN}",
     "p.yaml:15: cluster.router.tokens.admin.env: $DILASERVE_UNSET_TOKEN is empty or not set"),
    ("{env: DILASERVE_ADMIN_TOKEN}", f"{{file: {S}/client.token}}",
     "p.yaml:15: cluster.router.tokens.admin: the same token as client"),
    ("      admin: {env: DILASERVE_ADMIN_TOKEN}\n", "",
     "p.yaml:13: cluster.router.tokens.admin: Field required"),
])
def test_errors_name_the_field_and_the_line(replace, by, expected):
    assert replace in SECURE
    assert expected in error(SECURE.replace(replace, by))


def test_an_empty_token_file_is_refused(tmp_path):
    (tmp_path / "empty.token").write_text("\n")
    message = error(SECURE.replace(f"{S}/client.token", str(tmp_path / "empty.token")))
    assert "cluster.router.tokens.client.file:" in message and "is empty" in message


def test_a_router_off_loopback_needs_tls_and_tokens():
    lines = SECURE.splitlines(keepends=True)
    no_tls = "".join(lines[:8] + lines[12:])
    assert "p.yaml:7: cluster.router.host: 0.0.0.0 serves other machines, so the router needs " \
           "tls (docs/deploy.md" in error(no_tls)
    neither = "".join(lines[:8] + lines[15:])
    assert "needs tls and tokens" in error(neither)
    assert parse(neither.replace("0.0.0.0", "127.0.0.1")).router_tokens is None
    assert parse(neither.replace("0.0.0.0", "::1")).router_tls is None


def test_validate_prints_where_the_secrets_are_never_what(capsys, admin_token):
    path = Path.home() / "secure.yaml"
    path.write_text(SECURE)
    assert main(["policy", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert (f"security: router TLS (clients must present a certificate), tokens: client from "
            f"file {secrets() / 'client.token'}, admin from env DILASERVE_ADMIN_TOKEN; router "
            f"<-> replicas mutual TLS") in out
    assert admin_token not in out and (secrets() / "client.token").read_text().strip() not in out


def test_tls_and_tokens_take_a_restart(tmp_path):
    before = parse_cluster_policy(SECURE, "p.yaml")
    other = tmp_path / "other.token"
    other.write_text("another-client-token")
    after = parse_cluster_policy(SECURE.replace(f"{S}/client.token", str(other)), "p.yaml")
    (change,) = policy_changes(before, after)
    assert change.path == "cluster.router.tokens" and not change.live
    assert "another-client-token" not in str(change)


def test_secrets_makes_each_file_once_and_keys_private(tmp_path, capsys):
    directory = tmp_path / "s"
    assert main(["secrets", str(directory), "--host", "10.0.0.20"]) == 0
    made = {p.name: p.stat().st_mode & 0o777 for p in directory.iterdir()}
    assert made == {"ca.crt": 0o644, "router.crt": 0o644, "router.key": 0o600,
                    "cluster.crt": 0o644, "cluster.key": 0o600, "client.token": 0o600,
                    "admin.token": 0o600, "ray.token": 0o600}
    assert directory.stat().st_mode & 0o777 == 0o700
    assert main(["secrets", str(directory)]) == 2  # kept unless --force
    assert "exist (--force replaces them)" in capsys.readouterr().err
    assert main(["secrets", str(directory), "--force", "--client-cert"]) == 0
    write_secrets(tmp_path / "again")
    assert (tmp_path / "again" / "client.token").read_text() != \
        (directory / "client.token").read_text()
