"""Who a bearer token makes a caller, and what each may call (no server: `auth.Access`)."""

from __future__ import annotations

import grpc
import pytest

from dilaserve.policy.security import Secret, Tokens
from orchestrator.service.auth import ADMIN, CLIENT, Access

GENERATE, STATS, CONTROL = (f"/dilaserve.v1.Generate/{m}" for m in ("Generate", "Stats",
                                                                     "Control"))
HEALTH = "/grpc.health.v1.Health/Check"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


@pytest.fixture
def access() -> Access:
    return Access("client-token", "admin-token")


@pytest.mark.parametrize(("header", "role"), [
    ("Bearer client-token", CLIENT), ("bearer admin-token", ADMIN),
    ("  Bearer   admin-token ", ADMIN), ("Bearer client-toke", None),
    ("Bearer client-token-and-more", None), ("Basic client-token", None), ("client-token", None),
    ("Bearer", None), ("", None), (None, None),
])
def test_role_of_an_authorization_value(access, header, role):
    assert access.role(header) == role


def test_each_method_takes_its_token(access):
    assert access.refusal(HEALTH, None) is None  # load balancers probe without one
    for method in (GENERATE, STATS, REFLECTION, CONTROL):
        assert access.refusal(method, None)[0] is grpc.StatusCode.UNAUTHENTICATED
        assert access.refusal(method, "Bearer wrong")[0] is grpc.StatusCode.UNAUTHENTICATED
        assert access.refusal(method, "Bearer admin-token") is None
    for method in (GENERATE, STATS, REFLECTION):
        assert access.refusal(method, "Bearer client-token") is None
    code, details = access.refusal(CONTROL, "Bearer client-token")
    assert code is grpc.StatusCode.PERMISSION_DENIED and "admin token" in details
    assert "client-token" not in details


def test_tokens_must_be_set_and_differ():
    for client, admin in (("same", "same"), ("", "admin"), ("client", "")):
        with pytest.raises(ValueError):
            Access(client, admin)


def test_reading_a_token_never_says_it(tmp_path, monkeypatch):
    (tmp_path / "t").write_text("half of a secret\n")
    with pytest.raises(ValueError) as err:
        Secret(file=str(tmp_path / "t")).read("cluster.router.tokens.client")
    assert "whitespace" in str(err.value) and "secret" not in str(err.value)
    monkeypatch.setenv("DILASERVE_T1", "same")
    monkeypatch.setenv("DILASERVE_T2", "same")
    with pytest.raises(ValueError, match="admin: the same token as") as err:
        Tokens(Secret(env="DILASERVE_T1"), Secret(env="DILASERVE_T2")).read()
    assert "same'" not in str(err.value)
    assert str(Secret(env="DILASERVE_T1")) == "env DILASERVE_T1"
