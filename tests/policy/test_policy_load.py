"""Policy files: the shipped example loads; every error names its field and line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dilaserve.policy import SloClass, ThresholdRange, default_policy, load_policy, parse_policy
from tests.service.helpers import synthetic_quality

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = "default_class: a\nclasses:\n  - name: a\n    deadline: {ms: 100}\n"


def test_shipped_worker_policy_loads():
    policy = load_policy(ROOT / "deploy" / "policies" / "worker-default.yaml")
    assert policy.default_class == "standard"
    assert {c.name for c in policy.classes} == {"interactive", "standard", "batch"}
    assert policy.slo_class("").name == "standard"
    assert policy.slo_class("batch").best_effort
    assert policy.worker.scheduler.ordering == "edf"
    assert policy.worker.threshold_range == ThresholdRange(0.5, 0.9)


def test_minimal_policy_takes_defaults():
    policy = parse_policy(MINIMAL)
    assert policy.worker.block_size == 32 and policy.worker.scheduler.load_control == "threshold"
    assert policy.slo_class("a").deadline_s(10) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL.replace("ms: 100", "ms: -5"), "p.yaml:4: classes[0](a).deadline.ms:"),
        (MINIMAL.replace("{ms: 100}", "{}"), "p.yaml:4: classes[0](a).deadline: give ms"),
        (MINIMAL + "    colour: red\n", "p.yaml:5: classes[0](a).colour: Extra inputs"),
        (MINIMAL.replace("default_class: a", "default_class: b"), "p.yaml:1: default_class:"),
        (MINIMAL + "  - name: a\n    best_effort: true\n", "p.yaml:2: classes: names must be"),
        (
            "default_class: a\nclasses:\n  - name: a\n",
            "p.yaml:3: classes[0](a): deadline is required unless best_effort",
        ),
        (
            MINIMAL + "    quality_floor: {min_threshold: 1.5}\n",
            "p.yaml:5: classes[0](a).quality_floor.min_threshold: Input should be less",
        ),
        (
            MINIMAL + "    target_attainment: 2\n",
            "p.yaml:5: classes[0](a).target_attainment:",
        ),
        (
            MINIMAL + "worker:\n  scheduler:\n    ordering: lifo\n",
            "p.yaml:7: worker.scheduler.ordering: SchedulerConfig.ordering must be one of",
        ),
        (
            MINIMAL + "worker:\n  threshold_range: {min: 0.9, max: 0.5}\n",
            "p.yaml:6: worker.threshold_range.min",
        ),
        (MINIMAL + "worker:\n  block_size: 0\n", "p.yaml:6: worker.block_size:"),
        (MINIMAL + "worker:\n  cache_mode: ram\n", "p.yaml:6: worker.cache_mode:"),
        ("default_class: a\nclasses: [\n", "p.yaml:3: not valid YAML"),
        ("- just a list\n", "p.yaml: a policy is a mapping"),
    ],
)
def test_errors_name_the_field_and_line(text, expected):
    with pytest.raises(ValueError) as err:
        parse_policy(text, "p.yaml")
    assert expected in str(err.value)


def test_every_problem_is_listed():
    text = MINIMAL.replace("ms: 100", "ms: -5") + "    priority: high\n"
    with pytest.raises(ValueError) as err:
        parse_policy(text, "p.yaml")
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and "priority" in lines[1]


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        load_policy("/nonexistent/policy.yaml")


def test_cluster_section_is_left_to_the_orchestrator():
    assert parse_policy(MINIMAL + "cluster: {gpus: 8}\n").default_class == "a"


def test_deadline_parts_add_up():
    both = SloClass("x", deadline_ms=100, deadline_per_token_ms=2)
    assert both.deadline_s(50) == pytest.approx(0.2)
    assert SloClass("y", deadline_per_token_ms=3).deadline_s(10) == pytest.approx(0.03)
    assert math.isinf(SloClass("z", best_effort=True).deadline_s(10))


def test_floor_is_the_strictest_and_reads_the_quality_profile():
    quality = synthetic_quality()  # accuracy 0.5 + 0.4 tau; reference tau 0.9
    by_drop = SloClass("d", deadline_ms=1, max_accuracy_drop=0.05)
    assert by_drop.floor(quality, 8) == pytest.approx(0.8)  # 0.9 - 0.05 / 0.4 = 0.775 -> 0.8
    assert by_drop.floor(quality, 7) == pytest.approx(0.8)  # nearest profiled block
    both = SloClass("b", deadline_ms=1, min_threshold=0.85, max_accuracy_drop=0.05)
    assert both.floor(quality, 8) == pytest.approx(0.85)
    assert SloClass("n", deadline_ms=1).floor(None, 8) is None
    with pytest.raises(ValueError, match="quality profile"):
        by_drop.floor(None, 8)


def test_policy_check_fails_at_start_without_a_profile():
    policy = parse_policy(MINIMAL + "    quality_floor: {max_accuracy_drop: 0.01}\n")
    with pytest.raises(ValueError, match="max_accuracy_drop"):
        policy.check_against(None)


def test_a_class_states_its_accuracy_budget_beside_its_floor():
    floor = "    quality_floor: {max_accuracy_drop: 0.03, mean_accuracy_drop: 0.01}\n"
    policy = parse_policy(MINIMAL + floor)
    assert policy.slo_class("a").mean_accuracy_drop == 0.01
    assert policy.slo_class("a").max_accuracy_drop == 0.03
    with pytest.raises(ValueError, match="mean_accuracy_drop"):
        parse_policy(MINIMAL + "    quality_floor: {mean_accuracy_drop: 2}\n")


def test_default_policy_is_one_best_effort_class():
    policy = default_policy()
    assert policy.slo_class("").best_effort and not policy.slo_class("").has_deadline
