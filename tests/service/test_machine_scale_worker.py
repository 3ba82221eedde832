"""A worker checks its step-cost profile against a short calibration when it starts: given the
shipped model's profile with every coefficient halved (a profile from a box twice as fast), it
reports a factor twice the one the true profile gets, scales its admission's model by it, and
says so in Stats."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dilaserve.core.locations import resolve_model_dir
from dilaserve.policy import default_policy
from dilaserve.profiles.step_cost import StepCostModel, StepCostProfile
from tests.service.helpers import COST, make_worker
from worker.client import WorkerClient
from worker.measure.profile_files import QUALITY_FILE, choose_step_cost, profiles_dir
from worker.scheduler.predictor import BatchShape
from worker.service.server import ServerThread
from worker.service.setup import load_worker

SHAPE = BatchShape(reuse_rows=3.0, refresh_rows=1.0, none_refresh=0.0, all_refresh=0.0,
                   reuse_query=32, longest=128)


def _profiles(directory: Path, factor: float) -> Path:
    """The shipped model's quality profile and its dual step-cost profile x `factor`."""
    shipped = profiles_dir(resolve_model_dir(None))
    path, _ = choose_step_cost(shipped, "dual", strict_hardware=False)
    profile = StepCostProfile.load(path)
    cost = StepCostModel(tuple(c * factor for c in profile.cost.coef))
    directory.mkdir()
    (directory / QUALITY_FILE).write_text((shipped / QUALITY_FILE).read_text())
    StepCostProfile(profile.model, profile.hardware, profile.dtype, 1, "dual", cost,
                    profile.median_rel_error).save(directory / path.name)
    return directory


@pytest.fixture
def one_thread():
    """As the shipped profile was measured (and as a CPU replica runs): two threads on a
    shared 2-core box time the box's contention, not the model."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_profile_twice_too_fast_is_scaled_by_two_and_reported(tmp_path):
    policy = default_policy()
    assert policy.worker.cache_mode == "dual"
    true = load_worker(None, policy, _profiles(tmp_path / "true", 1.0))
    halved = load_worker(None, policy, _profiles(tmp_path / "halved", 0.5))
    true_factor = true.loop.scheduler.step_cost.machine.calibration
    factor = halved.loop.scheduler.step_cost.machine.calibration
    # the two calibrations ran a moment apart on a shared machine: their ratio is 2 up to noise
    assert factor / true_factor == pytest.approx(2.0, rel=0.35)
    assert factor > 1.3  # ... so the halved profile is always outside the 10% dead band

    cost = halved.loop.scheduler.step_cost
    applied = cost.machine.applied
    assert applied == pytest.approx(factor)
    # admission's step-time predictions are the halved profile's x the factor
    halved_profile = cost.prior
    predictor = halved.loop.scheduler.predictor
    assert predictor.step_seconds(SHAPE) == pytest.approx(
        SHAPE.step_seconds(halved_profile.coef) * applied)

    server = ServerThread(halved)
    server.start()
    try:
        with WorkerClient(server.target) as client:
            stats = client.stats()
    finally:
        server.stop(grace_s=0.0)
    assert stats.machine_scale == pytest.approx(applied)
    assert stats.machine_scale_measured == pytest.approx(factor)
    assert tuple(stats.step_cost_coef) == pytest.approx(
        tuple(c * applied for c in halved_profile.coef))


def test_a_worker_built_without_calibration_reports_no_factor():
    stats = make_worker().loop.snapshot()
    assert stats.machine_scale == 1.0 and math.isnan(stats.machine_scale_measured)
    assert COST.coef == stats.step_cost_coef
