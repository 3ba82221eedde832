"""Bad inputs are rejected with a ValueError that names the field."""

from __future__ import annotations

import pytest

from solver.solve import solve
from solver.tp_extrapolation import TpOverhead
from solver.types import (
    Cluster,
    LengthDist,
    NodeType,
    ObjectiveWeights,
    Profiles,
    SolverOptions,
    SolverPolicy,
    Workload,
    WorkloadClass,
)
from tests.solver.solver_helpers import cluster, policy, profiles, slo, step_profile


@pytest.mark.parametrize("make, field", [
    (lambda: slo("x", rate=-1.0), "rate"),
    (lambda: slo("x", rate=float("nan")), "rate"),
    (lambda: slo("x", deadline_s=0.0), "deadline_s"),
    (lambda: slo("x", deadline_s=None), "deadline_s or slo_scale"),
    (lambda: slo("x", deadline_s=1.0, slo_scale=2.0), "not both"),
    (lambda: slo("x", min_threshold=0.0), "min_threshold"),
    (lambda: slo("x", min_threshold=1.5), "min_threshold"),
    (lambda: slo("x", max_accuracy_drop=-0.1), "max_accuracy_drop"),
    (lambda: slo("x", max_accuracy_drop=5), "max_accuracy_drop"),
    (lambda: slo("x", target_attainment=1.0), "target_attainment"),
    (lambda: slo("x", priority=1.5), "priority"),
    (lambda: LengthDist(0), "mean"),
    (lambda: LengthDist(100, 50), "p90"),
    (lambda: NodeType(1, 0, "H100"), "gpus_per_node"),
    (lambda: NodeType(0, 8, "H100"), "count"),
    (lambda: NodeType(1, 8, ""), "gpu_type"),
    (lambda: Cluster(()), "cluster.nodes"),
    (lambda: Cluster((NodeType(1, 8, "H100"), NodeType(2, 8, "H100"))), "unique"),
    (lambda: Cluster.from_spec("4by8"), "cluster spec"),
    (lambda: Cluster.from_spec("0x8:H100"), "count"),
    (lambda: Workload(()), "workload.classes"),
    (lambda: Workload((slo("a"), slo("a"))), "unique"),
    (lambda: SolverPolicy(tp_degrees=(3,)), "policy.tp_degrees"),
    (lambda: SolverPolicy(thresholds=(1.5,)), "policy.thresholds"),
    (lambda: SolverPolicy(thresholds=(0.0,)), "policy.thresholds"),
    (lambda: SolverPolicy(block_sizes=(0,)), "policy.block_sizes"),
    (lambda: SolverPolicy(max_batch=0), "policy.max_batch"),
    (lambda: SolverPolicy(reload_s=-1), "policy.reload_s"),
    (lambda: SolverOptions("gurobi"), "solver"),
    (lambda: SolverOptions(time_limit_s=0), "time_limit_s"),
    (lambda: ObjectiveWeights(accuracy=-1), "weights.accuracy"),
    (lambda: TpOverhead(efficiency_loss=-0.1), "tp_overhead.efficiency_loss"),
    (lambda: Profiles((step_profile(3),), profiles().quality), "tp"),
    (lambda: Profiles((step_profile(1), step_profile(1)), profiles().quality), "two profiles"),
    (lambda: Profiles((), profiles().quality), "step_costs"),
])
def test_bad_inputs_name_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_class_errors_name_the_class():
    with pytest.raises(ValueError, match="class 'chat': rate"):
        WorkloadClass("chat", -2.0, LengthDist(10), LengthDist(10), deadline_s=1.0)


def _solve(wl, **kw):
    return solve(kw.pop("cl", cluster(1, 4)), wl, kw.pop("prof", profiles((1,))), policy(**kw))


def test_floor_above_every_profiled_threshold():
    with pytest.raises(ValueError, match=r"classes\[0\] \(x\)\.min_threshold"):
        _solve(Workload((slo("x", min_threshold=0.995),)))


def test_accuracy_floor_nothing_meets():
    with pytest.raises(ValueError, match="max_accuracy_drop"):
        _solve(Workload((slo("x", max_accuracy_drop=0.0),)), thresholds=(0.5, 0.7))


def test_policy_threshold_outside_profiled_range():
    with pytest.raises(ValueError, match="policy.thresholds"):
        _solve(Workload((slo("x"),)), thresholds=(0.3,))


def test_unknown_block_size():
    with pytest.raises(ValueError, match="policy.block_sizes"):
        _solve(Workload((slo("x"),)), block_sizes=(64,))


def test_hardware_without_a_profile():
    with pytest.raises(ValueError, match=r"cluster.nodes\[0\].gpu_type 'A100'"):
        _solve(Workload((slo("x"),)), cl=cluster(1, 8, "A100"))


def test_no_tp_degree_fits():
    with pytest.raises(ValueError, match=r"cluster.nodes\[0\]"):
        _solve(Workload((slo("x"),)), cl=cluster(1, 2), tp_degrees=(4,))


def test_wrong_argument_types():
    with pytest.raises(ValueError, match="workload must be a Workload"):
        solve(cluster(), [slo("x")], profiles(), policy())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="current must be a Plan"):
        solve(cluster(), Workload((slo("x"),)), profiles(), policy(), current={})  # type: ignore
