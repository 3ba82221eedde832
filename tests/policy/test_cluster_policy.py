"""Cluster policy files: the shipped ones load, every field maps onto ClusterSettings, errors name
the field and the line, and no edit of a file can make the loader raise anything but ValueError."""

from __future__ import annotations

from pathlib import Path

import pytest

from dilaserve.policy import load_policy, parse_policy
from dilaserve.policy.cluster import ClusterSettings, NodeGroup, ReconfigureSettings
from dilaserve.policy.cluster_loader import load_cluster_policy, parse_cluster_policy
from dilaserve.policy.security import Secret, ServerTls, Tokens

ROOT = Path(__file__).resolve().parents[2]
POLICIES = sorted((ROOT / "deploy" / "policies").glob("*.yaml"))
CLASSES = "default_class: a\nclasses:\n  - name: a\n    deadline: {ms: 100}\n"
FULL = CLASSES + """cluster:
  model: /shared/models/llada
  profiles: /shared/profiles
  nodes:
    - {type: H100, count: 2, gpus_per_node: 8}
    - {type: NVIDIA A100 80GB, count: 1, gpus_per_node: 4}
  max_tp: 4
  thresholds: [0.7, 0.95, 0.8]
  cpu_slots: 3
  cpu_threads: 2
  router: @ROUTER@
  metrics_port: 9464
  reconfigure:
    period_s: 7
    drift: 0.3
    min_interval_s: 11
    window_s: 42
    headroom: 0.2
    drain_timeout_s: 13
    placement_timeout_s: 17
    max_draining_fraction: 0.4
""".replace("@ROUTER@", (  # one line, so that the lines below keep their numbers
    "{host: 0.0.0.0, port: 6000, tls: {cert_file: ~/dilaserve-secrets/router.crt, key_file: "
    "~/dilaserve-secrets/router.key}, tokens: {client: {file: ~/dilaserve-secrets/client.token}, "
    "admin: {env: DILASERVE_TEST_ADMIN}}}"))


def test_policy_files_exist():
    assert {p.name for p in POLICIES} >= {
        "default.yaml", "interactive-chat.yaml", "batch-jobs.yaml", "worker-default.yaml"
    }


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_every_shipped_policy_loads_as_cluster_and_as_worker_policy(path):
    cluster_policy = load_cluster_policy(path)
    assert cluster_policy.source == str(path)
    worker_policy = load_policy(path)  # the worker ignores the cluster section
    assert worker_policy == cluster_policy.policy


def test_default_policy_is_the_embedded_default():
    cp = load_cluster_policy(ROOT / "deploy" / "policies" / "default.yaml")
    c = cp.cluster
    assert c.model is None and c.profiles is None and c.nodes == ()
    assert (c.router_host, c.router_port) == ("127.0.0.1", 50051)
    assert c.cpu_threads == 1 and c.metrics_port is None
    names = {k.name: k for k in cp.policy.classes}
    assert names["batch"].best_effort and not names["interactive"].best_effort
    assert names["interactive"].deadline_s(32) < names["standard"].deadline_s(32)


def test_examples_say_what_their_names_promise():
    chat = load_cluster_policy(ROOT / "deploy" / "policies" / "interactive-chat.yaml").policy
    batch = load_cluster_policy(ROOT / "deploy" / "policies" / "batch-jobs.yaml").policy
    assert max(c.deadline_s(32) for c in chat.classes if c.has_deadline) < 0.1
    assert min(c.deadline_s(32) for c in batch.classes if c.has_deadline) > 1.0
    assert all((c.min_threshold or 0) >= 0.9 for c in batch.classes)


@pytest.fixture(autouse=True)
def _admin_token(monkeypatch):
    monkeypatch.setenv("DILASERVE_TEST_ADMIN", "an-admin-token")


def test_every_cluster_field_maps_onto_cluster_settings():
    got = parse_cluster_policy(FULL, "full.yaml").cluster
    secrets = Path.home() / "dilaserve-secrets"
    assert got == ClusterSettings(
        model="/shared/models/llada",
        profiles="/shared/profiles",
        nodes=(NodeGroup("H100", 2, 8), NodeGroup("NVIDIA A100 80GB", 1, 4)),
        max_tp=4,
        thresholds=(0.95, 0.8, 0.7),  # sorted, highest first
        cpu_slots=3,
        cpu_threads=2,
        router_host="0.0.0.0",
        router_port=6000,
        metrics_port=9464,
        router_tls=ServerTls(str(secrets / "router.crt"), str(secrets / "router.key")),
        router_tokens=Tokens(Secret(file=str(secrets / "client.token")),
                             Secret(env="DILASERVE_TEST_ADMIN")),
        reconfigure=ReconfigureSettings(7, 0.3, 11, 42, 0.2, 13, 17, 0.4),
    )


