"""`cluster.device` and `cluster.dtype`: parsed, checked with the field named, restart-only,
shown by `policy validate`, and set from `dilaserve serve --device/--dtype`."""

from __future__ import annotations

import pytest

from dilaserve.cli.main import build_parser
from dilaserve.policy.changes import RESTART_CLUSTER_FIELDS
from dilaserve.policy.cluster import ClusterSettings
from dilaserve.policy.cluster_loader import parse_cluster_policy
from dilaserve.policy.summary import cluster_lines

CLASSES = "default_class: a\nclasses:\n  - name: a\n    deadline: {ms: 100}\n"


def test_device_and_dtype_default_to_auto_and_map_onto_the_settings():
    assert parse_cluster_policy(CLASSES).cluster.device == "auto"
    cluster = parse_cluster_policy(CLASSES + "cluster:\n  device: cuda\n  dtype: float16\n").cluster
    assert (cluster.device, cluster.dtype) == ("cuda", "float16")
    assert "replicas on cuda in float16" in cluster_lines(cluster)[0]


@pytest.mark.parametrize(("line", "field"), [("device: tpu", "cluster.device"),
                                             ("dtype: int8", "cluster.dtype")])
def test_a_bad_value_names_the_field_and_the_line(line, field):
    with pytest.raises(ValueError) as err:
        parse_cluster_policy(CLASSES + f"cluster:\n  {line}\n", "p.yaml")
    assert f"p.yaml:6: {field}" in str(err.value)
    with pytest.raises(ValueError, match="cluster.device must be one of auto, cpu, cuda"):
        ClusterSettings(device="tpu")


def test_they_take_a_restart():
    assert {"device", "dtype"} <= set(RESTART_CLUSTER_FIELDS)


def test_serve_takes_device_and_dtype():
    args = build_parser().parse_args(["serve", "--device", "cuda", "--dtype", "bfloat16"])
    assert (args.device, args.dtype) == ("cuda", "bfloat16")
    assert build_parser().parse_args(["serve"]).device is None  # the policy's then
