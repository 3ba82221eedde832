from __future__ import annotations

import math

import pytest
from sched_fakes import spec

from worker.scheduler import SchedulerConfig


def test_defaults_are_valid() -> None:
    config = SchedulerConfig()
    assert config.ordering == "edf" and config.lowers_threshold and not config.raises_block


@pytest.mark.parametrize(("field", "value"), [
    ("ordering", "lifo"),
    ("load_control", "block"),
    ("threshold_step", 0.0),
    ("threshold_step", 1.0),
    ("block_ladder", ()),
    ("block_ladder", (32, 16)),
    ("block_ladder", (0, 16)),
    ("slack_margin", -0.1),
    ("hysteresis", math.nan),
    ("raise_dwell_steps", -1),
    ("max_refresh_rows", 0),
    ("refresh_token_budget", 0),
    ("max_refresh_deferrals", 1.5),
    ("admission", "yes"),
    ("admission_protects_queue", 1),
    ("admission_headroom", -0.5),
    ("rate_prior_tokens", 0.0),
])
def test_invalid_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"SchedulerConfig\.{field} "):
        SchedulerConfig(**{field: value})


def test_request_spec_validation() -> None:
    with pytest.raises(ValueError, match="quality_floor"):
        spec("a", threshold=0.7, floor=0.8)
    with pytest.raises(ValueError, match="block_range"):
        spec("a", block=16, block_range=(32, 64))
    with pytest.raises(ValueError, match="multiple"):
        spec("a", canvas=40, block=16)
    assert spec("a", threshold=0.8).floor == 0.8  # no floor given: no degradation
    assert spec("a", block=16).blocks == (16, 16)
