"""Deriving a step-cost profile for another GPU by roofline (`dilaserve profile --derive`)."""

from __future__ import annotations

import json
import math

import pytest

from dilaserve.cli.main import main
from dilaserve.core.locations import PUBLISHED_PROFILES_DIR
from dilaserve.profiles.roofline import GPUS, derive, provenance_line
from dilaserve.profiles.step_cost import StepCostProfile

A100 = PUBLISHED_PROFILES_DIR / "step_cost.a100.bfloat16.tp1.dual.json"


def test_each_term_scales_by_the_resource_that_bounds_it():
    measured = StepCostProfile.load(A100)
    h200 = derive(measured, "h200")
    a, b, c, d = measured.cost.coef
    bandwidth = GPUS["A100"].memory_gbytes_per_s / GPUS["H200"].memory_gbytes_per_s
    compute = GPUS["A100"].bf16_tflops / GPUS["H200"].bf16_tflops
    assert h200.cost.coef == pytest.approx((a * bandwidth, b * compute, c * compute,
                                            d * bandwidth))
    assert h200.hardware == "H200" and math.isnan(h200.median_rel_error)
    assert h200.provenance["assumed"]["gpu_memory_gb"] == 141.0
    assert h200.provenance["assumed"]["tp_overhead"]["link_gbytes_per_s"] == 225.0
    assert measured.provenance["assumed"]["gpu_memory_gb"] == 80.0  # the source is untouched
    assert provenance_line(h200) == "derived from A100 by roofline (datasheet ratios)"
    # a batch-1 step (memory-bound) gains the bandwidth ratio, not the FLOPs ratio
    assert 0.4 < h200.cost.coef[0] / a < 0.45


@pytest.mark.parametrize("target, message", [
    ("A100", "already for A100"), ("V100", "no datasheet figures for GPU 'V100'"),
])
def test_bad_targets(target, message):
    with pytest.raises(ValueError, match=message):
        derive(StepCostProfile.load(A100), target)


def test_a_derived_profile_is_not_derived_again():
    with pytest.raises(ValueError, match="not a derived one"):
        derive(derive(StepCostProfile.load(A100), "H100"), "L40S")


def test_the_command_writes_valid_json_beside_the_source(tmp_path, capsys):
    (tmp_path / A100.name).write_text(A100.read_text())
    assert main(["profile", "--derive", "L40S", "--from", str(tmp_path)]) == 0
    written = tmp_path / "step_cost.l40s.bfloat16.tp1.dual.json"
    assert str(written) in capsys.readouterr().out
    data = json.loads(written.read_text())  # strict JSON: no NaN
    assert data["fit"]["median_rel_error"] is None
    assert StepCostProfile.from_json(data).hardware == "L40S"
    assert main(["profile", "--derive", "L40S", "--from", str(tmp_path / "none")]) == 2
    assert "--from: no such file or directory" in capsys.readouterr().err


def test_the_shipped_derived_profiles_match_the_published_one():
    """The committed H100/H200/L40S files are what the command makes now."""
    measured = StepCostProfile.load(A100)
    for gpu in ("H100", "H200", "L40S"):
        shipped = StepCostProfile.load(PUBLISHED_PROFILES_DIR /
                                       f"step_cost.{gpu.lower()}.bfloat16.tp1.dual.json")
        assert shipped.cost.coef == pytest.approx(derive(measured, gpu).cost.coef)
