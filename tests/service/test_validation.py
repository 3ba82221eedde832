"""Every malformed request is refused with a message naming its field (no server needed)."""

from __future__ import annotations

import math

import pytest

from dilaserve.policy import ThresholdRange
from tests.service.helpers import make_worker
from worker.client import generate_request
from worker.service.validation import InvalidRequest

REPLICA = ThresholdRange(0.5, 0.9)
VALIDATOR = make_worker().validator


def prepare(request, grpc_remaining_s=None, replica=REPLICA):
    return VALIDATOR.prepare(request, 100.0, grpc_remaining_s, replica)


@pytest.mark.parametrize(
    ("fields", "field_named"),
    [
        ({"prompt": ""}, "prompt_text"),
        ({"prompt": "abc#"}, "prompt_text"),  # '#' is outside the test tokenizer
        ({"prompt": "a" * 200}, "prompt_text"),
        ({"prompt": [5, 99]}, "prompt_ids[1]"),
        ({"prompt": [-1]}, "prompt_ids[0]"),
        ({"prompt": [1]}, "prompt_ids[0]"),  # the mask token
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": -3}, "max_new_tokens"),
        ({"max_new_tokens": 65}, "max_new_tokens"),  # over the policy's 64
        ({"prompt": "a" * 140, "max_new_tokens": 32}, "max_new_tokens"),  # over max_seq_len 160
        ({"deadline_ms": 0}, "deadline_ms"),
        ({"deadline_ms": -5}, "deadline_ms"),
        ({"deadline_ms": math.nan}, "deadline_ms"),
        ({"slo_class": "gold"}, "slo_class"),
        ({"commit_rule": "greedy"}, "commit_rule"),
        ({"commit_rule": "topk", "rule_param": 0.5}, "rule_param"),
        ({"commit_rule": "factor", "rule_param": 2}, "rule_param"),
        ({"rule_param": 2}, "rule_param"),
        ({"min_threshold": 0}, "quality.min_threshold"),
        ({"min_threshold": 1.5}, "quality.min_threshold"),
        ({"threshold": -0.1}, "quality.threshold"),
        ({"block_size": 0}, "quality.block_size"),
        ({"min_block_size": 16}, "quality.min_block_size"),
        ({"max_block_size": 4}, "quality.max_block_size"),
        ({"temperature": -1}, "temperature"),
        ({"request_id": "has space"}, "request_id"),
        ({"request_id": "x" * 200}, "request_id"),
    ],
)
def test_bad_input_names_the_field(fields, field_named):
    fields = {"prompt": "abc", "max_new_tokens": 8, **fields}
    prompt, max_new = fields.pop("prompt"), fields.pop("max_new_tokens")
    with pytest.raises(InvalidRequest) as err:
        prepare(generate_request(prompt, max_new, **fields))
    assert err.value.field == field_named
    assert str(err.value).startswith(f"{field_named}: ")


def test_both_prompts_is_an_error():
    request = generate_request("abc", 8)
    request.prompt_ids.extend([5])
    with pytest.raises(InvalidRequest, match="not both"):
        prepare(request)


def test_effective_settings():
    spec = prepare(generate_request("abc", 10))
    assert spec.canvas_len == 16  # rounded up to the block size 8
    assert spec.settings.threshold == 0.9 and spec.floor == 0.5
    assert spec.deadline_s == pytest.approx(100.0 + 20.0)
    assert spec.relative_deadline_s == pytest.approx(20.0)
    assert not spec.best_effort and spec.priority == 0

    strict = prepare(generate_request("abc", 8, slo_class="strict", threshold=0.6))
    assert strict.floor == 0.8 and strict.settings.threshold == 0.8 and strict.priority == 1

    own = prepare(generate_request("abc", 8, min_threshold=0.7, priority=-2))
    assert own.floor == 0.7 and own.priority == -2
    # a request may yield to its class's others, not jump another class's queue
    jumper = prepare(generate_request("abc", 8, priority=1 << 30))
    assert jumper.priority == 0
    assert prepare(generate_request("abc", 8, slo_class="strict", priority=5)).priority == 1

    narrow = prepare(generate_request("abc", 8), replica=ThresholdRange(0.85, 0.95))
    assert narrow.floor == 0.85 and narrow.settings.threshold == 0.95

    batch = prepare(generate_request("abc", 8, slo_class="batch"))
    assert batch.best_effort and math.isinf(batch.relative_deadline_s)

    ranged = prepare(generate_request("abc", 20, block_size=4, max_block_size=8))
    assert ranged.canvas_len == 20 and ranged.block_range == (4, 8)


def test_the_effective_deadline_is_the_earliest_of_the_three():
    """deadline_ms, the class's deadline (standard: 20 s) and the gRPC deadline: the earliest
    of those given wins, whichever it is."""
    def relative(*args):
        return round(prepare(*args).relative_deadline_s, 9)  # (arrival + relative) - arrival

    assert relative(generate_request("abc", 8), 2.0) == 2.0  # gRPC < class
    assert relative(generate_request("abc", 8, deadline_ms=500), 2.0) == 0.5  # own < gRPC
    assert relative(generate_request("abc", 8, deadline_ms=500), 0.2) == 0.2  # gRPC < own
    assert relative(generate_request("abc", 8, slo_class="batch"), 3.0) == 3.0  # no class one
    # a request's own deadline tightens its class's, never loosens it
    assert relative(generate_request("abc", 8, deadline_ms=60_000)) == 20.0
    assert relative(generate_request("abc", 8, deadline_ms=60_000), 30.0) == 20.0
    assert relative(generate_request("abc", 8, deadline_ms=60_000, slo_class="batch")) == 60.0
    assert relative(generate_request("abc", 8, deadline_ms=500, slo_class="batch"), 0.1) == 0.1


def test_a_class_budget_travels_with_its_requests():
    from dataclasses import replace

    from dilaserve.policy import Policy

    policy = VALIDATOR.policy
    budgeted = tuple(replace(c, mean_accuracy_drop=0.01) if c.name == "strict" else c
                     for c in policy.classes)
    worker = make_worker(Policy(budgeted, policy.default_class, policy.worker))
    spec = worker.validator.prepare(generate_request("abc", 8, slo_class="strict"), 100.0, None,
                                    REPLICA)
    assert spec.accuracy_budget == 0.01
    assert prepare(generate_request("abc", 8)).accuracy_budget is None
