"""A class's length mix: stratified from pairs, or lognormal from a mean and a p90."""

from __future__ import annotations

import numpy as np
import pytest

from solver.length_mix import LengthMix
from solver.types import LengthDist


def test_pairs_are_compressed_keeping_the_means_and_the_total_weight():
    rng = np.random.default_rng(0)
    prompts = rng.lognormal(6.5, 1.0, 3000).astype(int) + 1
    canvases = 32 * rng.integers(1, 20, 3000)
    mix = LengthMix.from_pairs(list(zip(prompts, canvases)), points=48)
    assert len(mix) <= 48
    assert sum(mix.weight) == pytest.approx(1.0)
    assert mix.mean_prompt == pytest.approx(prompts.mean(), rel=1e-9)
    assert mix.mean_canvas == pytest.approx(canvases.mean(), rel=1e-9)
    # the long tail survives: the longest point is beyond the sample's 95th percentile
    seq = np.array(mix.prompt) + np.array(mix.canvas)
    assert seq.max() > np.percentile(prompts + canvases, 95)


def test_few_pairs_are_kept_as_they_are():
    mix = LengthMix.from_pairs([(10, 32), (20, 64)])
    assert mix.prompt == (10.0, 20.0) and mix.canvas == (32.0, 64.0)
    assert mix.weight == (0.5, 0.5)


def test_from_dists_matches_mean_and_p90_and_rounds_outputs_to_blocks():
    mix = LengthMix.from_dists(LengthDist(500, 1000), LengthDist(100, 100), 32)
    assert mix.mean_prompt == pytest.approx(500, rel=1e-9)
    prompts = sorted(set(mix.prompt))
    assert prompts[-2] < 1000 < prompts[-1] * 1.2  # p90 near the top points
    assert set(mix.canvas) == {128.0}  # 100 tokens: four blocks of 32


@pytest.mark.parametrize("bad", [dict(prompt=(), canvas=(), weight=()),
                                 dict(prompt=(1.0,), canvas=(0.0,), weight=(1.0,)),
                                 dict(prompt=(1.0,), canvas=(32.0,), weight=(0.0,))])
def test_invalid_mixes_are_refused(bad):
    with pytest.raises(ValueError, match="length mix"):
        LengthMix(**bad)
