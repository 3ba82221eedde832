"""The HTTP API's port in the cluster policy: `cluster.router.http_port`, off by default, checked
against the router's other ports, applied only after a restart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dilaserve.policy.changes import Change, live_policy, policy_changes
from dilaserve.policy.cluster import ClusterSettings
from dilaserve.policy.cluster_loader import load_cluster_policy, parse_cluster_policy

DEFAULT = Path(__file__).resolve().parents[2] / "deploy" / "policies" / "default.yaml"
POLICY = """version: 1
default_class: a
classes:
  - name: a
    deadline: {ms: 100}
cluster:
  router:
    port: 6000
    http_port: 8000
  metrics_port: 9464
"""


def test_off_by_default_and_read_from_the_file():
    assert load_cluster_policy(DEFAULT).cluster.router_http_port is None
    assert parse_cluster_policy(POLICY).cluster.router_http_port == 8000
    assert parse_cluster_policy(POLICY.replace("8000", "0")).cluster.router_http_port == 0


@pytest.mark.parametrize(("port", "expected"), [
    ("6000", "p.yaml:9: cluster.router.http_port: 6000 is also the router's gRPC port"),
    ("9464", "p.yaml:10: cluster.metrics_port: 9464 is also the router's HTTP port"),
    ("70000", "p.yaml:9: cluster.router.http_port: Input should be less than or equal"),
])
def test_a_port_in_use_or_out_of_range_is_named(port, expected):
    with pytest.raises(ValueError) as err:
        parse_cluster_policy(POLICY.replace("http_port: 8000", f"http_port: {port}"), "p.yaml")
    assert expected in str(err.value)


def test_the_command_lines_port_is_checked_too():
    with pytest.raises(ValueError, match="router_http_port: 6000 is also"):
        dataclasses.replace(ClusterSettings(router_port=6000), router_http_port=6000)


def test_a_changed_http_port_waits_for_a_restart():
    running = parse_cluster_policy(POLICY)
    edited = parse_cluster_policy(POLICY.replace("8000", "8001"))
    (change,) = policy_changes(running, edited)
    assert change == Change("cluster.router.http_port", 8000, 8001) and not change.live
    assert live_policy(running, edited).cluster.router_http_port == 8000