def test_no_cluster_section_takes_the_defaults():
    assert parse_cluster_policy(CLASSES).cluster == ClusterSettings()


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("count: 2,", "count: 0,", "p.yaml:9: cluster.nodes[0].count: Input should be greater"),
        ("max_tp: 4", "max_tp: 3", "p.yaml:11: cluster.max_tp: Input should be 1, 2, 4 or 8"),
        ("[0.7, 0.95, 0.8]", "[0.7, 1.5]", "p.yaml:12: cluster.thresholds[1]: Input should be"),
        ("[0.7, 0.95, 0.8]", "[0.7, 0.7]", "p.yaml:12: cluster.thresholds: levels must be"),
        ("[0.7, 0.95, 0.8]", "[]", "p.yaml:12: cluster.thresholds: List should have at least"),
        ("cpu_slots: 3", "cpu_slots: 0", "p.yaml:13: cluster.cpu_slots:"),
        ("port: 6000", "port: 70000", "p.yaml:15: cluster.router.port: Input should be less"),
        ("metrics_port: 9464", "metrics_port: 6000", "p.yaml:16: cluster.metrics_port: 6000 is"),
        ("metrics_port: 9464", "metrics_port: 0", "p.yaml:16: cluster.metrics_port:"),
        ("drift: 0.3", "drift: -1", "p.yaml:19: cluster.reconfigure.drift:"),
        ("period_s: 7", "period_s: 0", "p.yaml:18: cluster.reconfigure.period_s:"),
        ("max_draining_fraction: 0.4", "max_draining_fraction: 1.5",
         "p.yaml:25: cluster.reconfigure.max_draining_fraction:"),
        ("window_s: 42", "window_s: 42\n    colour: red",
         "p.yaml:22: cluster.reconfigure.colour: Extra inputs are not permitted"),
        ("model: /shared/models/llada", "modle: /shared/models/llada",
         "p.yaml:6: cluster.modle: Extra inputs are not permitted"),
        ("type: NVIDIA A100 80GB", "type: H100", "p.yaml:8: cluster.nodes: one entry per node"),
        ("cpu_threads: 2", "cpu_threads: two", "p.yaml:14: cluster.cpu_threads: Input should be"),
    ],
)
def test_cluster_errors_name_the_field_and_line(replace, by, expected):
    assert replace in FULL
    with pytest.raises(ValueError) as err:
        parse_cluster_policy(FULL.replace(replace, by), "p.yaml")
    assert expected in str(err.value)


def test_class_errors_and_cluster_errors_are_listed_together():
    text = FULL.replace("ms: 100", "ms: -1").replace("max_tp: 4", "max_tp: 16")
    with pytest.raises(ValueError) as err:
        parse_cluster_policy(text, "p.yaml")
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("p.yaml:4: classes[0](a).deadline.ms")
    assert lines[1].startswith("p.yaml:11: cluster.max_tp")


def test_the_worker_accepts_a_cluster_section_it_does_not_check():
    bad_cluster = FULL.replace("max_tp: 4", "max_tp: 3")
    assert parse_policy(bad_cluster, "p.yaml").default_class == "a"
    with pytest.raises(ValueError, match="cluster.max_tp"):
        parse_cluster_policy(bad_cluster, "p.yaml")


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_cluster_policy("/nonexistent/cluster.yaml")


def _edits(text: str):
    """Every one-line deletion, and every value replaced by junk of another type."""
    lines = text.splitlines(keepends=True)
    for i in range(len(lines)):
        yield "".join(lines[:i] + lines[i + 1:])
        if ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            for junk in ("[1, {a: 2}]", "-3", "'x'", "", "{", "null"):
                yield "".join(lines[:i] + [f"{key}: {junk}\n"] + lines[i + 1:])


def test_no_edit_of_a_policy_file_raises_anything_but_a_named_value_error():
    text = FULL
    outcomes = {"ok": 0, "error": 0}
    for edited in _edits(text):
        try:
            parse_cluster_policy(edited, "p.yaml")
            outcomes["ok"] += 1
        except ValueError as err:
            assert str(err).startswith("p.yaml"), str(err)
            outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 50


def test_home_in_model_and_profiles_is_expanded():
    text = CLASSES + "cluster:\n  model: ~/models/m\n  profiles: ~/models/m/profiles\n"
    c = parse_cluster_policy(text).cluster
    assert c.model == str(Path.home() / "models" / "m")
    assert c.profiles == str(Path.home() / "models" / "m" / "profiles")
