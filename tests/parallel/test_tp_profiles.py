"""`dilaserve profile --tp N` writes a tpN profile; the solver and the TP worker use a measured
TP profile when there is one and model (extrapolate) only the degrees without one."""

from __future__ import annotations

import shutil

import pytest

from dilaserve.cli.main import main
from dilaserve.core.locations import SHIPPED_MODEL_DIR
from dilaserve.profiles.step_cost import StepCostProfile
from solver.instance import build_instance, step_profiles
from solver.loaders import load_profiles
from solver.types import Workload
from tests.solver.solver_helpers import cluster, policy, profiles, slo
from worker.measure.profile_files import QUALITY_FILE, find_step_cost, profiles_dir
from worker.parallel.rank0 import load_tp_profiles


def test_solver_uses_a_measured_tp_profile_and_models_only_the_rest():
    profs = profiles(tps=(1, 2))
    steps, notes = step_profiles(cluster(), profs, policy(tp_degrees=(1, 2, 4)))
    measured_tp2 = profs.step_costs[1]
    assert steps[0, 2] is measured_tp2
    assert steps[0, 4].provenance["extrapolated_from_tp"] == 2  # the largest measured degree
    assert steps[0, 4].provenance["source"] == "modelled"
    assert any("TP=4 from TP=2" in n for n in notes) and not any("TP=2 from" in n for n in notes)
    inst = build_instance(cluster(), Workload((slo(),)), profs, policy(tp_degrees=(1, 2, 4)))
    assert {k.tp: k.extrapolated for k in inst.configs} == {1: False, 2: False, 4: True}


@pytest.mark.slow
def test_profile_tp2_is_measured_named_and_preferred(tmp_path):
    out = tmp_path / "profiles"
    argv = ["profile", "--tp", "2", "--quick", "--cache-modes", "dual", "--out", str(out)]
    assert main(argv) == 0
    path = find_step_cost(out, "dual", tp=2)
    assert ".tp2.dual.json" in path.name
    measured = StepCostProfile.load(path)
    assert measured.tp == 2 and measured.provenance["source"] == "measured"
    assert "2 processes" in measured.provenance["ranks"]
    assert all(c >= 0 for c in measured.cost.coef) and sum(measured.cost.coef) > 0
    shipped = profiles_dir(SHIPPED_MODEL_DIR)
    shutil.copy(shipped / QUALITY_FILE, out)
    shutil.copy(find_step_cost(shipped, "dual", tp=1), out)
    # the worker: a TP=2 replica starts from the TP=2 profile
    assert load_tp_profiles(out, "dual", 2)[1] == measured.cost
    # the solver: the measured TP=2 profile as it is, not one extrapolated from TP=1
    profs = load_profiles([str(out)])
    node = cluster(gpus=2, gpu_type=measured.hardware)
    steps, notes = step_profiles(node, profs, policy(tp_degrees=(1, 2)))
    assert steps[0, 2].cost == measured.cost and not notes
    assert steps[0, 2].provenance["source"] == "measured"
